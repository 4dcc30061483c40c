"""Search spaces: which options ``graft tune`` searches, over which values, for which kind.

A space is a list of :class:`Param` (a float or integer range, or a list of choices, each
sampled only ``when`` the options already chosen match) and the options it fixes. Every
sampled name is an option of :func:`graft.fit` (a :class:`graft.config.FitConfig` field or an
option of the data's kind), so a trial is a normal fit with those options.

Where a space comes from, later ones overriding earlier ones name by name:

1. the default space of the data's kind (:func:`default_space`: images and audio, texts, the
   dense and token kinds), or a named preset (``feature-extract``, ``fine-tune``: :data:`PRESETS`),
   or a YAML file (``--space space.yaml``) that maps each option to a range
   (``{low: 1e-4, high: 1e-1, log: true}``), a list of choices, or one fixed value, with an
   optional ``when: {strategy: [lora]}``;
2. the keyword arguments of :func:`graft.tune`: a tuple ``(low, high)`` is a range, a list the
   choices, anything else a fixed value (``--epochs 3`` on the command line fixes it too).

The first trial of a new study is graft's own defaults (the fixed options only), so the best
trial is never worse than an untuned fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graft.errors import ConfigError

#: The key of a trial's parameters that marks the trial of graft's defaults.
DEFAULTS_FLAG = "graft_defaults"

LR = {"low": 1e-4, "high": 3e-2, "log": True}
FINE_TUNING = {"strategy": ["fine-tune", "lora"]}

#: The default space of images and audio (one label column or several).
IMAGE_SPACE = {
    "strategy": ["feature-extract", "fine-tune"],
    "lr": LR,
    "batch_size": [16, 32, 64],
    "epochs": {"low": 2, "high": 6, "when": {"strategy": ["fine-tune"]}},
    "layer_decay": {"low": 0.6, "high": 1.0, "when": {"strategy": ["fine-tune"]}},
    "augment": {"choices": ["none", "light", "strong"], "when": {"strategy": ["fine-tune"]}},
}
#: The default space of texts: LoRA too, with its rank.
TEXT_SPACE = {
    "strategy": ["feature-extract", "fine-tune", "lora"],
    "lr": LR,
    "batch_size": [16, 32, 64],
    "epochs": {"low": 2, "high": 6, "when": FINE_TUNING},
    "layer_decay": {"low": 0.6, "high": 1.0, "when": FINE_TUNING},
    "lora_rank": {"choices": [4, 8, 16], "when": {"strategy": ["lora"]}},
}
#: The default space of the kinds whose backbone always trains (tags, answers, boxes, masks,
#: similarity): the rate, the batch, the epochs and the layer decay.
DENSE_SPACE = {
    "lr": LR,
    "batch_size": [4, 8, 16],
    "epochs": {"low": 2, "high": 8},
    "layer_decay": {"low": 0.6, "high": 1.0},
}
#: Spaces by name (``--space feature-extract``): one strategy each.
PRESETS = {
    "feature-extract": {
        "strategy": "feature-extract",
        "lr": {"low": 3e-4, "high": 3e-2, "log": True},
        "epochs": {"low": 10, "high": 60},
        "batch_size": [16, 32, 64],
        "label_smoothing": {"low": 0.0, "high": 0.2},
        "weight_decay": {"low": 1e-4, "high": 1e-1, "log": True},
    },
    "fine-tune": {
        "strategy": "fine-tune",
        "lr": LR,
        "epochs": {"low": 1, "high": 4},
        "batch_size": [16, 32, 64],
        "layer_decay": {"low": 0.5, "high": 1.0},
        "backbone_lr_mult": {"low": 0.03, "high": 0.3, "log": True},
        "augment": ["none", "light", "strong"],
    },
}
#: Kinds with a default space of their own beside :data:`DENSE_SPACE`.
CLASSIFICATION_KINDS = ("multiclass", "multilabel", "regression", "multitask")


@dataclass(frozen=True)
class Param:
    """One searched option: a range (``low``, ``high``, ``log``; integers when both bounds
    are) or ``choices``, sampled only when the options already chosen match ``when``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None
    when: dict[str, tuple] = field(default_factory=dict)

    def applies(self, chosen: dict[str, Any]) -> bool:
        return all(chosen.get(name) in values for name, values in self.when.items())

    def suggest(self, trial: Any) -> Any:
        """The value Optuna's ``trial`` draws for this option."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if isinstance(self.low, int) and isinstance(self.high, int):
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def describe(self) -> str:
        shown = (
            f"one of {list(self.choices)}"
            if self.choices is not None
            else f"{self.low:g} to {self.high:g}{' (log)' if self.log else ''}"
        )
        condition = "".join(
            f" when {k} is {' or '.join(map(str, v))}" for k, v in self.when.items()
        )
        return f"{self.name}: {shown}{condition}"


@dataclass
class SearchSpace:
    """The searched options (in order: a ``when`` refers to earlier ones) and the fixed ones."""

    params: list[Param]
    fixed: dict[str, Any]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """A trial's options: the fixed ones and those drawn (Optuna's define-by-run); the
        first trial of a study draws none (graft's defaults, marked :data:`DEFAULTS_FLAG`)."""
        if trial.number == 0:
            return {**self.fixed, DEFAULTS_FLAG: True}
        chosen = dict(self.fixed)
        for param in self.params:
            if param.applies(chosen):
                chosen[param.name] = param.suggest(trial)
        return chosen

    def names(self) -> list[str]:
        return [param.name for param in self.params]

    def describe(self) -> list[str]:
        return [param.describe() for param in self.params]


def default_space(kind: str, modality: str) -> dict[str, Any]:
    """The documented default space of a kind of task with inputs of ``modality``."""
    if kind not in CLASSIFICATION_KINDS:
        return dict(DENSE_SPACE)
    return dict(TEXT_SPACE if modality == "text" else IMAGE_SPACE)


def read_space_file(path: str | Path) -> dict[str, Any]:
    """The options of a YAML space file (see the module docstring)."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"--space {path}: no such file (or a preset: {', '.join(PRESETS)})")
    try:
        spec = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a search space maps option names to values or ranges")
    return spec


def build_space(
    base: str | Path | dict | None,
    kind: str,
    modality: str,
    overrides: dict[str, Any],
    known: set[str],
) -> SearchSpace:
    """The space of a study: ``base`` (None: the kind's default; a preset name; a YAML file;
    a mapping) with the keyword ``overrides``; every name must be in ``known``."""
    where = "space"
    if base is None:
        spec = default_space(kind, modality)
    elif isinstance(base, dict):
        spec = dict(base)
    elif str(base) in PRESETS:
        spec = dict(PRESETS[str(base)])
    else:
        spec, where = read_space_file(base), str(base)
    spec.update({k: _from_keyword(v) for k, v in overrides.items()})
    params, fixed = [], {}
    for name, value in spec.items():
        if name not in known:
            raise ConfigError(f"{where}: {name!r} is not an option of graft fit")
        param = parse_param(name, value, where)
        if param is None:
            fixed[name] = value
        else:
            params.append(param)
    return SearchSpace(params, fixed)


def _from_keyword(value: Any) -> Any:
    """A keyword argument of :func:`graft.tune` as a space entry."""
    if isinstance(value, tuple) and len(value) == 2:
        return {"low": value[0], "high": value[1]}
    return value


def parse_param(name: str, value: Any, where: str = "space") -> Param | None:
    """The :class:`Param` a space entry describes, or None for a fixed value."""
    if isinstance(value, list):
        value = {"choices": value}
    if not isinstance(value, dict):
        return None
    unknown = set(value) - {"low", "high", "log", "choices", "when"}
    if unknown:
        raise ConfigError(f"{where}: {name} has unknown key(s) {', '.join(sorted(unknown))}")
    when = {k: tuple(v if isinstance(v, list) else [v]) for k, v in value.get("when", {}).items()}
    if "choices" in value:
        choices = value["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: {name}'s choices must be a non-empty list")
        return Param(name, choices=tuple(choices), when=when)
    low, high = _number(value.get("low")), _number(value.get("high"))
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers or low >= high:
        raise ConfigError(f"{where}: {name} needs numbers low < high (got {low}, {high})")
    log = bool(value.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"{where}: {name} on a log scale needs low > 0")
    return Param(name, low, high, log, when=when)


def _number(value: Any) -> Any:
    """A bound as a number: YAML reads ``1e-4`` (no dot) as text."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
