"""The configuration of a fit: every hyperparameter, validated once, saved with the run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from graft.errors import ConfigError
from graft.options import (
    AUGMENT_PRESETS,
    DISTRIBUTED,
    LOGGERS,
    check_choice,
    check_positive_integers,
    check_precision,
    from_dict,
    option,
)

#: The backbone of each modality when ``model`` is not given.
DEFAULT_MODELS = {
    "image": "efficientnet_lite0",
    "text": "minilm",
    "audio": "audio:efficientnet_lite0",
}


@dataclass
class FitConfig:
    """Hyperparameters of :func:`graft.fit`; ``None`` means "graft's default for this data".

    Attributes:
        model: backbone model string; None picks ``efficientnet_lite0`` for images,
            ``minilm`` for text and ``audio:efficientnet_lite0`` (log-mel spectrograms through
            it) for audio.
        strategy: ``"fine-tune"`` (head on frozen features, then the whole network),
            ``"feature-extract"`` (head only, on cached features), ``"full"`` (everything from
            the first step), ``"partial"`` (head, then the top ``unfreeze`` groups) or
            ``"gradual"`` (head, then one more group every ``unfreeze_every`` epochs) or
            ``"lora"`` (head, then low-rank adapters on the frozen backbone), ``"contrastive"``
            (the backbone fine-tuned on pairs of labelled examples, SetFit's recipe for text, or
            by supervised contrastive learning for images, then the head:
            :mod:`graft.strategies.contrastive`), or ``"auto"``: feature-extract, contrastive,
            partial or full, chosen from measurements of the data and the frozen backbone
            (:mod:`graft.selection.advisor`; the reasons go in the summary).
        epochs: epochs of the phase that trains most (the backbone phase of fine-tune, the
            head of feature-extract); None: 3 for fine-tune, 30 for feature-extract.
        head_epochs: epochs of fine-tune's first, head-only phase.
        batch_size: examples per step through the backbone.
        lr: learning rate of the head, or ``"auto"``: the suggestion of a learning-rate range
            test on the head over cached features (:mod:`graft.training.lr_finder`).
        backbone_lr_mult: backbone learning rate as a fraction of ``lr``; None: 0.1 for
            images and audio encoders, 0.02 for text, 1.0 for an image network shown
            spectrograms (``audio:MODEL``, whose BatchNorm statistics also adapt).
        layer_decay: layer-wise learning-rate decay: each backbone group down from the top
            trains at this factor times the rate of the one above (1.0: no decay).
        unfreeze: backbone groups that train with ``partial``, counted from the top.
        unfreeze_every: epochs between two unfreezing steps of ``gradual``.
        lora_rank: rank of ``lora``'s adapters; None: 8.
        lora_alpha: ``lora``'s scale numerator (updates scaled by ``alpha / rank``); None:
            twice the rank.
        lora_targets: comma-separated module-name patterns ``lora`` adapts (a full name or
            its last components: ``query,value``, ``attn.qkv``); None: the backbone's
            defaults (:meth:`graft.backbones.Backbone.lora_targets`).
        baseline: ``"scratch"``: also train the same architecture from random weights, with
            the same data, seed and epochs, and report the transfer gain
            (:mod:`graft.selection.baseline`); None: no baseline.
        baseline_epochs: epochs of the scratch baseline; None: as many as the fit ran in all
            its phases together.
        adapt: domain adaptation to unlabelled target data (``fit(..., target=...)``) while
            the backbone trains: a method of :data:`graft.adaptation.catalogue.OBJECTIVES`
            (``dann``, ``coral``, ``mmd``, ``cdan``, ``mcc``, ``mdd``, ``self-training``,
            ``mcc+cdan``, ``mcc+self-training``), ``auto`` (chosen from label-free
            measurements: :mod:`graft.adaptation.auto`) or ``none`` (source-only training; the
            target is only measured).
        adapt_weight: weight of the adaptation loss against the classification loss.
        adapt_guard: the source-risk guard (:mod:`graft.adaptation.guard`): each adapted phase
            also trains source-only from the same weights, and the adapted weights are kept
            only if they score no worse on the source validation data. Doubles the cost of
            the adapted phases; makes adaptation no worse than source-only training.
        image_size: side in pixels that images (and an audio backbone's spectrograms) are
            resized to, instead of the size the weights were trained at (smaller is faster:
            16-pixel digits need no 224); None: the weights' own size.
        max_length: tokens a text is cut to, instead of the length the model was trained for
            (shorter is faster; attention's cost grows with the square of it); None: the
            model's own length.
        clip_seconds: seconds every audio clip is cropped (at random offsets while training)
            or zero-padded to; None: the length of 95% of the training clips, rounded up to
            0.1 s, at most 10 s (:func:`graft.backbones.audio.preprocessing.default_clip_seconds`).
        seed: seeds the split, the initialisation and the data order.
        val_fraction: share of each class held out for validation when none is given.
        cv_folds: with few labels (fewer than
            :data:`graft.fewshot.few_labels.FEW_LABELS_PER_CLASS` per class) and no validation
            data, no split is held out: every example trains with a fixed recipe and this many
            stratified folds cross-validate the estimate (``metrics.json``'s
            ``cross_validation``); 0: no estimate.
        task: ``"auto"`` (inferred from the labels: see :func:`graft.data.sources.infer_task`),
            ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        label_delimiter: what separates a multilabel row's labels; None: ``;`` or ``|``,
            whichever the labels hold.
        detector: the detector of ``task="detection"`` (:mod:`graft.tasks.detection.detectors`):
            ``fasterrcnn``, ``retinanet`` or ``fcos``; instance segmentation is Mask R-CNN.
        architecture, loss, binary_masks, ignore_index: ``task="segmentation"``'s decoder
            (``unet``, ``fpn``, ``deeplabv3plus``), pixel loss (``ce``, ``dice``, ``ce+dice``),
            masks read as background and one foreground (every value above 0), and the mask
            value left out of loss and metrics (:mod:`graft.tasks.segmentation.task`).
        tasks: several label columns of a table, trained at once with one head each on the
            shared backbone (:class:`graft.multitask.MultiTaskClassifier`): a list of column
            names, a comma-separated string, or a dict column -> kind; ``COLUMN:KIND`` sets
            a column's kind (``multiclass``, ``multilabel``, ``regression``; otherwise
            inferred as ``task="auto"`` infers it). Normalised to a dict column -> kind.
            None: one task, the label column.
        task_weights: how the tasks' losses add up: None (every weight 1), one weight per task
            in the order of ``tasks`` (a list, or ``"1,0.5"``), weights by name (a dict, or
            ``"sentiment=1,topic=0.5"``), or ``"uncertainty"``: weights learned by
            homoscedastic uncertainty (Kendall et al. 2018). Normalised to a dict task ->
            weight, or ``"uncertainty"``.
        label_smoothing, weight_decay: regularisation of the loss and of AdamW.
        grad_clip: clip the gradient norm to this value (None: no clipping).
        logger: the training curves also go to ``tensorboard`` or ``mlflow`` (Lightning's
            loggers), besides the CSV files every run keeps (``csv``).
        class_weights: ``"auto"`` weighs the loss by inverse class frequency.
        sampler: ``"balanced"`` draws every class equally often.
        augment: image augmentation preset while the backbone trains: ``none``, ``light``
            (crop and flip) or ``strong`` (RandAugment, random erasing, mixup and cutmix).
        views: with ``feature-extract`` (and the head phase of the others), cache this many
            views of each training image: the plain one and ``views - 1`` augmented ones, so
            the backbone still runs once per view, never once per epoch.
        precision: ``32``, ``16-mixed`` (CUDA) or ``bf16-mixed``, as Lightning's Trainer takes it.
        devices, num_nodes: processes per node and nodes for the phases that train the backbone.
        distributed: ``ddp`` or ``fsdp`` across those processes (None: ddp when more than one).
        num_workers: data-loading processes; None: none on CPU, up to 8 on a GPU.
        cache_dir: root of the feature cache; None: ``$GRAFT_CACHE_DIR`` or ``~/.cache/graft``.
        progress: show Lightning's progress bar.
    """

    model: str | None = option(
        None,
        "Backbone: a name from `graft models`, timm:NAME, hf:ORG/NAME, a folder, or a "
        "`graft pretrain` run.",
    )
    strategy: str = option(
        "fine-tune",
        "fine-tune, feature-extract, full, partial, gradual, lora, contrastive (SetFit-style "
        "pairs for text, SupCon for images, then the head), or auto (chosen from measurements "
        "of the data and the frozen backbone).",
    )
    epochs: int | None = option(
        None, "Epochs of the main phase (fine-tune: 3, feature-extract: 30)."
    )
    head_epochs: int = option(30, "Epochs of fine-tune's head-only phase.")
    batch_size: int = option(32, "Examples per step.")
    lr: float | str = option(
        3e-3, "Learning rate of the head, or auto (a range test picks it).", cli_type=str
    )
    backbone_lr_mult: float | None = option(
        None, "Backbone learning rate as a fraction of --lr (images 0.1, text 0.02, audio:* 1)."
    )
    layer_decay: float = option(
        1.0, "Each backbone group down from the top trains at this times the rate above."
    )
    unfreeze: int = option(2, "Backbone groups trained by --strategy partial.")
    unfreeze_every: int = option(1, "Epochs between unfreezing steps of --strategy gradual.")
    lora_rank: int | None = option(None, "Rank of --strategy lora's adapters (default 8).")
    lora_alpha: float | None = option(
        None, "LoRA scale numerator: updates scaled by alpha/rank (default 2 x rank)."
    )
    lora_targets: str | None = option(
        None,
        "Comma-separated module names LoRA adapts, like query,value (default: the backbone's own).",
    )
    baseline: str | None = option(
        None,
        "scratch: also train the architecture from random weights and report the transfer "
        "gain (negative transfer when pretraining hurt).",
    )
    baseline_epochs: int | None = option(
        None, "Epochs of the scratch baseline (default: as many as the fit ran)."
    )
    adapt: str = option(
        "none",
        "Domain adaptation to --target-unlabeled: dann, coral, mmd, cdan, mcc, mdd, "
        "self-training, mcc+cdan, mcc+self-training, auto (chosen from label-free "
        "measurements), or none (source-only).",
    )
    adapt_weight: float = option(1.0, "Weight of the adaptation loss against the task loss.")
    adapt_guard: bool = option(
        True,
        "Also train source-only and keep the adapted model only if it scores no worse on the "
        "source validation data (doubles the adapted phases' time).",
    )
    image_size: int | None = option(
        None, "Resize images to this side in pixels (default: the weights' size)."
    )
    max_length: int | None = option(
        None, "Cut texts to this many tokens (default: the model's own length)."
    )
    clip_seconds: float | None = option(
        None,
        "Crop or pad audio clips to this many seconds (default: the length of 95% of the "
        "training clips, at most 10).",
    )
    seed: int = option(0, "Seed of the split, initialisation and data order.")
    val_fraction: float = option(
        0.2, "Share of each class held out when no validation data is given."
    )
    cv_folds: int = option(
        5,
        "With few labels and no validation data every example trains and this many folds "
        "cross-validate the estimate (0: none).",
    )
    task: str = option(
        "auto", "auto, multiclass, multilabel (a row's labels joined by ; or |) or regression."
    )
    label_delimiter: str | None = option(
        None, "What separates a multilabel row's labels (default: ; or |)."
    )
    detector: str = option(
        "fasterrcnn",
        "Detection: fasterrcnn (Faster R-CNN with a feature pyramid), retinanet or fcos "
        "(instance segmentation trains Mask R-CNN).",
    )
    architecture: str = option("unet", "Segmentation: unet, fpn or deeplabv3plus (smp's).")
    loss: str = option("ce+dice", "Segmentation: ce, dice or ce+dice (their sum).")
    binary_masks: bool = option(False, "Segmentation: every mask value above 0 is foreground.")
    ignore_index: int = option(255, "Segmentation: the mask value left out of loss and metrics.")
    tasks: dict[str, str] | None = option(
        None,
        "Train several label columns of a table at once, one head each on the shared "
        "backbone: sentiment,topic,rating (each kind inferred; COLUMN:KIND sets it, like "
        "rating:regression). A row missing a task's label still trains the others.",
        cli_type=str,
    )
    task_weights: dict[str, float] | str | None = option(
        None,
        "How the --tasks losses add up: weights in --tasks order (1,0.5), by name "
        "(sentiment=1,topic=0.5), or uncertainty (learned; Kendall et al. 2018). Default: 1 "
        "each.",
        cli_type=str,
    )
    label_smoothing: float = option(0.1, "Label smoothing of the loss.")
    weight_decay: float = option(0.01, "AdamW weight decay.")
    grad_clip: float | None = option(None, "Clip the gradient norm.")
    logger: str = option("csv", "csv (always kept), or also tensorboard or mlflow.")
    class_weights: str | None = option(None, "auto: weigh the loss by inverse class frequency.")
    sampler: str | None = option(None, "balanced: draw every class equally often.")
    augment: str = option(
        "light", "Image augmentation while the backbone trains: none, light, strong."
    )
    views: int = option(1, "Cached views per training image for the head (1 plain + augmented).")
    precision: str = option("32", "32, 16-mixed (CUDA) or bf16-mixed, as Lightning takes it.")
    devices: int = option(1, "Processes (GPUs, or CPU processes) per node.")
    num_nodes: int = option(1, "Nodes of a multi-node run.")
    distributed: str | None = option(
        None, "ddp or fsdp across devices and nodes (default: ddp above 1 device)."
    )
    num_workers: int | None = option(None, "Data-loading processes.")
    cache_dir: str | None = option(
        None, "Root of the feature cache (default: $GRAFT_CACHE_DIR or ~/.cache/graft)."
    )
    progress: bool = option(True, "Show the progress bar.")

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
        self._validate_lora()
        self._validate_adaptation()
        check_positive_integers(
            self,
            ("epochs", "head_epochs", "batch_size", "unfreeze", "unfreeze_every", "views")
            + ("baseline_epochs", "image_size", "max_length", "devices", "num_nodes"),
        )
        if self.clip_seconds is not None and not self.clip_seconds > 0:
            raise ConfigError(f"--clip-seconds must be positive, got {self.clip_seconds}")
        self._validate_rates()
        self._validate_task()
        self._validate_tasks()
        self._validate_regularisation()
        self._validate_logger()
        self._validate_sampling()
        self._validate_engine()
        return self

    def _validate_rates(self) -> None:
        if isinstance(self.lr, str) and self.lr != "auto":
            try:
                self.lr = float(self.lr)
            except ValueError:
                raise ConfigError(
                    f"--lr must be a positive number or auto, got {self.lr!r}"
                ) from None
        for name in ("lr", "backbone_lr_mult"):
            value = getattr(self, name)
            if value == "auto":
                continue
            if value is not None and not value > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"--layer-decay must be in (0, 1], got {self.layer_decay}")
        if self.strategy == "feature-extract" and self.layer_decay != 1.0:
            raise ConfigError(
                "--layer-decay needs a strategy that trains the backbone, not feature-extract"
            )

    def _validate_task(self) -> None:
        from graft.tasks import CHOOSABLE

        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}")
        if not isinstance(self.cv_folds, int) or self.cv_folds < 0 or self.cv_folds == 1:
            raise ConfigError(
                f"--cv-folds must be 0 (no estimate) or at least 2, got {self.cv_folds}"
            )
        if self.task not in ("auto", *CHOOSABLE):
            raise ConfigError(
                f"--task must be auto or one of {', '.join(CHOOSABLE)}, got {self.task!r}"
            )
        if self.label_delimiter is not None:
            if not self.label_delimiter.strip():
                raise ConfigError("--label-delimiter must be a visible character, like ; or |")
            if self.task not in ("auto", "multilabel"):
                raise ConfigError(f"--label-delimiter splits multilabel rows, not {self.task} ones")

    def _validate_regularisation(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must not be negative, got {self.weight_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"--grad-clip must be positive, got {self.grad_clip}")

    def _validate_sampling(self) -> None:
        if self.class_weights not in (None, "none", "auto"):
            raise ConfigError(f"--class-weights must be auto or none, got {self.class_weights!r}")
        if self.sampler not in (None, "none", "balanced"):
            raise ConfigError(f"--sampler must be balanced or none, got {self.sampler!r}")
        check_choice("augment", self.augment, AUGMENT_PRESETS)
        if self.views > 1 and self.augment == "none":
            raise ConfigError("--views above 1 needs augmented views: --augment light or strong")

    def _validate_engine(self) -> None:
        self.precision = check_precision(self.precision)
        if self.distributed not in (None, "none", *DISTRIBUTED):
            raise ConfigError(
                f"--distributed must be one of {', '.join(DISTRIBUTED)}, got {self.distributed!r}"
            )
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"--num-workers must not be negative, got {self.num_workers}")

    def _validate_lora(self) -> None:
        names = ("lora_rank", "lora_alpha", "lora_targets")
        given = [n for n in names if getattr(self, n) is not None]
        if self.strategy != "lora":
            if given:
                options = ", ".join(f"--{n.replace('_', '-')}" for n in given)
                raise ConfigError(f"{options} configure --strategy lora, not {self.strategy}")
            return
        if self.lora_rank is not None and (
            not isinstance(self.lora_rank, int) or self.lora_rank < 1
        ):
            raise ConfigError(f"--lora-rank must be a positive integer, got {self.lora_rank}")
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            raise ConfigError(f"--lora-alpha must be positive, got {self.lora_alpha}")
        if self.lora_targets is not None and not self.lora_target_list():
            raise ConfigError(
                "--lora-targets must name modules, comma-separated (like query,value)"
            )

    def _validate_adaptation(self) -> None:
        from graft.adaptation.catalogue import OBJECTIVES

        if self.adapt not in ("none", "auto", *OBJECTIVES):
            raise ConfigError(
                f"--adapt must be one of {', '.join(OBJECTIVES)}, auto or none, got {self.adapt!r}"
            )
        if not self.adapt_weight > 0:
            raise ConfigError(f"--adapt-weight must be positive, got {self.adapt_weight}")
        if self.adapt != "none" and self.strategy == "feature-extract":
            raise ConfigError(
                f"--adapt {self.adapt} aligns the backbone's features, which --strategy "
                f"{self.strategy} keeps frozen: use --strategy full, fine-tune, partial, gradual, "
                "lora or auto"
            )

    def _validate_tasks(self) -> None:
        """Normalise ``tasks`` and ``task_weights`` (see the class docstring) and check them."""
        if self.tasks is None:
            if self.task_weights is not None:
                raise ConfigError("--task-weights weighs the tasks of --tasks: give --tasks too")
            return
        self.tasks = parse_tasks(self.tasks)
        if self.task != "auto":
            raise ConfigError(
                "--task sets the kind of the one label column; with --tasks give a column's "
                "kind as COLUMN:KIND (like rating:regression)"
            )
        if self.task_weights is not None:
            self.task_weights = parse_task_weights(self.task_weights, list(self.tasks))

    def lora_target_list(self) -> list[str]:
        """``lora_targets`` split at commas ([] when not given)."""
        return [t.strip() for t in (self.lora_targets or "").split(",") if t.strip()]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _validate_logger(self) -> None:
        check_choice("logger", self.logger, LOGGERS)

    def resolved(self, **chosen: Any) -> FitConfig:
        """A copy with the values a fit chose for ``auto`` or ``None`` (``model``,
        ``strategy``, ``lr``); the original keeps the hyperparameters as given."""
        return replace(self, **chosen)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FitConfig:
        return from_dict(cls, values)


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
