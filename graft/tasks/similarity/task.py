"""The similarity kind of task: an encoder fitted so that a query lands nearest the documents
it should find (see :mod:`graft.tasks.similarity`).

It trains on graft's engine like every kind: the backbone is graft's text backbone (mean
pooled), or for pairs of images an image backbone (:mod:`~graft.tasks.similarity.images`), the
head the :class:`~graft.tasks.similarity.encoder.Projection` (a trained square
layer for ``feature-extract``, an identity when the encoder trains), the strategy's phases run
through the phase runner with :class:`~graft.tasks.similarity.module.SimilarityModule`, each
keeping its epoch of best validation nDCG@10, and the pretrained encoder is kept when no phase
beats it (:class:`~graft.tasks.capabilities.GuardsPretrained`). A fitted model's answers are
its embeddings; it indexes, searches and evaluates retrieval
(:class:`~graft.tasks.capabilities.Searches`, :mod:`graft.tasks.similarity.model`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError, DataError
from graft.tasks.base import MetricsTable, Task
from graft.tasks.similarity.capabilities import SimilarityCapabilities
from graft.tasks.similarity.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_ENCODER_LR,
    DEFAULT_EPOCHS,
    DEFAULT_PROJECTION_LR,
)

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits

log = logging.getLogger("graft")

#: The strategies a similarity fit takes: fine-tune and full train the encoder (the head is an
#: identity, so fine-tune's head phase is left out), lora its adapters, feature-extract a
#: projection on the frozen encoder.
STRATEGIES = ("fine-tune", "full", "feature-extract", "lora")
#: Documents a validation query is searched among at most: its relevant documents and a sample
#: of the rest, seeded by :data:`VALIDATION_SEED` whatever ``--seed`` (so that fits of several
#: seeds are scored on one set).
VALIDATION_CORPUS = 500
VALIDATION_SEED = 0


class SimilarityTask(SimilarityCapabilities, Task):
    """Texts embedded so that similar ones are near (see the module docstring).

    Attributes:
        loss_name: ``mnrl`` (in-batch negatives) or ``cosine`` (scored pairs).
        scale: the scale of cosine similarities in the mnrl loss.
        projection: whether the head trains a projection (``feature-extract``).
        encoder_lr: the encoder's learning rate in the phases that train it.
    """

    kind = "similarity"
    headline = "ndcg@10"
    split_kind = "queries"
    formats = (
        "a BEIR folder (corpus.jsonl, queries.jsonl, qrels/), or a table of query and positive "
        "columns of texts or image paths (similarity)"
    )

    def __init__(
        self,
        loss_name: str = "mnrl",
        scale: float = 20.0,
        projection: bool = False,
        encoder_lr: float = DEFAULT_ENCODER_LR,
    ):
        self.loss_name, self.scale = loss_name, float(scale)
        self.projection, self.encoder_lr = bool(projection), float(encoder_lr)

    # Data --------------------------------------------------------------------------------------

    @classmethod
    def claims(cls, data: Any) -> bool:
        from graft.tasks.similarity.data import SimilarityData
        from graft.tasks.similarity.read import TABLE_SUFFIXES, find_columns, is_beir, table_columns

        if isinstance(data, SimilarityData):
            return True
        if not isinstance(data, str | Path):
            names = getattr(data, "column_names", None) or list(getattr(data, "columns", []))
            return find_columns([str(n) for n in names]) is not None
        path = Path(data).expanduser()
        if path.is_dir():
            return is_beir(path)
        return path.suffix in TABLE_SUFFIXES and find_columns(table_columns(path)) is not None

    @classmethod
    def near_miss(cls, data: Any) -> str | None:
        from graft.tasks.similarity.read import beir_near_miss

        return beir_near_miss(Path(data)) if isinstance(data, str | Path) else None

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """A BEIR folder (train, and dev and test qrels when there) or a table; ``val`` and
        ``test`` given replace the folder's."""
        from graft.data import DataSplits
        from graft.tasks.similarity.read import read_any

        parts = read_any(data)
        if "train" not in parts:
            raise ConfigError(f"{data}: no training pairs (a BEIR folder's qrels/train.tsv)")
        given = {"dev": val, "test": test}
        for name, value in given.items():
            if value is not None:
                found = read_any(value)
                parts[name] = found.get(name, found.get("train", next(iter(found.values()))))
        return DataSplits(parts["train"], parts.get("dev"), parts.get("test"))

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        refused = {
            f"--strategy {config.strategy}: a similarity fit takes {', '.join(STRATEGIES)}": (
                config.strategy not in STRATEGIES
            ),
            f"--adapt {config.adapt} aligns classification features": config.adapt != "none",
            "--lr auto tests a classification head's rates; give --lr (the projection's) or "
            "--encoder-lr": config.lr == "auto",
            "--baseline scratch trains a classifier from random weights; a similarity fit is "
            "guarded by the pretrained encoder instead": config.baseline == "scratch",
        }
        for message, bad in refused.items():
            if bad:
                raise ConfigError(message)
        super().check_options(config)

    @classmethod
    def split(cls, data: Any, val_fraction: float, seed: int):
        """A seeded ``val_fraction`` of the training queries, with all their pairs."""
        return data.split_by_query(val_fraction, seed)

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        """Validation pairs searched among at most :data:`VALIDATION_CORPUS` documents."""
        from graft.data import DataSplits

        if splits.val is None:
            raise DataError(f"{splits.train.source}: a similarity fit needs validation queries")
        val = splits.val.with_corpus_cut(VALIDATION_CORPUS, VALIDATION_SEED)
        return DataSplits(splits.train, val, splits.test)

    @classmethod
    def from_training_data(cls, train: Any, config: FitConfig) -> SimilarityTask:
        """The loss of the pairs (``auto``: cosine for scored pairs, mnrl otherwise), the
        scale, the projection of ``feature-extract`` and the encoder's learning rate."""
        options = config.task_options
        loss = options.get("similarity_loss", "auto")
        if loss == "auto":
            loss = "cosine" if train.scores is not None else "mnrl"
        if loss == "cosine" and train.scores is None:
            raise ConfigError(
                f"--similarity-loss cosine needs scored pairs; {train.source} has none"
            )
        return cls(
            loss_name=loss,
            scale=float(options.get("similarity_scale") or 20.0),
            projection=config.strategy == "feature-extract",
            encoder_lr=float(options.get("encoder_lr") or DEFAULT_ENCODER_LR),
        )

    def announce(self) -> str:
        return f"task: similarity (an encoder fitted for search, {self.loss_name} loss)"

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> Any:
        """A BEIR folder's test pairs (else dev, else train), or a table's."""
        from graft.tasks.similarity.read import read_any

        parts = read_any(data)
        return next(parts[name] for name in ("test", "dev", "train") if name in parts)

    def relabel(self, data: Any) -> Any:
        return data

    # Fitting -----------------------------------------------------------------------------------

    def defaults(self, config: FitConfig) -> FitConfig:
        """One epoch of the encoder (ten of a projection) in batches of 32; the projection's
        learning rate 1e-3 (the encoder's is ``--encoder-lr``, 2e-5)."""
        epochs = config.epochs or DEFAULT_EPOCHS.get(config.strategy, 1)
        lr = config.lr if isinstance(config.lr, float) else DEFAULT_PROJECTION_LR
        return config.resolved(
            epochs=epochs, batch_size=config.batch_size or DEFAULT_BATCH_SIZE, lr=lr
        )

    def plan(self, phases: list) -> list:
        """Every phase keeps its epoch of best validation nDCG@10; the head (an identity) does
        not train alone before the encoder, whose phases train at ``encoder_lr`` (LoRA's
        adapters at the strategy's rate)."""
        trains = [p for p in phases if p.backbone_groups != 0]
        kept = trains or phases
        planned = []
        for phase in kept:
            changes: dict[str, Any] = {"monitor": "val_score", "warmup_fraction": 0.1}
            if phase.backbone_groups != 0 and not phase.adapters_only:
                changes["backbone_lr"] = self.encoder_lr
            planned.append(dataclasses.replace(phase, **changes))
        return planned

    @classmethod
    def build_backbone(cls, config: FitConfig, data: Any) -> Any:
        """The text backbone of ``--model`` (an image backbone for pairs of images); with
        ``--hard-negatives``, it first mines a hard negative for each training pair that has
        none (:mod:`graft.tasks.similarity.mining`)."""
        from graft.backbones.factory import build_backbone
        from graft.backbones.hf_text import HFTextBackbone

        backbone = build_backbone(config, data)
        if data.modality == "text" and not isinstance(backbone, HFTextBackbone):
            raise ConfigError(f"--model {config.model}: similarity needs a text encoder")
        mining = config.task_options.get("hard_negatives") and data.scores is None
        if mining and data.negatives is None:
            from graft.tasks.similarity.image_encoder import embedder_for
            from graft.tasks.similarity.mining import mine_negatives

            log.info("mining a hard negative per pair with the pretrained encoder")
            data.negatives = mine_negatives(embedder_for(backbone), data, config.seed).negatives
        return backbone

    @classmethod
    def restore_backbone(cls, spec: str, pretrained: bool) -> Any:
        from graft.backbones.registry import create_backbone

        return create_backbone(spec, pretrained=pretrained)

    def new_head(self, backbone: Any, dropout: float = 0.0):
        from graft.tasks.similarity.encoder import Projection

        return Projection(backbone.feature_dim, self.projection)

    @property
    def classes(self) -> list[str]:
        return []

    def pair_loss(self, embedded: dict, scores: Any) -> Any:
        """The loss of a batch of embedded pairs (``anchor``, ``positive``, ``negative``)."""
        from graft.tasks.similarity.losses import cosine, multiple_negatives_ranking

        if self.loss_name == "cosine":
            return cosine(embedded["anchor"], embedded["positive"], scores)
        return multiple_negatives_ranking(
            embedded["anchor"], embedded["positive"], embedded.get("negative"), self.scale
        )

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        """:meth:`pair_loss` of ``outputs`` (embedded pairs by name) and the pairs' scores."""
        return self.pair_loss(outputs, targets)

    def score_metric(self) -> Any:
        from graft.tasks.similarity.module import RetrievalScore

        return RetrievalScore()

    def training_module(self, head, phase, backbone, **options: Any):
        from graft.tasks.similarity.module import SimilarityModule

        options.pop("mixup", None)
        return SimilarityModule(head, phase, backbone, task=self, **options)

    # Batches -----------------------------------------------------------------------------------

    def items_of(self, data: Any) -> list[str]:
        """The texts of ``data``'s retrieval set: its queries, then its documents."""
        retrieval = data.retrieval()
        return list(retrieval.queries.values()) + list(retrieval.corpus.values())

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        """Training pairs; validation texts with their roles; or texts to embed."""
        from graft.tasks.similarity.batches import Items, pairs_of, texts_of

        if isinstance(data, list):
            return Items(list(data))
        return Items(pairs_of(data) if train else texts_of(data.retrieval()))

    def collate(self, preprocessing: Any):
        from graft.tasks.similarity.batches import SimilarityCollate

        return SimilarityCollate(preprocessing)

    def train_batches(
        self, data: Any, batch_size: int, seed: int, distributed: bool, preprocessing: Any
    ):
        """Batches without two pairs of one query or of one document, in an order of (seed,
        epoch) only."""
        if distributed:
            return None
        from graft.tasks.similarity.batches import DistinctBatches

        return {"batch_sampler": DistinctBatches(data.query_ids, data.doc_ids, batch_size, seed)}

    def head_loaders(self, loaders: Any) -> tuple:
        """The projection of pairs of images trains on each image's cached features (computed
        once, :func:`~graft.tasks.similarity.image_encoder.cached_loaders`); that of texts on
        the frozen encoder's output at each step."""
        if loaders.backbone.modality == "image":
            from graft.tasks.similarity.image_encoder import cached_loaders

            return cached_loaders(self, loaders)
        return loaders.inputs()

    # Metrics and record ------------------------------------------------------------------------

    def metrics(self, outputs: Any, data: Any) -> dict:
        """BEIR's nDCG@10, MRR@10, recall@10 and @100 of ``data``'s queries searching its
        corpus (``outputs``: the embeddings of :meth:`items_of`)."""
        from graft.tasks.similarity.metrics import embedding_metrics

        retrieval = data.retrieval()
        vectors = outputs.float().numpy()
        count = len(retrieval.queries)
        return embedding_metrics(
            vectors[:count],
            vectors[count:],
            list(retrieval.queries),
            list(retrieval.corpus),
            retrieval.qrels,
        )

    def describe(self) -> str:
        return f"pairs of similar texts or images ({self.loss_name} loss)"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        from graft.tasks.similarity.metrics import REPORTED

        shown = [m for m in (*REPORTED, "recall@10") if m in metrics]
        rows = [[name, f"{metrics[name]:.4f}"] for name in shown]
        rows.append(["queries", str(metrics.get("queries", ""))])
        return [MetricsTable(title, ["metric", "value"], rows, left=("metric",))]

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "loss": self.loss_name,
            "scale": self.scale,
            "projection": self.projection,
            "encoder_lr": self.encoder_lr,
        }

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> SimilarityTask:
        return cls(
            loss_name=record.get("loss", "mnrl"),
            scale=float(record.get("scale", 20.0)),
            projection=bool(record.get("projection", False)),
            encoder_lr=float(record.get("encoder_lr", DEFAULT_ENCODER_LR)),
        )
