"""``graft pretrain``: train a backbone on a larger dataset you own, then fit with it.

The run directory::

    pretrain.json   objective, init, model, data (source, counts, SHA-256), settings, the loss
                    before training and per epoch, versions; "status" is "running" until the
                    backbone is written, then "finished"
    backbone/       the backbone, in a layout ``create_backbone`` reads (:mod:`.saving`)
    logs/           Lightning's CSV logs (and TensorBoard's or MLflow's, when asked)
    checkpoints/    per-epoch checkpoints while it runs (removed when it finishes)

``graft fit DATA --model RUN`` (``graft.fit(data, model=RUN)``) then loads ``RUN/backbone`` with
the preprocessing it was pre-trained with. The run is locked while it is written, files are
written atomically, a non-empty folder is refused without ``overwrite``, and an interrupted run
continues from its last epoch with ``graft pretrain --resume RUN``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from graft.backbones import Backbone, create_backbone
from graft.backbones.registry import PRETRAIN_RECORD, PRETRAINED_BACKBONE, SCRATCH_PREFIX
from graft.config import DEFAULT_MODELS
from graft.data import LabelledData
from graft.errors import ConfigError, RunError
from graft.pretraining import mlm, simclr, supervised
from graft.pretraining.base import mean_loss
from graft.pretraining.config import PretrainConfig
from graft.pretraining.data import load_pretrain_data, resolve_objective, split_for_pretraining
from graft.pretraining.saving import save_backbone
from graft.runs.directory import (
    FORMAT_VERSION,
    check_run_dir,
    finish_run,
    read_json,
    run_lock,
    write_json,
)
from graft.training.budget import TimeBudget
from graft.training.engine import EngineOptions, require_logger, run_phase, training_callbacks
from graft.training.phase import Phase

log = logging.getLogger("graft")

#: objective -> the function that builds its module and loaders.
PREPARE = {"supervised": supervised.prepare, "simclr": simclr.prepare, "mlm": mlm.prepare}
PHASE = "pretrain"


@dataclass
class PretrainResult:
    """A finished pre-training run.

    Attributes:
        path: the run directory; pass it as ``model`` to :func:`graft.fit`.
        backbone: the pre-trained backbone (the objective's head dropped).
        record: the contents of ``pretrain.json``.
    """

    path: Path
    backbone: Backbone
    record: dict[str, Any]

    @property
    def history(self) -> list[dict]:
        """Per-epoch ``train_loss``, ``val_loss`` and seconds."""
        return self.record["history"]


def pretrain(
    data: str | os.PathLike,
    *,
    out: str | os.PathLike,
    overwrite: bool = False,
    resume: bool = False,
    text_column: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    **params: Any,
) -> PretrainResult:
    """Pre-train a backbone on ``data`` and write it to the run directory ``out``.

    Args:
        data: labelled data as ``graft fit`` reads it, or unlabelled data: a folder of images
            (class folders optional), a folder of ``.txt`` files, a table's text or image
            column, or a ``.txt`` file with one text per line.
        out: the run directory (refused when not empty, unless ``overwrite``).
        resume: continue the interrupted run in ``out`` from its last epoch.
        **params: any field of :class:`PretrainConfig` (``objective``, ``init``, ``model``,
            ``epochs``, ``image_size``, ``max_length``, ...).

    Example:
        >>> run = graft.pretrain("photos/", out="runs/pre")  # doctest: +SKIP
        >>> graft.fit("labelled_photos/", model=run.path)  # doctest: +SKIP
    """
    unknown = set(params) - {f.name for f in dataclasses.fields(PretrainConfig)}
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
    config = PretrainConfig(**params).validate()
    if config.logger != "csv":
        require_logger(config.logger)
    out = Path(out).expanduser()
    if not resume:
        check_run_dir(out, overwrite)
    columns = dict(text_column=text_column, image_column=image_column, label_column=label_column)
    with run_lock(out, create=not resume):
        return _pretrain(data, out, config, resume, columns)


def resume_pretrain(run: str | os.PathLike) -> PretrainResult:
    """Finish a pre-training run that was interrupted, from its last checkpoint."""
    run = Path(run).expanduser()
    record = read_record(run)
    if record.get("status") == "finished":
        raise RunError(f"{run}: this pre-training run has finished: nothing to resume")
    arguments = record["arguments"]
    config = {k: v for k, v in record["config"].items() if k != "objective"}
    return pretrain(
        arguments["data"],
        out=run,
        resume=True,
        objective=record["config"]["objective"],
        **arguments["columns"],
        **config,
    )


def read_record(run: Path) -> dict:
    """The ``pretrain.json`` of the run ``run`` (RunError when it is not a pre-training run)."""
    if not (run / PRETRAIN_RECORD).is_file():
        raise RunError(f"{run}: not a pre-training run ({PRETRAIN_RECORD} is missing)")
    return read_json(run / PRETRAIN_RECORD)


def _pretrain(
    source, out: Path, requested: PretrainConfig, resume: bool, columns: dict
) -> PretrainResult:
    started = time.perf_counter()
    budget = TimeBudget.of(requested.time_limit)
    data, reason = load_pretrain_data(source, objective=requested.objective, **columns)
    record = _resumable_record(out, data) if resume else None
    objective = resolve_objective(requested.objective, data, reason)
    config = requested.resolved(objective)
    config.model = config.model or DEFAULT_MODELS[data.modality]
    backbone = _backbone(config, data)
    train, val = split_for_pretraining(data, config.val_fraction, config.seed)
    log.info(
        "pre-training %s (%s) by %s on %d %s items (%d held out for the loss)",
        config.model,
        "from scratch" if config.init == "scratch" else "from its pretrained weights",
        objective,
        len(train),
        data.modality,
        len(val),
    )
    phase = Phase(
        name=PHASE,
        epochs=config.epochs,
        backbone_groups=None,
        head_lr=config.head_lr,
        backbone_lr=config.lr,
        patience=config.patience,
        warmup_fraction=config.warmup_fraction,
        monitor="val_loss",
        batchnorm_statistics=True,
    )
    torch.manual_seed(config.seed)  # the objective's head
    module, train_loader, val_loader = PREPARE[objective](backbone, train, val, config, phase)
    keeping_time = _budget_callback(budget, phase, train_loader, val_loader)
    if record is None:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        record = _new_record(config, data, train, val, backbone, source, columns)
        record["initial_val_loss"] = mean_loss(module.batch_loss, module, val_loader)
        if hasattr(module, "head_source"):
            record["mlm_head"] = module.head_source
        write_json(out / PRETRAIN_RECORD, record)
    with training_callbacks(*keeping_time):
        rows = run_phase(
            module,
            train_loader,
            val_loader,
            out,
            config.seed,
            EngineOptions(
                precision=config.precision, progress=config.progress, logger=config.logger
            ),
            resume,
        )
    if budget is not None:
        budget.finish_phase(len(rows))
        record["time_limit"] = budget.record()
    text_model = module.mlm if objective == "mlm" else None
    save_backbone(backbone, out / PRETRAINED_BACKBONE, text_model=text_model)
    if backbone.modality == "text":  # the tokenizer now travels with the backbone
        record["preprocessing"]["tokenizer"] = PRETRAINED_BACKBONE
    record.update(_outcome(rows, time.perf_counter() - started))
    write_json(out / PRETRAIN_RECORD, record)
    finish_run(out)
    return PretrainResult(out, backbone.eval(), record)


def _budget_callback(budget: TimeBudget | None, phase: Phase, train_loader, val_loader) -> list:
    """The callback that keeps the one phase of a pre-training run inside ``--time-limit``
    (none without one); a limit already spent before training is refused."""
    if budget is None:
        return []
    budget.reserve_end(0)
    budget.refuse_if_short(0.0)
    budget.admits(phase.name, phase.epochs, (0, 1), 0.0)
    return [budget.callback(train_loader, val_loader)]


def _backbone(config: PretrainConfig, data: LabelledData) -> Backbone:
    """The backbone to pre-train: the model's weights, or its architecture from scratch, at
    ``image_size`` or ``max_length`` when given."""
    spec = config.model if config.init == "pretrained" else f"{SCRATCH_PREFIX}{config.model}"
    backbone = create_backbone(spec)
    if backbone.modality != data.modality:
        raise ConfigError(
            f"--model {config.model} is a {backbone.modality} backbone, but {data.source} "
            f"holds {data.modality} data"
        )
    if config.image_size is not None:
        if backbone.modality != "image":
            raise ConfigError(f"--image-size resizes images; {config.model} reads text")
        size = (config.image_size, config.image_size)
        backbone.preprocessing = dataclasses.replace(backbone.preprocessing, input_size=size)
    if config.max_length is not None:
        if backbone.modality != "text":
            raise ConfigError(f"--max-length cuts texts; {config.model} reads images")
        limit = getattr(backbone.model.config, "max_position_embeddings", None)
        if limit is not None and config.max_length > limit:
            raise ConfigError(
                f"--max-length {config.max_length} is over the {limit} positions {config.model} has"
            )
        length = config.max_length
        backbone.preprocessing = dataclasses.replace(backbone.preprocessing, max_length=length)
    return backbone


def _new_record(
    config: PretrainConfig,
    data: LabelledData,
    train: LabelledData,
    val: LabelledData,
    backbone: Backbone,
    source,
    columns: dict,
) -> dict:
    from graft.runs.persistence import versions as _versions

    return {
        "format_version": FORMAT_VERSION,
        "status": "running",
        "objective": config.objective,
        "init": config.init,
        "model": config.model,
        "modality": data.modality,
        "feature_dim": backbone.feature_dim,
        "preprocessing": backbone.preprocessing.to_dict(),
        "data": {
            "source": data.source,
            "labelled": data.labels is not None,
            "classes": list(data.classes) if data.labels is not None else None,
            "items": {"train": len(train), "val": len(val)},
            "skipped": len(data.skipped),
            "content_sha256": data.content_hash(),
        },
        "config": config.to_dict(),
        "arguments": {
            "data": str(Path(source).expanduser().resolve()),
            "columns": {k: v for k, v in columns.items() if v is not None},
        },
        "versions": _versions(),
        "backbone": PRETRAINED_BACKBONE,
    }


def _resumable_record(out: Path, data: LabelledData) -> dict:
    """The record of the interrupted run in ``out``, checked against the data it trains on."""
    record = read_record(out)
    if record.get("status") == "finished":
        raise RunError(f"{out}: this pre-training run has finished: nothing to resume")
    if record["data"]["content_sha256"] != data.content_hash():
        raise RunError(
            f"{out}: the data in {data.source} changed since this run started; start a new run"
        )
    return record


def _outcome(rows: list[dict], seconds: float) -> dict:
    """What the finished run records: the per-epoch losses, the kept epoch, the time."""
    kept = next((row["epoch"] for row in rows if row.get("kept")), rows[-1]["epoch"])
    return {
        "status": "finished",
        "epochs": {"ran": len(rows), "kept": kept},
        "loss": {
            "train": [row.get("train_loss") for row in rows],
            "val": [row.get("val_loss") for row in rows],
        },
        "history": rows,
        "seconds": round(seconds, 3),
    }
