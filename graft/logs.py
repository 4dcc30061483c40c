"""graft's log records made printable: a file name that is not valid UTF-8 (bytes that
Python keeps as lone surrogates, ``\\udcff``) is written escaped (``\\udcff`` as text), so that
a log line never fails to encode in a UTF-8 log file, a terminal or a test runner's report."""

from __future__ import annotations

import logging

#: The loggers graft writes to.
LOGGERS = ("graft", "graft.serve")


class PrintableRecords(logging.Filter):
    """Replaces a record's message by its escaped form when it holds lone surrogates."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        printable = message.encode("utf-8", "backslashreplace").decode("utf-8")
        if printable != message:
            record.msg, record.args = printable, ()
        return True


def install() -> None:
    """Add :class:`PrintableRecords` to graft's loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, PrintableRecords) for f in logger.filters):
            logger.addFilter(PrintableRecords())
