"""The estimator: ``GraftClassifier(...).fit(data)``, then ``predict``, ``evaluate``, ``save``.

It follows scikit-learn's conventions: hyperparameters go to the constructor and are checked
there, fitted state lives in attributes ending in ``_``, and the same parameters and seed give
the same model.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from graft.backbones import Backbone, create_backbone
from graft.config import DEFAULT_MODELS, FitConfig
from graft.data import DataSplits, LabelledData, load_inputs, load_splits, stratified_split
from graft.data.transforms import Collate, InputDataset, mixup_for
from graft.errors import ConfigError, DataError, GraftError
from graft.evaluation import classification_metrics
from graft.features import CacheStats, FeatureCache, to_device
from graft.heads import ClassificationHead
from graft.strategies import STRATEGIES
from graft.training import TransferModule, run_phase
from graft.training.imbalance import balanced_class_weights, balanced_sampler

log = logging.getLogger("graft")

DataLike = str | os.PathLike | LabelledData


class NotFittedError(GraftError, AttributeError):
    """The model has not been fitted (or loaded) yet."""


class GraftClassifier:
    """Adapts a pretrained backbone to a labelled dataset with a new classification head.

    Args:
        **params: any field of :class:`graft.config.FitConfig` (``model``, ``strategy``,
            ``epochs``, ``batch_size``, ``lr``, ``seed``, ...).

    Attributes (after ``fit`` or :func:`graft.load`):
        classes_: class names, in the order of the probability columns.
        backbone_, head_: the trained network.
        metrics_: validation (and test) metrics; history_: per-epoch metrics;
        summary_: data counts, skipped inputs, feature-cache hits and timings.
    """

    def __init__(self, **params: Any):
        unknown = set(params) - set(FitConfig().to_dict())
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
        self.config = FitConfig(**params).validate()

    def get_params(self) -> dict[str, Any]:
        return self.config.to_dict()

    # Fitting ------------------------------------------------------------------------------------

    def fit(
        self,
        data: DataLike,
        val: DataLike | None = None,
        test: DataLike | None = None,
        *,
        out: str | os.PathLike | None = None,
        overwrite: bool = False,
        text_column: str | None = None,
        image_column: str | None = None,
        label_column: str | None = None,
    ) -> GraftClassifier:
        """Train on ``data`` (a folder, a table, or a :class:`LabelledData`).

        Validation data comes from ``val``, a ``val/`` folder beside ``train/``, or a seeded
        stratified split of ``data``. With ``out``, the run directory is written there.
        """
        from graft.runs import prepare_run_dir

        started = time.perf_counter()
        run_dir = prepare_run_dir(out, overwrite) if out is not None else None
        columns = dict(
            text_column=text_column, image_column=image_column, label_column=label_column
        )
        splits = self._resolve_splits(data, val, test, columns)
        config = self.config
        config.model = config.model or DEFAULT_MODELS[splits.train.modality]
        backbone = create_backbone(config.model)
        if backbone.modality != splits.train.modality:
            raise ConfigError(
                f"--model {config.model} is a {backbone.modality} backbone, but "
                f"{splits.train.source} holds {splits.train.modality} data"
            )
        if config.views > 1 and backbone.modality != "image":
            raise ConfigError("--views caches augmented views of images; this data is text")
        strategy = STRATEGIES[config.strategy]()
        torch.manual_seed(config.seed)  # the head's initialisation
        self.classes_ = list(splits.train.classes)
        self.backbone_ = backbone
        self.head_ = ClassificationHead(backbone.feature_dim, len(self.classes_))
        self.strategy_ = strategy
        cache = FeatureCache(Path(config.cache_dir) / "features" if config.cache_dir else None)
        timings: dict[str, float] = {}
        best = _BestPhase(backbone, self.head_)
        with tempfile.TemporaryDirectory(prefix="graft-") as scratch:
            self.history_ = self._train(splits, cache, best, run_dir or Path(scratch), timings)
        self.kept_phase_ = best.restore()
        self.metrics_ = {
            name: self._metrics(part, cache if strategy.frozen_backbone else None)
            for name, part in (("val", splits.val), ("test", splits.test))
            if part is not None
        }
        timings["total"] = time.perf_counter() - started
        self.summary_ = self._summary(splits, cache.stats, timings)
        self.summary_["kept_phase"] = self.kept_phase_
        self.splits_ = splits
        if run_dir is not None:
            self.save(run_dir, overwrite=True)
        return self

    def _train(
        self,
        splits: DataSplits,
        cache: FeatureCache,
        best: _BestPhase,
        work_dir: Path,
        timings: dict[str, float],
    ) -> list[dict]:
        """Run the strategy's phases through the engine; return the per-epoch history."""
        config, history = self.config, []
        for phase in self.strategy_.phases(config, self.backbone_):
            phase_start = time.perf_counter()
            if phase.train_backbone:
                train_loader, val_loader = self._input_loaders(splits)
            else:
                train_loader, val_loader = self._feature_loaders(splits, cache, timings)
            module = TransferModule(
                self.head_,
                phase,
                self.backbone_ if phase.train_backbone else None,
                label_smoothing=config.label_smoothing,
                weight_decay=config.weight_decay,
                class_weights=self._class_weights(splits),
                mixup=self._mixup() if phase.train_backbone else None,
            )
            trained = module.trained_parameters()
            log.info("phase %s: training %s parameters", phase.name, f"{trained:,}")
            rows = run_phase(
                module,
                train_loader,
                val_loader,
                work_dir,
                config.seed,
                config.progress,
                grad_clip=config.grad_clip,
            )
            for row in rows:
                row["trained_parameters"] = trained
            history += rows
            best.update(phase.name, rows)
            timings[f"phase_{phase.name}"] = time.perf_counter() - phase_start
        return history

    def _resolve_splits(self, data, val, test, columns) -> DataSplits:
        splits = (
            load_splits(data, **columns) if not isinstance(data, LabelledData) else DataSplits(data)
        )
        if val is not None:
            splits.val = _as_data(val, columns)
        if test is not None:
            splits.test = _as_data(test, columns)
        if splits.val is None:
            train_idx, val_idx = stratified_split(
                splits.train, self.config.val_fraction, self.config.seed
            )
            self.split_ = {"seed": self.config.seed, "val_fraction": self.config.val_fraction}
            splits = DataSplits(
                splits.train.subset(train_idx), splits.train.subset(val_idx), splits.test
            )
        else:
            self.split_ = None
        for name in ("val", "test"):
            part = getattr(splits, name)
            if part is None:
                continue
            if part.modality != splits.train.modality:
                raise DataError(
                    f"{part.source} holds {part.modality} data but the training data "
                    f"{splits.train.source} holds {splits.train.modality}"
                )
            setattr(splits, name, part.relabel(splits.train.classes))
        return splits

    def _num_workers(self) -> int:
        if self.config.num_workers is not None:
            return self.config.num_workers
        return min(8, os.cpu_count() or 1) if torch.cuda.is_available() else 0

    def _class_weights(self, splits: DataSplits) -> torch.Tensor | None:
        if self.config.class_weights != "auto":
            return None
        return balanced_class_weights(splits.train.labels, len(self.classes_))

    def _mixup(self):
        if self.backbone_.modality != "image":
            return None
        return mixup_for(self.config.augment, len(self.classes_), self.config.label_smoothing)

    def _train_order(self, labels: np.ndarray) -> dict:
        """DataLoader options for the training order: seeded shuffle, or class-balanced draws."""
        generator = torch.Generator().manual_seed(self.config.seed)
        if self.config.sampler == "balanced":
            return {"sampler": balanced_sampler(labels, generator)}
        return {"shuffle": True, "generator": generator}

    def _feature_loaders(self, splits: DataSplits, cache: FeatureCache, timings: dict):
        start = time.perf_counter()
        batch, workers = self.config.batch_size, self._num_workers()
        views = self.config.views if self.backbone_.modality == "image" else 1
        train_x = torch.cat(
            [
                cache.features(self.backbone_, splits.train, batch, workers, v, self.config.augment)
                for v in range(views)
            ]
        )
        val_x = cache.features(self.backbone_, splits.val, batch, workers)
        timings["features"] = timings.get("features", 0.0) + time.perf_counter() - start
        train_labels = np.tile(splits.train.labels, views)
        train = TensorDataset(train_x, torch.as_tensor(train_labels))
        val = TensorDataset(val_x, torch.as_tensor(splits.val.labels))
        return (
            DataLoader(train, batch_size=batch, **self._train_order(train_labels)),
            DataLoader(val, batch_size=512),
        )

    def _input_loaders(self, splits: DataSplits):
        preprocessing = self.backbone_.preprocessing
        collate = Collate(preprocessing)
        workers = self._num_workers()
        options = dict(collate_fn=collate, num_workers=workers, persistent_workers=workers > 0)
        train = InputDataset(
            splits.train.items,
            splits.train.labels,
            preprocessing,
            train=True,
            augment=self.config.augment,
        )
        val = InputDataset(splits.val.items, splits.val.labels, preprocessing)
        return (
            DataLoader(
                train,
                batch_size=self.config.batch_size,
                **self._train_order(splits.train.labels),
                **options,
            ),
            DataLoader(val, batch_size=self.config.batch_size * 2, **options),
        )

    def _summary(self, splits: DataSplits, stats: CacheStats, timings: dict) -> dict:
        parts = {n: getattr(splits, n) for n in ("train", "val", "test") if getattr(splits, n)}
        skipped = {n: p.skipped for n, p in parts.items() if p.skipped}
        return {
            "modality": splits.train.modality,
            "examples": {n: len(p) for n, p in parts.items()},
            "class_counts": {n: p.class_counts() for n, p in parts.items()},
            "skipped": {n: [{"input": w, "reason": r} for w, r in s] for n, s in skipped.items()},
            "skipped_count": sum(len(s) for s in skipped.values()),
            "feature_cache": {"hits": stats.hits, "misses": stats.misses},
            "seconds": {k: round(v, 3) for k, v in timings.items()},
        }

    # Inference ----------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError("this model is not fitted yet: call fit() or graft.load()")

    @torch.inference_mode()
    def _logits(self, items: list[str], cache: FeatureCache | None = None) -> torch.Tensor:
        self._check_fitted()
        if cache is not None:
            data = LabelledData(items, None, self.classes_, self.backbone_.modality, "inputs")
            return self.head_.eval()(cache.features(self.backbone_, data, self.config.batch_size))
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        backbone, head = self.backbone_.to(device).eval(), self.head_.to(device).eval()
        preprocessing = backbone.preprocessing
        loader = DataLoader(
            InputDataset(items, None, preprocessing),
            batch_size=self.config.batch_size * 2,
            collate_fn=Collate(preprocessing),
            num_workers=self._num_workers(),
        )
        chunks = [head(backbone(to_device(x, device))).float().cpu() for x, _ in loader]
        backbone.cpu(), head.cpu()
        return torch.cat(chunks)

    def _items(self, inputs) -> list[str]:
        if isinstance(inputs, LabelledData):
            return inputs.items
        if isinstance(inputs, str | os.PathLike):
            inputs = [inputs]
        return load_inputs([str(v) for v in inputs], self.backbone_.modality)

    def predict_proba(self, inputs) -> np.ndarray:
        """Class probabilities ``[n, len(classes_)]`` for image paths, folders, tables or texts."""
        self._check_fitted()
        return torch.softmax(self._logits(self._items(inputs)), dim=-1).numpy()

    def predict(self, inputs) -> list[str]:
        """The most probable class name of each input."""
        return [self.classes_[i] for i in self.predict_proba(inputs).argmax(axis=1)]

    def predict_top_k(self, inputs, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable ``(class, probability)`` pairs of each input."""
        if k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {k}")
        probabilities = self.predict_proba(inputs)
        order = np.argsort(-probabilities, axis=1)[:, :k]
        return [
            [(self.classes_[j], float(row[j])) for j in idx]
            for row, idx in zip(probabilities, order, strict=True)
        ]

    def _metrics(self, data: LabelledData, cache: FeatureCache | None = None) -> dict:
        data = data.relabel(self.classes_)
        logits = self._logits(data.items, cache)
        return classification_metrics(logits, torch.as_tensor(data.labels), self.classes_)

    def evaluate(self, data: DataLike, **columns: str | None) -> dict:
        """Accuracy, macro-F1, per-class precision/recall/F1 and confusion matrix on ``data``."""
        self._check_fitted()
        return self._metrics(_as_data(data, columns))

    def score(self, data: DataLike) -> float:
        """Accuracy on labelled ``data``."""
        return self.evaluate(data)["accuracy"]

    # Persistence --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the model (and, after a fit, its metrics and history) to a run directory."""
        from graft.persistence import save_model

        self._check_fitted()
        return save_model(self, Path(path), overwrite)


class _BestPhase:
    """Keeps the weights of the phase with the best validation accuracy.

    A later phase that ends worse than an earlier one (fine-tuning a backbone on too little
    data can) is rolled back, so a fit never returns a model worse than one it already had.
    """

    def __init__(self, backbone: Backbone, head: torch.nn.Module):
        self.networks = {"backbone": backbone, "head": head}
        self.accuracy = -1.0
        self.name: str | None = None
        self.state: dict | None = None
        self.last_was_best = True

    def update(self, name: str, rows: list[dict]) -> None:
        accuracy = next((row["val_acc"] for row in rows if row.get("kept")), -1.0)
        self.last_was_best = accuracy >= self.accuracy
        if self.last_was_best:
            self.accuracy, self.name = accuracy, name
            self.state = {
                key: {k: v.detach().clone() for k, v in net.state_dict().items()}
                for key, net in self.networks.items()
            }

    def restore(self) -> dict:
        """Load the best phase's weights if the last phase was worse; say which phase was kept."""
        if not self.last_was_best and self.state is not None:
            for key, net in self.networks.items():
                net.load_state_dict(self.state[key])
            log.info(
                "kept the %s phase (validation accuracy %.4f): later phases did not improve it",
                self.name,
                self.accuracy,
            )
        return {"phase": self.name, "val_acc": round(self.accuracy, 6)}


def _as_data(value: DataLike, columns: dict) -> LabelledData:
    if isinstance(value, LabelledData):
        return value
    from graft.data import load_data

    return load_data(value, **{k: v for k, v in columns.items() if v is not None})


def fit(
    data: DataLike,
    val: DataLike | None = None,
    test: DataLike | None = None,
    *,
    out=None,
    overwrite: bool = False,
    **params: Any,
) -> GraftClassifier:
    """Shortcut for ``GraftClassifier(**params).fit(data, val, test, out=out)``."""
    column_names = ("text_column", "image_column", "label_column")
    columns = {k: params.pop(k) for k in column_names if k in params}
    return GraftClassifier(**params).fit(data, val, test, out=out, overwrite=overwrite, **columns)
