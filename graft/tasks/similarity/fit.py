"""A similarity fit from start to run directory: the recipe from the options, the pretrained
encoder, mined negatives, training kept by validation nDCG@10, test metrics, the run.

The run directory holds ``config.json`` (as every run: options, status, the task), the
encoder (``encoder/``: its spec, weights and projection), ``metrics.json`` and
``history.json``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from graft.tasks.similarity.encoder import pretrained_encoder
from graft.tasks.similarity.mining import mine_negatives
from graft.tasks.similarity.model import ENCODER_FOLDER, SimilarityModel
from graft.tasks.similarity.training import Recipe, evaluate_encoder, train, validation_set

log = logging.getLogger("graft")


def recipe_of(config: Any, train_data: Any) -> tuple[Recipe, str]:
    """The training recipe of a fit's options (the kind's defaults where they are None), and
    the encoder's model string."""
    from graft.tasks.similarity import options as kind

    options = config.task_options
    frozen = config.strategy == "feature-extract"
    loss = options.get("similarity_loss", "auto")
    if loss == "auto":
        loss = "cosine" if train_data.scores is not None else "mnrl"
    if loss == "cosine" and train_data.scores is None:
        from graft.errors import ConfigError

        raise ConfigError(
            f"--similarity-loss cosine needs scored pairs; {train_data.source} has none"
        )
    if frozen:
        lr = config.lr if isinstance(config.lr, int | float) else kind.DEFAULT_PROJECTION_LR
    else:
        lr = options.get("encoder_lr") or kind.DEFAULT_ENCODER_LR
    recipe = Recipe(
        loss=loss,
        epochs=config.epochs or kind.DEFAULT_EPOCHS.get(config.strategy, 1),
        batch_size=config.batch_size or kind.DEFAULT_BATCH_SIZE,
        lr=float(lr),
        weight_decay=0.01 if config.weight_decay is None else float(config.weight_decay),
        seed=config.seed,
        scale=float(options.get("similarity_scale", 20.0)),
    )
    return recipe, config.model or kind.DEFAULT_MODEL


def fit_similarity(task, estimator, splits, config, out, overwrite: bool) -> Any:
    """Fit ``estimator`` on ``splits`` with ``config`` (the kind's options and defaults in);
    set its fitted attributes and write the run into ``out`` when given."""
    started = time.perf_counter()
    recipe, model = recipe_of(config, splits.train)
    encoder = pretrained_encoder(model, projection=config.strategy == "feature-extract")
    if config.strategy == "feature-extract":
        encoder.backbone.requires_grad_(False)
    train_data = splits.train
    if config.task_options.get("hard_negatives") and recipe.loss == "mnrl":
        log.info("mining a hard negative per pair with the pretrained encoder")
        train_data = mine_negatives(encoder, train_data, config.seed)
    val = validation_set(splits.val.retrieval(), config.seed)
    outcome = train(encoder, train_data, val, recipe)
    metrics = {"val": outcome.val_metrics}
    if splits.test is not None:
        metrics["test"] = evaluate_encoder(encoder, splits.test.retrieval())
    metrics["kept_epoch"] = outcome.kept_epoch
    metrics["kept_pretrained"] = outcome.kept_pretrained
    config = config.resolved(model=model, epochs=recipe.epochs, batch_size=recipe.batch_size)
    estimator.fitted_task_, estimator.config_, estimator.model_ = task, config, model
    estimator.backbone_, estimator.head_ = encoder.backbone, encoder.projection
    estimator.strategy_, estimator.lr_ = config.strategy, recipe.lr
    estimator.metrics_, estimator.history_ = metrics, outcome.history
    estimator.similarity_model_ = SimilarityModel(encoder, str(out) if out else model)
    estimator.summary_ = _summary(splits, recipe, outcome, time.perf_counter() - started)
    if out is not None:
        _write_run(Path(out), estimator, overwrite)
    return estimator


def _summary(splits: Any, recipe: Any, outcome: Any, seconds: float) -> dict:
    parts = {n: getattr(splits, n) for n in ("train", "val", "test") if getattr(splits, n)}
    return {
        "examples": {name: len(part) for name, part in parts.items()},
        "loss": recipe.loss,
        "seconds": {"train": outcome.seconds, "total": seconds},
        "skipped_count": 0,
        "feature_cache": {"hits": 0, "misses": 0},
    }


def _write_run(out: Path, estimator: Any, overwrite: bool) -> None:
    """The run directory: config.json (finished, with the task), the encoder, metrics."""
    import json

    from graft.runs.directory import start_run, write_json

    start_run(out, overwrite, False, estimator.config.to_dict(), None)
    estimator.similarity_model_.encoder.save(out / ENCODER_FOLDER)
    write_json(out / "metrics.json", estimator.metrics_)
    write_json(out / "history.json", estimator.history_)
    write_json(out / "summary.json", estimator.summary_)
    record = json.loads((out / "config.json").read_text())
    record.update(status="finished", task=estimator.fitted_task_.record())
    record["resolved"] = estimator.config_.to_dict()
    write_json(out / "config.json", record)
