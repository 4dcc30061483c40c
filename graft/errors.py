"""Errors graft raises for problems a user can fix.

Every public entry point turns bad input into one of these, with the file, row, column or
option named, so that the command line can print one clear line instead of a traceback.
"""


class GraftError(Exception):
    """Base class of the errors that describe a problem with the user's input or setup."""


class DataError(GraftError, ValueError):
    """The data (a folder, a table, a file in it) cannot be used as given."""


class ConfigError(GraftError, ValueError):
    """An option or combination of options is invalid."""


class ModelUnavailableError(GraftError, RuntimeError):
    """A backbone cannot be created: unknown name, or weights that cannot be reached."""


class RunError(GraftError, RuntimeError):
    """A run directory cannot be written or read."""


class NotFittedError(GraftError, AttributeError):
    """The model has not been fitted (or loaded) yet."""
