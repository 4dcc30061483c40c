"""Command-line options built from a configuration's fields, so they are declared once.

``graft fit`` offers every field of :class:`graft.config.FitConfig`, and the options each kind
of task declares (:func:`graft.config.kind_option_owners`); ``graft pretrain`` every field of
:class:`graft.pretraining.config.PretrainConfig`; each with the name (dashes for underscores),
default, help text and ``--help`` panel of its declaration (:func:`graft.options.option`), and
a type the command line can parse. :func:`config_options` adds them to a command's own
parameters (its data arguments), and hands the command the values as one dict: a kind's
options only when given, since they apply only to data of that kind.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from graft.options import (
    ADAPTATION,
    DATA,
    FEW_LABELS,
    MODEL,
    OUTPUT,
    TRAINING,
    command_line_fields,
    flag_name,
)

#: The order of ``graft fit --help``'s panels; a kind's panel comes before :data:`OUTPUT`.
PANEL_ORDER = (None, DATA, MODEL, TRAINING, ADAPTATION, FEW_LABELS)


def option_parameter(
    field: dataclasses.Field, hints: dict[str, Any], *, of_kind: str | None = None
) -> inspect.Parameter:
    """The typer parameter of one configuration field; ``of_kind``: the field is an option of
    that kind of task, not given unless the command line names it (its default in the help)."""
    cli_type = field.metadata.get("cli_type")
    kind = hints[field.name]
    if cli_type is not None:
        optional = field.default is None
        kind = cli_type | None if optional else cli_type
    default = field.default
    if cli_type is str and default is not None:
        default = str(default)
    help_text = field.metadata["help"]
    if field.metadata.get("fallback") is not None:  # its default depends on the kind of task
        from graft.config import default_note

        help_text = default_note(field.name, help_text)
    if of_kind is not None:
        shown = "" if isinstance(field.default, bool) else f"default {field.default}; "
        help_text += f" ({shown}only for {of_kind} data)"
        default, kind = None, kind | None
    name = flag_name(field)
    flags = (f"{name}/--no-{name[2:]}",) if hints[field.name] is bool else (name,)
    info = typer.Option(*flags, help=help_text, rich_help_panel=field.metadata.get("panel"))
    return inspect.Parameter(
        field.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[kind, info],
    )


def panel_rank(parameter: inspect.Parameter) -> int:
    """Where ``parameter``'s panel comes in ``--help``: :data:`PANEL_ORDER`, then the others
    (a modality's or a kind's), then :data:`OUTPUT`; arguments first."""
    info = getattr(parameter.annotation, "__metadata__", (None,))[0]
    panel = getattr(info, "rich_help_panel", None)
    if isinstance(info, typer.models.ArgumentInfo):
        return -1
    if panel in PANEL_ORDER:
        return PANEL_ORDER.index(panel)
    return len(PANEL_ORDER) + (panel == OUTPUT)


def kind_parameters() -> tuple[list[inspect.Parameter], set[str]]:
    """The parameters of every kind's options (:func:`graft.config.kind_option_owners`), and
    their names."""
    from graft.config import kind_option_owners

    parameters, seen = [], set()
    for name, (options, kinds) in kind_option_owners().items():
        field = next(f for f in dataclasses.fields(options) if f.name == name)
        hints = typing.get_type_hints(options)
        parameters.append(option_parameter(field, hints, of_kind=" and ".join(kinds)))
        seen.add(name)
    return parameters, seen


def config_options(config_class: type, *, kinds: bool = False) -> Callable:
    """Decorate a command whose last parameter is ``**options``: the command line offers
    every command-line field of ``config_class`` too (with ``kinds``, every kind's options as
    well), and the command gets their values in ``options``: a kind's only when given."""
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
        of_kinds, kind_names = kind_parameters() if kinds else ([], set())

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            for name in kind_names:
                if values.get(name) is None:
                    values.pop(name, None)
            return command(**values)

        parameters = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)  # typer passes every value by name
            for p in sorted(own + extra + of_kinds, key=panel_rank)
        ]
        wrapper.__signature__ = inspect.Signature(parameters)
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        del wrapper.__wrapped__
        return wrapper

    return decorate
