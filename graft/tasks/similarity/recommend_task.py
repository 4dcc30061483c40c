"""The recommendation kind of task: items embedded from their content by the pretrained text
encoder, users from their history, trained so that the item a user interacts with next comes
closest (see :mod:`graft.tasks.similarity.recommender`).

A fit reads an interactions table and an items table (``--items``;
:mod:`graft.tasks.similarity.interactions`), holds out each user's last interaction by time
(a seeded random one without timestamps) for validation, embeds the catalogue once with the
pretrained encoder (frozen: the strategy is ``feature-extract``) and trains the
:class:`~graft.tasks.similarity.recommender.RecommendationHead` on graft's engine, keeping the
epoch of best validation nDCG@10 and the untrained model (the pretrained encoder's embeddings,
a user the mean of their items') when no epoch beats it
(:class:`~graft.tasks.capabilities.GuardsPretrained`). Its metrics are nDCG@10, recall@10 and
hit rate @10 of held-out interactions among the items each user has not seen, also for the
held-out items nobody interacted with in training ("cold"), and on ``graft evaluate`` beside
them popularity, item-kNN and ALS fitted on the same interactions
(:mod:`graft.tasks.similarity.baselines`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graft.errors import ConfigError, DataError
from graft.tasks.base import MetricsTable, Task
from graft.tasks.similarity.options import (
    DEFAULT_HISTORY_LENGTH,
    DEFAULT_PROJECTION_LR,
    RECOMMENDATION_BATCH_SIZE,
    RECOMMENDATION_EPOCHS,
)
from graft.tasks.similarity.recommend_capabilities import RecommendationCapabilities

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits

log = logging.getLogger("graft")

#: The strategies a recommendation fit takes: both train the head on the frozen encoder's
#: embeddings of the catalogue (fine-tune, the default strategy, is read as feature-extract).
STRATEGIES = ("feature-extract", "fine-tune")
#: The column options a run keeps, to read held-out interactions as it read its data.
COLUMNS = ("user_column", "item_column", "rating_column", "time_column")


class RecommendationTask(RecommendationCapabilities, Task):
    """Users and items embedded so that what a user interacts with is near them (see the
    module docstring).

    Attributes:
        item_ids: the catalogue's item ids (the run's ``labels.json``).
        store: the catalogue's texts and the known interactions
            (:class:`~graft.tasks.similarity.recommender.KnownData`), saved with the weights.
        history_length: the latest interactions that represent a user.
        scale: the scale of cosine similarities in the in-batch loss.
        columns: the interactions' column options, to read held-out data alike.
    """

    kind = "recommendation"
    headline = "ndcg@10"
    split_kind = "last interaction of each user"
    formats = ""

    def __init__(
        self,
        item_ids: list[str],
        store: Any,
        history_length: int = DEFAULT_HISTORY_LENGTH,
        scale: float = 20.0,
        columns: dict | None = None,
        data: tuple | None = None,
    ):
        self.item_ids, self.store = list(item_ids), store
        self.history_length, self.scale = int(history_length), float(scale)
        self.columns = dict(columns or {})
        self._data = data  # (catalogue, known), read from the store when None

    # Data --------------------------------------------------------------------------------------

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """The interactions ``data`` (and ``val``, ``test`` when given) of the items table
        ``--items``."""
        from graft.data import DataSplits
        from graft.tasks.similarity.interactions import read_interactions, read_items

        options = config.task_options
        if not options.get("items"):
            raise ConfigError("a recommendation fit needs the items table: --items FILE")
        for given in (data, val, test):
            if given is not None and not isinstance(given, str | Path):
                raise ConfigError("recommendation reads interactions from a file (CSV, TSV, ...)")
        catalogue = read_items(
            Path(options["items"]), options.get("item_column"), options.get("item_text_columns")
        )
        train = read_interactions(Path(data), catalogue, options)
        parts = [read_interactions(Path(p), catalogue, options) if p else None for p in (val, test)]
        return DataSplits(train, *parts)

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        refused = {
            f"--strategy {config.strategy}: a recommendation fit trains on the frozen "
            "encoder's item embeddings (feature-extract)": config.strategy not in STRATEGIES,
            f"--adapt {config.adapt} aligns classification features": config.adapt != "none",
            "--lr auto tests a classification head's rates; give --lr": config.lr == "auto",
            "--baseline scratch trains a classifier from random weights; a recommendation fit "
            "is compared with popularity, item-kNN and ALS instead": config.baseline == "scratch",
        }
        for message, bad in refused.items():
            if bad:
                raise ConfigError(message)
        super().check_options(config)

    @classmethod
    def split(cls, data: Any, val_fraction: float, seed: int):
        """Each user's last interaction by time held out (a seeded random one without
        timestamps); ``val_fraction`` is not used."""
        return data.hold_out_last(seed)

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        """Validation users are recommended from the training interactions, test users from
        all the fit was given."""
        if splits.val is None:
            raise DataError(f"{splits.train.source}: a recommendation fit needs validation data")
        splits.val.known = splits.train
        if splits.test is not None:
            splits.test.known = splits.train.whole or splits.train
        return splits

    @classmethod
    def from_training_data(cls, train: Any, config: FitConfig) -> RecommendationTask:
        """The catalogue and every interaction the fit was given (training and validation),
        from which users are recommended once fitted."""
        from graft.tasks.similarity.recommender import KnownData

        options = config.task_options
        known = train.whole or train
        return cls(
            train.catalogue.ids,
            KnownData.of(train.catalogue, known),
            int(options.get("history_length") or DEFAULT_HISTORY_LENGTH),
            float(options.get("similarity_scale") or 20.0),
            {name: options.get(name) for name in COLUMNS},
            (train.catalogue, known),
        )

    def announce(self) -> str:
        return f"task: recommendation ({len(self.item_ids)} items)"

    def data(self) -> tuple:
        """The catalogue and the known interactions."""
        if self._data is None:
            self._data = self.store.read(self.item_ids, "the run's items")
        return self._data

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> Any:
        """Held-out interactions, recommended from the interactions the fit was given; a user
        the fit never saw is skipped and counted. They are compared with the baselines."""
        from graft.tasks.similarity.interactions import read_interactions

        if not isinstance(data, str | Path):
            raise ConfigError("recommendation reads held-out interactions from a file")
        catalogue, known = self.data()
        options = {k: v for k, v in self.columns.items() if v}
        held = read_interactions(Path(data), catalogue, {**options, "unknown_items": "skip"})
        users = set(known.users)
        keep = [i for i, u in enumerate(held.users) if u in users]
        if not keep:
            raise DataError(f"{data}: none of its users is one the model was fitted on")
        skipped = held.skipped + len(held) - len(keep)
        held = dataclasses.replace(held.subset(keep), whole=None, skipped=skipped)
        held.known, held.compare = known, True
        return held

    def relabel(self, data: Any) -> Any:
        return data

    # Fitting -----------------------------------------------------------------------------------

    def defaults(self, config: FitConfig) -> FitConfig:
        """Three epochs in batches of 256 at a learning rate of 1e-3, on the frozen encoder."""
        lr = config.lr if isinstance(config.lr, float) else DEFAULT_PROJECTION_LR
        return config.resolved(
            strategy="feature-extract",
            epochs=config.epochs or RECOMMENDATION_EPOCHS,
            batch_size=config.batch_size or RECOMMENDATION_BATCH_SIZE,
            lr=lr,
        )

    def plan(self, phases: list) -> list:
        """Each phase keeps its epoch of best validation nDCG@10."""
        return [dataclasses.replace(p, monitor="val_score", warmup_fraction=0.05) for p in phases]

    @classmethod
    def build_backbone(cls, config: FitConfig, data: Any) -> Any:
        """The text backbone of ``--model``, which embeds the catalogue once."""
        from graft.backbones.factory import build_backbone
        from graft.backbones.hf_text import HFTextBackbone
        from graft.tasks.similarity.encoder import Projection, TextEmbedder

        backbone = build_backbone(config, data)
        if not isinstance(backbone, HFTextBackbone):
            raise ConfigError(f"--model {config.model}: recommendation needs a text encoder")
        log.info("embedding %d items with the pretrained encoder", len(data.catalogue))
        embedder = TextEmbedder(backbone, Projection(backbone.feature_dim, trained=False))
        data.catalogue.embeddings = embedder(data.catalogue.texts, batch_size=128)
        return backbone

    @classmethod
    def restore_backbone(cls, spec: str, pretrained: bool) -> Any:
        from graft.backbones.registry import create_backbone

        return create_backbone(spec, pretrained=pretrained)

    def new_head(self, backbone: Any, dropout: float = 0.0):
        """The head on the catalogue's embeddings (zeros until a run's weights fill them)."""
        import torch

        from graft.tasks.similarity.recommender import RecommendationHead

        embeddings = self._data[0].embeddings if self._data is not None else None
        frequency = None
        if embeddings is None:
            embeddings = np.zeros((len(self.item_ids), backbone.feature_dim), np.float32)
        else:
            frequency = np.bincount(self._data[1].items, minlength=len(self.item_ids))
        return RecommendationHead(torch.as_tensor(embeddings), self.scale, frequency)

    def networks(self) -> dict[str, Any]:
        return {"known": self.store}

    @property
    def classes(self) -> list[str]:
        return self.item_ids

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        raise NotImplementedError("RecommendationModule computes its loss")

    def score_metric(self) -> Any:
        from graft.tasks.similarity.recommender import HeldOutScore

        return HeldOutScore()

    def training_module(self, head, phase, backbone, **options: Any):
        from graft.tasks.similarity.recommender import RecommendationModule

        options.pop("mixup", None)
        return RecommendationModule(head, phase, backbone, task=self, **options)

    # Batches -----------------------------------------------------------------------------------

    def histories(self, data: Any) -> list:
        """A :class:`~graft.tasks.similarity.recommender.History` per user of held-out
        ``data`` (sorted by user id): their latest known items, held-out items and every
        known item."""
        from graft.tasks.similarity.recommender import History

        known = data.known
        by_user, wanted = known.by_user(), {}
        for user, item in zip(data.users, data.items.tolist(), strict=True):
            wanted.setdefault(user, []).append(item)
        out = []
        for user in sorted(wanted):
            rows = by_user.get(user, np.zeros(0, dtype=int))
            last = rows[-self.history_length :]
            out.append(
                History(
                    tuple(known.items[last].tolist()),
                    tuple(known.weights[last].tolist()),
                    tuple(dict.fromkeys(wanted[user])),
                    tuple(known.items[rows].tolist()),
                )
            )
        return out

    def examples(self, data: Any) -> list:
        """The training pairs: each interaction after a user's first, with the
        ``history_length`` interactions before it."""
        from graft.tasks.similarity.recommender import History

        out, length = [], self.history_length
        for rows in data.by_user().values():
            items, weights = data.items[rows].tolist(), data.weights[rows].tolist()
            for j in range(1, len(rows)):
                start = max(0, j - length)
                out.append(History(tuple(items[start:j]), tuple(weights[start:j]), (items[j],)))
        return out

    def train_batches(
        self, data: Any, batch_size: int, seed: int, distributed: bool, preprocessing: Any
    ):
        """Shuffled batches of the training pairs (one per interaction after a user's
        first), in an order of (seed, epoch)."""
        if distributed:
            return None
        from graft.tasks.similarity.recommender import SeededBatches

        count = len(data) - len(set(data.users))
        return {"batch_sampler": SeededBatches(count, batch_size, seed)}

    def items_of(self, data: Any) -> list:
        return self.histories(data)

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        from graft.tasks.similarity.batches import Items

        if isinstance(data, list):
            return Items(list(data))
        return Items(self.examples(data) if train else self.histories(data))

    def collate(self, preprocessing: Any):
        from graft.tasks.similarity.recommender import HistoryCollate

        return HistoryCollate(preprocessing)

    def read_inputs(self, inputs: list, modality: str, column: str | None = None) -> list:
        """Refused: a recommender answers users and items (``graft recommend``)."""
        raise ConfigError(
            "a recommendation model answers graft recommend (a user, --liked items or "
            "--similar-to an item), not graft predict"
        )

    def infer(self, backbone: Any, head: Any, inputs: Any) -> Any:
        """Every item's score for each user (``[users, items]``)."""
        return head.scores(inputs)

    # Metrics and record ------------------------------------------------------------------------

    def metrics(self, outputs: Any, data: Any) -> dict:
        """nDCG@10, recall@10 and hit rate of ``data``'s held-out items (``outputs``: the
        scores of :meth:`items_of`'s users), also for cold items; with ``data.compare`` (held
        out data of ``graft evaluate``) the baselines' beside them."""
        from graft.tasks.similarity.recommend_metrics import held_out_metrics

        histories = self.histories(data)
        return held_out_metrics(
            outputs.float().numpy(), histories, data, getattr(data, "compare", False)
        )

    def describe(self) -> str:
        return f"{len(self.item_ids)} items"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        from graft.tasks.similarity.recommend_metrics import metrics_rows, users_line

        columns, rows = metrics_rows(metrics)
        title = f"{title} ({users_line(metrics)})"
        return [MetricsTable(title, columns, rows, left=("model",))]

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "history_length": self.history_length,
            "scale": self.scale,
            "columns": self.columns,
            "sizes": self.store.sizes,
        }

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> RecommendationTask:
        from graft.tasks.similarity.recommender import KnownData

        return cls(
            list(labels),
            KnownData(record["sizes"]),
            int(record.get("history_length", DEFAULT_HISTORY_LENGTH)),
            float(record.get("scale", 20.0)),
            record.get("columns") or {},
        )
