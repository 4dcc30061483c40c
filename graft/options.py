"""How a configuration option is declared once, for Python and the command line alike.

A configuration (:class:`graft.config.FitConfig`, :class:`graft.pretraining.config.PretrainConfig`)
is a dataclass whose fields are declared with :func:`option`: the default, the one-line help the
command line shows, and how the command line spells and types it. ``graft.cli.options`` builds
the ``graft fit`` and ``graft pretrain`` options from these fields, so a default or a help text
exists in one place and cannot drift between the two.

The choices that several configurations share (precisions, loggers, augmentation presets) live
here too, with the checks that every configuration runs on its values. Nothing here imports
torch: ``graft --help`` reads these declarations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, ClassVar

from graft.errors import ConfigError

#: Numeric precisions Lightning's Trainer takes (``16-mixed`` needs a CUDA GPU).
PRECISIONS = ("32", "16-mixed", "bf16-mixed")
#: Strategies that spread training over several processes.
DISTRIBUTED = ("ddp", "fsdp")
#: Where training curves can go besides the CSV files (checked for its package when training).
LOGGERS = ("csv", "tensorboard", "mlflow")
#: Image augmentation presets (:mod:`graft.data.transforms`).
AUGMENT_PRESETS = ("none", "light", "strong")

#: The panels ``graft fit --help`` groups its options in (a kind's options get a panel named
#: after the kind, like ``Detection``).
DATA, MODEL, TRAINING, ADAPTATION, FEW_LABELS, OUTPUT = (
    "Data",
    "Model and strategy",
    "Training",
    "Adaptation",
    "Few labels",
    "Output",
)


def option(
    default: Any,
    help: str,
    *,
    cli_type: type | None = None,
    flag: str | None = None,
    cli: bool = True,
    panel: str | None = None,
    fallback: Any = None,
) -> Any:
    """A dataclass field declared as a configuration option.

    Args:
        default: the value when the option is not given.
        help: what the option does, in one line (``graft fit --help`` shows it).
        cli_type: the type the command line parses, when it differs from the field's (a
            learning rate that may be ``auto`` is read as text; a dict of tasks as
            ``a,b:kind``).
        flag: the command line's name for it, when it is not the field's name with dashes.
        cli: False for an option only Python sets.
        panel: the panel of ``--help`` that lists it (:data:`DATA`, :data:`TRAINING`, ...).
        fallback: for an option whose default (None) depends on the data's kind of task, the
            value when neither the user nor the kind sets it (``--help`` shows both).
    """
    metadata = {"help": help, "cli": cli, "cli_type": cli_type, "flag": flag, "panel": panel}
    metadata["fallback"] = fallback
    if isinstance(default, dict | list):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    """``--lr``, ``--batch-size``: how the command line names a configuration field."""
    return "--" + (field.metadata.get("flag") or field.name.replace("_", "-"))


def command_line_fields(config_class: type) -> list[dataclasses.Field]:
    """The fields of a configuration dataclass that the command line offers, in order."""
    return [f for f in dataclasses.fields(config_class) if f.metadata.get("cli", False)]


def check_choice(option_name: str, value: Any, choices: Collection[str]) -> None:
    """Refuse ``value`` unless it is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"--{option_name} must be one of {', '.join(choices)}, got {value!r}")


def check_positive_integers(config: Any, names: Collection[str]) -> None:
    """Refuse any of ``names`` that is given and is not a positive integer."""
    for name in names:
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def check_precision(precision: str) -> str:
    """``precision`` as text, refused unless Lightning takes it and this machine can run it."""
    precision = str(precision)
    check_choice("precision", precision, PRECISIONS)
    if precision == "16-mixed":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "--precision 16-mixed needs a CUDA GPU, and none is available here; "
                "use bf16-mixed on the CPU (or 32)"
            )
    return precision


class KindOptions:
    """The options of one kind of task: a dataclass of :func:`option` fields, declared in the
    kind's package (``graft/tasks/<kind>/options.py``, importing no torch) and named by its
    task class (:attr:`graft.tasks.base.Task.options`). A fit keeps them in
    :attr:`graft.config.FitConfig.task_options`; :meth:`of` reads them back, defaults filled
    in."""

    #: The kind's own defaults of options every fit has that default to None ("graft's
    #: default for this data"; :meth:`graft.config.FitConfig.with_defaults`), by name.
    fit_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def of(cls, config: Any) -> Any:
        """This kind's options of ``config`` (a :class:`graft.config.FitConfig`), checked."""
        return from_dict(cls, getattr(config, "task_options", None) or {}).validate()

    def validate(self) -> Any:
        """Refuse a bad value (ConfigError naming the option); returns self."""
        return self


def from_dict(config_class: type, values: dict[str, Any]) -> Any:
    """An instance of ``config_class`` from a saved record, ignoring keys it does not know."""
    known = {f.name for f in dataclasses.fields(config_class)}
    return config_class(**{k: v for k, v in values.items() if k in known})
