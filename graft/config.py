"""The configuration of a fit: every hyperparameter, validated once, saved with the run."""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from graft.errors import ConfigError
from graft.options import (
    ADAPTATION,
    AUGMENT_PRESETS,
    DATA,
    DISTRIBUTED,
    FEW_LABELS,
    LOGGERS,
    MODEL,
    OUTPUT,
    TRAINING,
    KindOptions,
    check_choice,
    check_positive_integers,
    check_precision,
    from_dict,
    option,
)

log = logging.getLogger("graft")

#: The backbone of each modality when ``model`` is not given.
DEFAULT_MODELS = {
    "image": "efficientnet_lite0",
    "text": "minilm",
    "audio": "audio:efficientnet_lite0",
}


@dataclass
class FitConfig:
    """Hyperparameters of :func:`graft.fit`; ``None`` means "graft's default for this data".

    Each field is declared once with :func:`graft.options.option`: its default, its help (what
    ``graft fit --help`` shows) and its panel; read the declarations below for what each option
    does. The options whose default depends on the data's kind of task (``batch_size``,
    ``lr``, ``head_epochs``, ``label_smoothing``) are None until the kind's
    :meth:`graft.tasks.base.Task.defaults` and :meth:`with_defaults` fill them (the declared
    ``fallback`` where the kind has no value of its own). :meth:`validate` normalises ``lr``
    given as text, ``tasks`` (to a dict column -> kind: :func:`parse_tasks`) and
    ``task_weights`` (to a dict task -> weight, or ``"uncertainty"``:
    :func:`parse_task_weights`). ``task_options`` holds the options of the data's kind
    (``detector``, ``architecture``, ...), declared in ``graft/tasks/<kind>/options.py``
    (:class:`graft.options.KindOptions`); :meth:`for_kind` refuses another kind's and fills
    in their defaults; ``graft.fit`` and :meth:`to_dict` take and give them beside the others.
    """

    model: str | None = option(
        None,
        "Backbone: a name from `graft models`, timm:NAME, hf:ORG/NAME, a folder, or a "
        "`graft pretrain` run.",
        panel=MODEL,
    )
    strategy: str = option(
        "fine-tune",
        "fine-tune, feature-extract, full, partial, gradual, lora, contrastive (SetFit-style "
        "pairs for text, SupCon for images, then the head), or auto (chosen from measurements "
        "of the data and the frozen backbone).",
        panel=MODEL,
    )
    epochs: int | None = option(
        None,
        "Epochs of the main phase (fine-tune: 3, tagging 5, cut to reach about 1,000 steps "
        "on a large training set but never below 2; feature-extract: 30).",
        panel=TRAINING,
    )
    head_epochs: int | None = option(
        None, "Epochs of fine-tune's head-only phase.", fallback=30, panel=TRAINING
    )
    batch_size: int | None = option(None, "Examples per step.", fallback=32, panel=TRAINING)
    lr: float | str | None = option(
        None,
        "Learning rate of the head, or auto (a range test picks it).",
        cli_type=str,
        fallback=3e-3,
        panel=TRAINING,
    )
    backbone_lr_mult: float | None = option(
        None,
        "Backbone learning rate as a fraction of --lr (images 0.1, text 0.02, audio:* 1).",
        panel=TRAINING,
    )
    layer_decay: float = option(
        1.0,
        "Each backbone group down from the top trains at this times the rate above.",
        panel=TRAINING,
    )
    unfreeze: int = option(2, "Backbone groups trained by --strategy partial.", panel=MODEL)
    unfreeze_every: int = option(
        1, "Epochs between unfreezing steps of --strategy gradual.", panel=MODEL
    )
    lora_rank: int | None = option(
        None, "Rank of --strategy lora's adapters (default 8).", panel=MODEL
    )
    lora_alpha: float | None = option(
        None,
        "LoRA scale numerator: updates scaled by alpha/rank (default 2 x rank).",
        panel=MODEL,
    )
    lora_targets: str | None = option(
        None,
        "Comma-separated module names LoRA adapts, like query,value (default: the backbone's own).",
        panel=MODEL,
    )
    baseline: str | None = option(
        None,
        "scratch: also train the architecture from random weights and report the transfer "
        "gain (negative transfer when pretraining hurt).",
        panel=MODEL,
    )
    baseline_epochs: int | None = option(
        None,
        "Epochs of the scratch baseline (default: as many as the fit ran).",
        panel=MODEL,
    )
    adapt: str = option(
        "none",
        "Domain adaptation to --target-unlabeled: dann, coral, mmd, cdan, mcc, mdd, "
        "self-training, mcc+cdan, mcc+self-training, auto (chosen from label-free "
        "measurements), or none (source-only).",
        panel=ADAPTATION,
    )
    adapt_weight: float = option(
        1.0, "Weight of the adaptation loss against the task loss.", panel=ADAPTATION
    )
    adapt_guard: bool = option(
        True,
        "Also train source-only and keep the adapted model only if it scores no worse on the "
        "source validation data (doubles the adapted phases' time).",
        panel=ADAPTATION,
    )
    image_size: int | None = option(
        None,
        "Resize images to this side in pixels (default: the weights' size).",
        panel=DATA,
    )
    max_length: int | None = option(
        None,
        "Cut texts to this many tokens (default: the model's own length).",
        panel=DATA,
    )
    clip_seconds: float | None = option(
        None,
        "Crop or pad audio clips to this many seconds (default: the length of 95% of the "
        "training clips, at most 10).",
        panel="Audio",
    )
    seed: int = option(0, "Seed of the split, initialisation and data order.", panel=TRAINING)
    val_fraction: float = option(
        0.2,
        "Share of each class held out when no validation data is given.",
        panel=DATA,
    )
    cv_folds: int = option(
        5,
        "With few labels and no validation data every example trains and this many folds "
        "cross-validate the estimate (0: none).",
        panel=FEW_LABELS,
    )
    task: str = option(
        "auto",
        "auto, multiclass, multilabel (a row's labels joined by ; or |) or regression.",
        panel=DATA,
    )
    label_delimiter: str | None = option(
        None,
        "What separates a multilabel row's labels (default: ; or |).",
        panel=DATA,
    )
    tasks: dict[str, str] | None = option(
        None,
        "Train several label columns of a table at once, one head each on the shared "
        "backbone: sentiment,topic,rating (each kind inferred; COLUMN:KIND sets it, like "
        "rating:regression). A row missing a task's label still trains the others.",
        cli_type=str,
        panel=DATA,
    )
    task_weights: dict[str, float] | str | None = option(
        None,
        "How the --tasks losses add up: weights in --tasks order (1,0.5), by name "
        "(sentiment=1,topic=0.5), or uncertainty (learned; Kendall et al. 2018). Default: 1 "
        "each.",
        cli_type=str,
        panel=DATA,
    )
    label_smoothing: float | None = option(
        None, "Label smoothing of the loss.", fallback=0.1, panel=TRAINING
    )
    weight_decay: float = option(0.01, "AdamW weight decay.", panel=TRAINING)
    grad_clip: float | None = option(None, "Clip the gradient norm.", panel=TRAINING)
    logger: str = option("csv", "csv (always kept), or also tensorboard or mlflow.", panel=OUTPUT)
    class_weights: str | None = option(
        None, "auto: weigh the loss by inverse class frequency.", panel=TRAINING
    )
    sampler: str | None = option(None, "balanced: draw every class equally often.", panel=TRAINING)
    augment: str = option(
        "light",
        "Image augmentation while the backbone trains: none, light, strong.",
        panel=TRAINING,
    )
    views: int = option(
        1, "Cached views per training image for the head (1 plain + augmented).", panel=TRAINING
    )
    precision: str = option(
        "32", "32, 16-mixed (CUDA) or bf16-mixed, as Lightning takes it.", panel=TRAINING
    )
    devices: int = option(1, "Processes (GPUs, or CPU processes) per node.", panel=TRAINING)
    num_nodes: int = option(1, "Nodes of a multi-node run.", panel=TRAINING)
    distributed: str | None = option(
        None,
        "ddp or fsdp across devices and nodes (default: ddp above 1 device).",
        panel=TRAINING,
    )
    num_workers: int | None = option(None, "Data-loading processes.", panel=TRAINING)
    time_limit: float | str | None = option(
        None,
        "Finish the fit within this time (90s, 10m, 2h, or seconds): epochs and phases are "
        "planned from measured step costs, the best model so far is kept.",
        cli_type=str,
        panel=TRAINING,
    )
    cache_dir: str | None = option(
        None,
        "Root of the feature cache (default: $GRAFT_CACHE_DIR or ~/.cache/graft).",
        panel=OUTPUT,
    )
    progress: bool = option(True, "Show the progress bar.", panel=OUTPUT)
    task_options: dict[str, Any] = option(
        {},
        "The options of the data's kind of task (detector, architecture, ...), by name.",
        cli=False,
    )

    def validate(self) -> FitConfig:
        """Check every option, normalising some (``lr`` given as text, ``tasks``); raise
        :class:`ConfigError` naming the first bad one."""
        from graft.strategies import STRATEGIES

        if self.strategy not in (*STRATEGIES, "auto"):
            raise ConfigError(
                f"--strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)} or auto"
            )
        if self.baseline not in (None, "none", "scratch"):
            raise ConfigError(f"--baseline must be scratch or none, got {self.baseline!r}")
        _check_lora(self)
        _check_adaptation(self)
        check_positive_integers(
            self,
            ("epochs", "head_epochs", "batch_size", "unfreeze", "unfreeze_every", "views")
            + ("baseline_epochs", "image_size", "max_length", "devices", "num_nodes"),
        )
        if self.clip_seconds is not None and not self.clip_seconds > 0:
            raise ConfigError(f"--clip-seconds must be positive, got {self.clip_seconds}")
        _check_rates(self)
        _check_task(self)
        _check_tasks(self)
        _check_regularisation(self)
        _check_sampling(self)
        _check_engine(self)
        if self.time_limit is not None:
            from graft.training.budget import parse_duration

            parse_duration(self.time_limit)
        _check_task_options(self.task_options, None if self.task == "auto" else self.task)
        return self

    def for_kind(self, kind: str) -> FitConfig:
        """A copy whose ``task_options`` are those of ``kind``, defaults filled in; refused
        (ConfigError naming the option and its kind) when an option belongs to another."""
        _check_task_options(self.task_options, kind)
        options = options_class(kind)
        chosen = asdict(options.of(self)) if options is not None else {}
        return replace(self, task_options=chosen)

    def with_defaults(self, defaults: dict[str, Any] | None = None, kind: str = "") -> FitConfig:
        """A copy with ``defaults`` (a kind's own, logged as ``kind``'s) for the options left at
        None, then each option's declared ``fallback`` for those still None."""
        chosen = {k: v for k, v in (defaults or {}).items() if getattr(self, k) is None}
        if chosen and kind:
            log.info("%s defaults: %s", kind, ", ".join(f"{k}={v}" for k, v in chosen.items()))
        config = replace(self, **chosen)
        missing = {k: v for k, v in fallbacks().items() if getattr(config, k) is None}
        return replace(config, **missing) if missing else config

    def lora_target_list(self) -> list[str]:
        """``lora_targets`` split at commas ([] when not given)."""
        return [t.strip() for t in (self.lora_targets or "").split(",") if t.strip()]

    def to_dict(self) -> dict[str, Any]:
        """Every option by name, a kind's at the top level beside the others (as
        ``graft.fit`` takes them and ``config.json`` keeps them)."""
        values = asdict(self)
        kind_values = values.pop("task_options")
        return {**values, **kind_values}

    def resolved(self, **chosen: Any) -> FitConfig:
        """A copy with the values a fit chose for ``auto`` or ``None`` (``model``,
        ``strategy``, ``lr``); the original keeps the hyperparameters as given."""
        return replace(self, **chosen)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> FitConfig:
        """The configuration of keyword options as ``graft.fit`` takes them: a kind's options
        (``detector="retinanet"``) beside the others. ConfigError for an unknown name."""
        owners = kind_option_owners()
        own = {f.name for f in fields(cls)} - {"task_options"}
        unknown = sorted(set(params) - own - set(owners))
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        kind_values = {k: v for k, v in params.items() if k in owners}
        given = {k: v for k, v in params.items() if k in own}
        return cls(**given, task_options={**params.get("task_options", {}), **kind_values})

    @classmethod
    def from_dict(
        cls, values: dict[str, Any], kind: str | None = None, given: bool = False
    ) -> FitConfig:
        """The configuration of a saved record (``config.json``), ignoring names it does not
        know. With ``kind``, only that kind's options are kept; a record written before the
        kinds declared their own options held every kind's, and keeps only those it changed
        from their defaults. ``given``: ``values`` are the options as given (a record's
        ``params``), where such a record held an option whose default is now None at its
        ``fallback`` when not given (as a kind's defaults then took it)."""
        owners = kind_option_owners()
        if given and LEGACY_KIND_OPTIONS <= set(values):
            values = {
                k: None if k in fallbacks() and v == fallbacks()[k] else v
                for k, v in values.items()
            }
        kind_values = {k: v for k, v in values.items() if k in owners}
        if kind is not None:
            kind_values = {k: v for k, v in kind_values.items() if kind in owners[k][1]}
        elif LEGACY_KIND_OPTIONS <= set(values):
            kind_values = {
                k: v for k, v in kind_values.items() if v != _declared_default(owners[k][0], k)
            }
        config = from_dict(cls, {k: v for k, v in values.items() if k != "task_options"})
        return replace(config, task_options={**values.get("task_options", {}), **kind_values})


#: The kind options every ``config.json`` held before each kind declared its own.
LEGACY_KIND_OPTIONS = {"detector", "architecture", "loss", "binary_masks", "ignore_index"}


def fallbacks() -> dict[str, Any]:
    """Each option whose default (None) depends on the kind of task -> the value when neither
    the user nor the kind sets it (its declared ``fallback``)."""
    return {
        f.name: f.metadata["fallback"]
        for f in fields(FitConfig)
        if f.metadata.get("fallback") is not None
    }


def default_note(name: str, help_text: str) -> str:
    """``help_text`` of the option ``name`` with its effective defaults, as ``--help`` shows
    them: ``Examples per step (default 32; detection and instance-segmentation 4, ...).``"""
    from graft.tasks import TASK_CLASSES

    by_value: dict[Any, list[str]] = {}
    for kind in TASK_CLASSES:
        options = options_class(kind)
        value = (options.fit_defaults if options is not None else {}).get(name)
        if value is not None:
            by_value.setdefault(value, []).append(kind)
    own = ", ".join(f"{' and '.join(kinds)} {value}" for value, kinds in by_value.items())
    note = f"default {fallbacks()[name]}" + (f"; {own}" if own else "")
    return f"{help_text.rstrip('.')} ({note})."


def options_class(kind: str) -> type[KindOptions] | None:
    """The options class of ``kind`` (its package's ``options`` module), or None when the kind
    has no options of its own. Imports no torch: the module sits beside the kind's task."""
    from graft.tasks import TASK_CLASSES

    package = TASK_CLASSES[kind].partition(":")[0].rpartition(".")[0]
    if not _has_options_module(package):
        return None
    module = importlib.import_module(f"{package}.options")
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, KindOptions) and v is not KindOptions
    ]
    return found[0] if found else None


def _has_options_module(package: str) -> bool:
    """Whether ``package`` holds an ``options`` module, found without importing ``package``
    (a kind's package may import its data modules, and torch with them)."""
    parent, _, leaf = package.rpartition(".")
    if not leaf:
        return False
    locations = getattr(importlib.import_module(parent), "__path__", None) if parent else None
    spec = importlib.machinery.PathFinder.find_spec(leaf, locations)
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    return any((Path(folder) / "options.py").is_file() for folder in folders)


def kind_option_owners() -> dict[str, tuple[type[KindOptions], tuple[str, ...]]]:
    """Each kind option's name -> its options class and the kinds that take it."""
    from graft.tasks import TASK_CLASSES

    owners: dict[str, tuple[type[KindOptions], tuple[str, ...]]] = {}
    for kind in TASK_CLASSES:
        options = options_class(kind)
        for f in fields(options) if options is not None else ():
            known = owners.get(f.name, (options, ()))
            owners[f.name] = (known[0], (*known[1], kind))
    return owners


def _declared_default(options: type, name: str) -> Any:
    return next(f.default for f in fields(options) if f.name == name)


def _check_task_options(values: dict[str, Any], kind: str | None) -> None:
    """Refuse an option of a kind other than ``kind`` (when known), then each kind's values."""
    owners = kind_option_owners()
    for name in values:
        if name not in owners:
            raise ConfigError(f"unknown option: {name}")
        kinds = owners[name][1]
        if kind is not None and kind not in kinds:
            raise ConfigError(
                f"--{name.replace('_', '-')} is an option of {' and '.join(kinds)}; "
                f"this data is {kind}"
            )
    for options in {owners[name][0] for name in values}:
        from_dict(options, values).validate()


def _check_rates(config: FitConfig) -> None:
    if isinstance(config.lr, str) and config.lr != "auto":
        try:
            config.lr = float(config.lr)
        except ValueError:
            raise ConfigError(
                f"--lr must be a positive number or auto, got {config.lr!r}"
            ) from None
    for name in ("lr", "backbone_lr_mult"):
        value = getattr(config, name)
        if value == "auto":
            continue
        if value is not None and not value > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if not 0.0 < config.layer_decay <= 1.0:
        raise ConfigError(f"--layer-decay must be in (0, 1], got {config.layer_decay}")
    if config.strategy == "feature-extract" and config.layer_decay != 1.0:
        raise ConfigError(
            "--layer-decay needs a strategy that trains the backbone, not feature-extract"
        )


def _check_task(config: FitConfig) -> None:
    from graft.tasks import CHOOSABLE

    if not 0.0 < config.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be between 0 and 1, got {config.val_fraction}")
    if not isinstance(config.cv_folds, int) or config.cv_folds < 0 or config.cv_folds == 1:
        raise ConfigError(
            f"--cv-folds must be 0 (no estimate) or at least 2, got {config.cv_folds}"
        )
    if config.task not in ("auto", *CHOOSABLE):
        raise ConfigError(
            f"--task must be auto or one of {', '.join(CHOOSABLE)}, got {config.task!r}"
        )
    if config.label_delimiter is not None:
        if not config.label_delimiter.strip():
            raise ConfigError("--label-delimiter must be a visible character, like ; or |")
        if config.task not in ("auto", "multilabel"):
            raise ConfigError(f"--label-delimiter splits multilabel rows, not {config.task} ones")


def _check_regularisation(config: FitConfig) -> None:
    if config.label_smoothing is not None and not 0.0 <= config.label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.weight_decay < 0:
        raise ConfigError(f"weight_decay must not be negative, got {config.weight_decay}")
    if config.grad_clip is not None and not config.grad_clip > 0:
        raise ConfigError(f"--grad-clip must be positive, got {config.grad_clip}")


def _check_sampling(config: FitConfig) -> None:
    if config.class_weights not in (None, "none", "auto"):
        raise ConfigError(f"--class-weights must be auto or none, got {config.class_weights!r}")
    if config.sampler not in (None, "none", "balanced"):
        raise ConfigError(f"--sampler must be balanced or none, got {config.sampler!r}")
    check_choice("augment", config.augment, AUGMENT_PRESETS)
    if config.views > 1 and config.augment == "none":
        raise ConfigError("--views above 1 needs augmented views: --augment light or strong")


def _check_engine(config: FitConfig) -> None:
    check_choice("logger", config.logger, LOGGERS)
    config.precision = check_precision(config.precision)
    if config.distributed not in (None, "none", *DISTRIBUTED):
        raise ConfigError(
            f"--distributed must be one of {', '.join(DISTRIBUTED)}, got {config.distributed!r}"
        )
    if config.num_workers is not None and config.num_workers < 0:
        raise ConfigError(f"--num-workers must not be negative, got {config.num_workers}")


def _check_lora(config: FitConfig) -> None:
    names = ("lora_rank", "lora_alpha", "lora_targets")
    given = [n for n in names if getattr(config, n) is not None]
    if config.strategy != "lora":
        if given:
            options = ", ".join(f"--{n.replace('_', '-')}" for n in given)
            raise ConfigError(f"{options} configure --strategy lora, not {config.strategy}")
        return
    if config.lora_rank is not None and (
        not isinstance(config.lora_rank, int) or config.lora_rank < 1
    ):
        raise ConfigError(f"--lora-rank must be a positive integer, got {config.lora_rank}")
    if config.lora_alpha is not None and not config.lora_alpha > 0:
        raise ConfigError(f"--lora-alpha must be positive, got {config.lora_alpha}")
    if config.lora_targets is not None and not config.lora_target_list():
        raise ConfigError("--lora-targets must name modules, comma-separated (like query,value)")


def _check_adaptation(config: FitConfig) -> None:
    from graft.adaptation.catalogue import OBJECTIVES

    if config.adapt not in ("none", "auto", *OBJECTIVES):
        raise ConfigError(
            f"--adapt must be one of {', '.join(OBJECTIVES)}, auto or none, got {config.adapt!r}"
        )
    if not config.adapt_weight > 0:
        raise ConfigError(f"--adapt-weight must be positive, got {config.adapt_weight}")
    if config.adapt != "none" and config.strategy == "feature-extract":
        raise ConfigError(
            f"--adapt {config.adapt} aligns the backbone's features, which --strategy "
            f"{config.strategy} keeps frozen: use --strategy full, fine-tune, partial, gradual, "
            "lora or auto"
        )


def _check_tasks(config: FitConfig) -> None:
    """Normalise ``tasks`` and ``task_weights`` (see :class:`FitConfig`) and check them."""
    if config.tasks is None:
        if config.task_weights is not None:
            raise ConfigError("--task-weights weighs the tasks of --tasks: give --tasks too")
        return
    config.tasks = parse_tasks(config.tasks)
    if config.task != "auto":
        raise ConfigError(
            "--task sets the kind of the one label column; with --tasks give a column's "
            "kind as COLUMN:KIND (like rating:regression)"
        )
    if config.task_weights is not None:
        config.task_weights = parse_task_weights(config.task_weights, list(config.tasks))


#: ``task_weights`` that learns the weights (Kendall et al. 2018) instead of fixing them.
UNCERTAINTY = "uncertainty"


def parse_tasks(value: str | list[str] | dict[str, str]) -> dict[str, str]:
    """``tasks`` as a dict column -> kind (``auto`` where not given); see :class:`FitConfig`.

    Raises:
        ConfigError: fewer than two columns, a column named twice, or an unknown kind.
    """
    from graft.data import TASKS

    if isinstance(value, dict):
        pairs = [(str(name), str(kind)) for name, kind in value.items()]
    else:
        entries = value.split(",") if isinstance(value, str) else [str(v) for v in value]
        pairs = []
        for entry in (e.strip() for e in entries):
            name, _, kind = entry.rpartition(":") if ":" in entry else (entry, "", "auto")
            pairs.append((name.strip(), kind.strip()))
    tasks: dict[str, str] = {}
    for name, kind in pairs:
        if not name:
            raise ConfigError(f"--tasks names an empty column in {value!r}")
        if kind not in ("auto", *TASKS):
            raise ConfigError(
                f"--tasks: the kind of column {name!r} must be one of {', '.join(TASKS)} "
                f"(or left out to infer it), got {kind!r}"
            )
        if name in tasks:
            raise ConfigError(f"--tasks names column {name!r} twice")
        tasks[name] = kind
    if len(tasks) < 2:
        raise ConfigError(
            f"--tasks needs at least two label columns, got {', '.join(tasks) or 'none'} "
            "(for one, use --label-column)"
        )
    return tasks


def parse_task_weights(
    value: str | list[float] | dict[str, float], tasks: list[str]
) -> dict[str, float] | str:
    """``task_weights`` as a dict task -> weight, or ``"uncertainty"``; see :class:`FitConfig`.

    Raises:
        ConfigError: weights that do not match ``tasks`` (too many, too few, unknown names),
            that are not numbers, negative or not finite, or all zero.
    """
    if isinstance(value, str) and value.strip() == UNCERTAINTY:
        return UNCERTAINTY
    if isinstance(value, str):
        entries = [e.strip() for e in value.split(",") if e.strip()]
        if entries and all("=" in e for e in entries):
            value = dict(tuple(part.strip() for part in e.split("=", 1)) for e in entries)
        elif any("=" in e for e in entries):
            raise ConfigError(
                f"--task-weights {value!r}: give every weight by name (a=1,b=0.5) or none"
            )
        else:
            value = entries
    if isinstance(value, dict):
        unknown = [name for name in value if name not in tasks]
        if unknown:
            raise ConfigError(
                f"--task-weights names {', '.join(map(repr, unknown))}, not among the tasks "
                f"({', '.join(tasks)})"
            )
        missing = [name for name in tasks if name not in value]
        if missing:
            raise ConfigError(f"--task-weights gives no weight for {', '.join(map(repr, missing))}")
        weights = {name: value[name] for name in tasks}
    else:
        values = list(value)
        if len(values) != len(tasks):
            raise ConfigError(
                f"--task-weights gives {len(values)} weight(s) for the {len(tasks)} tasks "
                f"{', '.join(tasks)}"
            )
        weights = dict(zip(tasks, values, strict=True))
    checked = {}
    for name, weight in weights.items():
        try:
            number = float(weight)
        except (TypeError, ValueError):
            raise ConfigError(
                f"--task-weights: the weight of {name!r} is {weight!r}, not a number "
                f"(give numbers, name=number pairs, or {UNCERTAINTY})"
            ) from None
        if not math.isfinite(number) or number < 0:
            raise ConfigError(
                f"--task-weights: the weight of {name!r} is {weight}; weights must be finite "
                "and not negative"
            )
        checked[name] = number
    if not any(checked.values()):
        raise ConfigError("--task-weights: at least one weight must be positive")
    return checked
