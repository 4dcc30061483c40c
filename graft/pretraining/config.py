"""The configuration of a pre-training run: every option, validated once, saved with the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from graft.errors import ConfigError
from graft.options import AUGMENT_PRESETS, PRECISIONS, from_dict, option

OBJECTIVES = ("supervised", "simclr", "mlm")
INITS = ("pretrained", "scratch")
#: Per objective: epochs, examples per step, and the backbone's learning rate by ``init``.
DEFAULTS: dict[str, dict[str, Any]] = {
    "supervised": {"epochs": 10, "batch_size": 32, "lr": {"pretrained": 3e-4, "scratch": 1e-3}},
    "simclr": {"epochs": 20, "batch_size": 64, "lr": {"pretrained": 3e-4, "scratch": 1e-3}},
    "mlm": {"epochs": 3, "batch_size": 32, "lr": {"pretrained": 5e-5, "scratch": 5e-4}},
}
#: The objective's new head learns this many times faster than a pretrained backbone (as fast
#: as a backbone trained from scratch).
HEAD_LR_MULT = 10.0


@dataclass
class PretrainConfig:
    """Options of :func:`graft.pretrain`; ``None`` means "the objective's default".

    Attributes:
        model: the backbone to start from (any ``--model`` string: a registered name, a timm or
            Hugging Face name, a folder, an earlier pre-training run); None: efficientnet_lite0
            for images, minilm for text.
        objective: ``supervised`` (a classifier on the data's labels), ``simclr`` (contrastive
            learning on two augmented views of each image), ``mlm`` (masked-language-model
            training on text), or ``auto``: supervised when the data have labels, else simclr
            for images and mlm for text.
        init: ``pretrained`` continues from the model's weights (domain-adaptive continued
            pre-training); ``scratch`` starts from its architecture with random weights.
        epochs: the most epochs (supervised 10, simclr 20, mlm 3).
        batch_size: examples per step (simclr 64 images, two views each; 32 otherwise).
        lr: the backbone's peak learning rate (pretrained init: 3e-4, or 5e-5 for mlm; from
            scratch: 1e-3, or 5e-4 for mlm); the objective's head learns at
            :data:`HEAD_LR_MULT` times it when the backbone is pretrained, at it otherwise.
        weight_decay: AdamW's.
        warmup_fraction: share of the steps with a linear warm-up, before the cosine decay.
        patience: epochs without a lower validation loss before stopping.
        temperature: simclr: the temperature of the NT-Xent loss.
        projection_dim: simclr: the width of the projection head's output.
        flip: simclr: horizontal flips among the augmentations (off for digits or text in
            images, whose mirror images mean something else).
        mask_probability: mlm: the share of tokens chosen for prediction.
        augment: supervised, images: graft's augmentation preset (none, light, strong).
        image_size: resize images to this side (recorded: ``fit`` uses it by default).
        max_length: cut texts to this many tokens (recorded: ``fit`` uses it by default).
        val_fraction: share of the data held out to measure the loss each epoch.
        seed: seeds the split, the heads' initialisation, the data order and the augmentation.
        precision: ``32``, ``16-mixed`` (CUDA) or ``bf16-mixed``.
        num_workers: data-loading processes; None: none on CPU, up to 8 on a GPU.
        logger: where the curves go besides the CSV logs: ``csv``, ``tensorboard``, ``mlflow``.
        progress: show Lightning's progress bar.
        time_limit: finish within this duration (:mod:`graft.training.budget`).
    """

    model: str | None = option(
        None,
        "Backbone to start from: a name from `graft models`, timm:NAME, hf:ORG/NAME, a folder "
        "or an earlier pretrain run (default: efficientnet_lite0 or minilm).",
    )
    objective: str = option(
        "auto",
        "supervised (the data's labels), simclr (contrastive, unlabelled images), mlm (masked "
        "words, unlabelled text), or auto: supervised when the data have labels, else simclr "
        "for images and mlm for text.",
    )
    init: str = option(
        "pretrained",
        "pretrained: continue from the model's weights (domain-adaptive); scratch: its "
        "architecture from random weights.",
    )
    epochs: int | None = option(None, "Most epochs (supervised 10, simclr 20, mlm 3).")
    batch_size: int | None = option(None, "Examples per step (simclr 64 images, else 32).")
    lr: float | None = option(
        None,
        "Peak learning rate of the backbone (pretrained: 3e-4, mlm 5e-5; scratch: 1e-3, mlm "
        "5e-4); the objective's head learns 10x faster on a pretrained one.",
    )
    weight_decay: float = option(0.01, "AdamW weight decay.")
    warmup_fraction: float = option(
        0.1, "Share of the steps with a linear warm-up before the cosine decay.", cli=False
    )
    patience: int = option(5, "Epochs without a lower held-out loss before stopping.")
    temperature: float = option(0.5, "simclr: NT-Xent temperature.")
    projection_dim: int = option(128, "simclr: width of the projection head.", cli=False)
    flip: bool = option(True, "simclr: horizontal flips among the augmentations.")
    mask_probability: float = option(0.15, "mlm: share of the tokens masked and predicted.")
    augment: str = option("light", "supervised, images: augmentation preset none, light, strong.")
    image_size: int | None = option(
        None, "Resize images to this side in pixels (fit then uses it too)."
    )
    max_length: int | None = option(None, "Cut texts to this many tokens (fit then uses it too).")
    val_fraction: float = option(0.1, "Share of the data held out to measure the loss.")
    seed: int = option(0, "Seed of the split, heads, order, augmentation.")
    precision: str = option("32", "32, 16-mixed (CUDA) or bf16-mixed, as Lightning takes it.")
    num_workers: int | None = option(None, "Data-loading processes.")
    logger: str = option("csv", "csv (always kept), or also tensorboard or mlflow.")
    progress: bool = option(True, "Show the progress bar.")
    time_limit: float | str | None = option(
        None,
        "Finish within this time (90s, 10m, 2h, or seconds): epochs cut from measured step "
        "costs, the lowest validation loss so far kept.",
        cli_type=str,
    )

    def validate(self) -> PretrainConfig:
        """Check every option; raise :class:`ConfigError` naming the first bad one."""
        if self.time_limit is not None:
            from graft.training.budget import parse_duration

            parse_duration(self.time_limit)
        if self.objective not in ("auto", *OBJECTIVES):
            raise ConfigError(
                f"--objective must be auto or one of {', '.join(OBJECTIVES)}, "
                f"got {self.objective!r}"
            )
        if self.init not in INITS:
            raise ConfigError(f"--init must be pretrained or scratch, got {self.init!r}")
        for name in ("epochs", "batch_size", "patience", "projection_dim", "image_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"--{_option(name)} must be a positive integer, got {value}")
        if self.max_length is not None and (
            not isinstance(self.max_length, int) or self.max_length < 8
        ):
            raise ConfigError(
                f"--max-length must be an integer of at least 8, got {self.max_length}"
            )
        for name in ("lr", "temperature"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"--{_option(name)} must be positive, got {value}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"--weight-decay must be 0 or more, got {self.weight_decay}")
        for name in ("warmup_fraction",):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"--{_option(name)} must be in [0, 1), got {getattr(self, name)}")
        for name in ("val_fraction", "mask_probability"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(
                    f"--{_option(name)} must be between 0 and 1, got {getattr(self, name)}"
                )
        if self.augment not in AUGMENT_PRESETS:
            raise ConfigError(
                f"--augment must be one of {', '.join(AUGMENT_PRESETS)}, got {self.augment!r}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.logger not in ("csv", "tensorboard", "mlflow"):
            raise ConfigError(f"--logger must be csv, tensorboard or mlflow, got {self.logger!r}")
        return self

    def resolved(self, objective: str) -> PretrainConfig:
        """A copy with the objective's defaults filled in (epochs, batch size, learning rate)."""
        defaults = DEFAULTS[objective]
        values = self.to_dict()
        values["objective"] = objective
        for name in ("epochs", "batch_size"):
            if values[name] is None:
                values[name] = defaults[name]
        if values["lr"] is None:
            values["lr"] = defaults["lr"][self.init]
        return PretrainConfig(**values)

    @property
    def head_lr(self) -> float:
        """The learning rate of the objective's own head."""
        return self.lr * (HEAD_LR_MULT if self.init == "pretrained" else 1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PretrainConfig:
        return from_dict(cls, values)


def _option(name: str) -> str:
    return name.replace("_", "-")
