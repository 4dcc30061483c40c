"""Command-line options built from a configuration's fields, so they are declared once.

``graft fit`` offers every field of :class:`graft.config.FitConfig` and ``graft pretrain``
every field of :class:`graft.pretraining.config.PretrainConfig` that is declared with
:func:`graft.options.option`: the same name (with dashes), default and help text, and a type
the command line can parse. :func:`config_options` adds them to a command's own parameters
(its data arguments), and hands the command the values as one dict.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from graft.options import command_line_fields, flag_name


def option_parameter(field: dataclasses.Field, hints: dict[str, Any]) -> inspect.Parameter:
    """The typer parameter of one configuration field."""
    cli_type = field.metadata.get("cli_type")
    kind = hints[field.name]
    if cli_type is not None:
        optional = field.default is None
        kind = cli_type | None if optional else cli_type
    default = field.default
    if cli_type is str and default is not None:
        default = str(default)
    info = typer.Option(flag_name(field), help=field.metadata["help"])
    if kind is bool:
        name = flag_name(field)
        info = typer.Option(f"{name}/--no-{name[2:]}", help=field.metadata["help"])
    return inspect.Parameter(
        field.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[kind, info],
    )


def config_options(config_class: type) -> Callable:
    """Decorate a command whose last parameter is ``**options``: the command line offers
    every command-line field of ``config_class`` too, and the command gets their values in
    ``options``."""
    fields = command_line_fields(config_class)
    hints = typing.get_type_hints(config_class)

    def decorate(command: Callable) -> Callable:
        own = [
            p
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        taken = {p.name for p in own}
        extra = [option_parameter(f, hints) for f in fields if f.name not in taken]

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            return command(**values)

        parameters = own + extra
        wrapper.__signature__ = inspect.Signature(parameters)
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        del wrapper.__wrapped__
        return wrapper

    return decorate
