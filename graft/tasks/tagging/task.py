"""Sequence labelling: a tag for every word (named-entity recognition, and the like).

The data are sentences of words with one IOB2 tag each (:mod:`graft.tasks.tagging`: CoNLL
column files, JSON Lines of tokens and tags, or raw text with the character-span entities
labelling tools export; IOB1 and BIOES are converted). ``--task auto`` recognises them by
content (:func:`graft.tasks.tagging.detect.holds_tagged_data`).

The backbone is a text encoder read token by token (:mod:`graft.backbones.hf_tokens`); the
head is a linear layer on each word's first sub-token, long sentences are read in
overlapping windows (:mod:`graft.tasks.tagging.alignment`), and tags are decoded as the most
probable valid IOB2 sequence (:mod:`graft.tasks.tagging.decoding`). Every strategy applies;
a head-only phase trains on the words' cached features (:mod:`graft.tasks.tagging.word_features`)
and every phase keeps its epoch of best validation entity F1 (:mod:`graft.tasks.tagging.module`).

Answers are entities with their type, character span and score; metrics are seqeval's entity
precision, recall and F1 (micro and per type), token accuracy, the confusion between types
and the most confidently wrong entities (:mod:`graft.tasks.tagging.metrics`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from graft.errors import ConfigError, DataError
from graft.tasks.base import Task, check_companions
from graft.tasks.tagging import TaggedSentences
from graft.tasks.tagging.capabilities import TaggingCapabilities

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits

log = logging.getLogger("graft")

#: Epochs of the phase that trains the encoder when ``--epochs`` is not given.
DEFAULT_EPOCHS = 5
#: The encoder's learning rate as a fraction of ``--lr`` when ``--backbone-lr-mult`` is not
#: given.
DEFAULT_BACKBONE_LR_MULT = 0.05


class TaggingData(TaggedSentences):
    """Tagged sentences as a fit's data: text, with nothing skipped (the readers refuse bad
    lines rather than skip them)."""

    modality: ClassVar[str] = "text"
    #: The kind of labels (what components made for class labels check before refusing).
    task: ClassVar[str] = "tagging"
    skipped: ClassVar[tuple] = ()

    @classmethod
    def of(cls, sentences: TaggedSentences) -> TaggingData:
        if isinstance(sentences, cls):
            return sentences
        return cls(
            tokens=sentences.tokens,
            tags=sentences.tags,
            source=sentences.source,
            lines=sentences.lines,
            texts=sentences.texts,
            offsets=sentences.offsets,
            scheme=sentences.scheme,
        )

    def subset(self, indices) -> TaggingData:
        return TaggingData.of(super().subset([int(i) for i in indices]))

    def entity_counts(self) -> dict[str, int]:
        """Entities of each type."""
        counts: dict[str, int] = {}
        for spans in self.spans():
            for _, _, kind in spans:
                counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))


class TaggingTask(TaggingCapabilities, Task):
    """One IOB2 tag per word (see the module docstring).

    Attributes:
        entity_types: the types the training data hold, sorted.
        scheme: the tagging scheme the training data were written in.
    """

    kind = "tagging"
    headline = "f1"
    formats = "CoNLL columns, or JSON Lines of tokens and tags or of text and spans (tagging)"

    def __init__(self, entity_types: list[str], scheme: str = "IOB2"):
        self.entity_types = list(entity_types)
        self.scheme = scheme
        self._tags = ["O"] + [f"{p}-{kind}" for kind in self.entity_types for p in "BI"]
        self._index = {tag: i for i, tag in enumerate(self._tags)}

    # Labels ------------------------------------------------------------------------------------

    @classmethod
    def claims(cls, data: Any) -> bool:
        from graft.tasks.tagging.detect import holds_tagged_data

        return isinstance(data, TaggedSentences) or holds_tagged_data(data)

    @classmethod
    def near_miss(cls, data: Any) -> str | None:
        from graft.tasks.tagging.detect import near_miss

        return near_miss(data)

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """A CoNLL or JSONL file, a folder of train/valid/test files, or TaggedSentences; the
        ``val`` and ``test`` given replace the folder's."""
        from graft.data import DataSplits
        from graft.tasks.tagging import read_tagged_splits

        column = _column(columns)
        if isinstance(data, TaggedSentences):
            parts = [data, None, None]
        else:
            parts = list(read_tagged_splits(data, label_column=column))
        for position, given in ((1, val), (2, test)):
            if given is not None:
                parts[position] = _read_one(given, column)
        return DataSplits(*(None if p is None else TaggingData.of(p) for p in parts))

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        refused = {
            "--strategy auto measures pooled features of classification data; its rule is not "
            "measured for tagging: choose a strategy (default fine-tune)": (
                config.strategy == "auto"
            ),
            f"--adapt {config.adapt} aligns pooled features for classification; tagging trains "
            "on its labelled sentences only": config.adapt != "none",
            "--sampler balanced draws classes evenly; a tagging fit's examples are sentences "
            "(use --class-weights auto to weigh rare tags)": config.sampler == "balanced",
            "--image-size resizes images; tagging reads text": config.image_size is not None,
        }
        for message, bad in refused.items():
            if bad:
                raise ConfigError(message)

    def defaults(self, config: FitConfig) -> FitConfig:
        """Tagging's own defaults (against the Transformers example's recipe in
        bench/RESULTS.md, "Named-entity recognition"): more encoder epochs at a higher encoder
        rate than text classification's, since the encoder was pretrained for pooled sentence
        features, not for tagging words."""
        if config.strategy == "feature-extract":
            return config
        epochs = config.epochs or DEFAULT_EPOCHS
        if config.strategy == "lora":  # its adapters' own rate (graft.strategies.lora)
            return config.resolved(epochs=epochs)
        mult = config.backbone_lr_mult or DEFAULT_BACKBONE_LR_MULT
        return config.resolved(epochs=epochs, backbone_lr_mult=mult)

    def plan(self, phases: list) -> list:
        """Every phase keeps its epoch of best validation entity F1, the head's included (the
        loss of the O-dominated words says little of the entities)."""
        import dataclasses

        return [dataclasses.replace(phase, monitor="val_score") for phase in phases]

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        check_companions(splits)
        known = set(splits.train.entity_types)
        for part in (splits.val, splits.test):
            unseen = sorted(set(part.entity_types) - known) if part is not None else []
            if unseen:
                log.warning(
                    "%s holds entity types the training data never show (%s): they count as "
                    "missed, and validation reads them as O",
                    part.source,
                    ", ".join(unseen),
                )
        return splits

    @classmethod
    def from_training_data(cls, train: TaggingData, config: FitConfig) -> TaggingTask:
        if not train.entity_types:
            raise DataError(
                f"{train.source}: the training sentences hold no entity (every tag is O)"
            )
        return cls(train.entity_types, train.scheme)

    def announce(self) -> str:
        return f"task: tagging, {self.describe()}"

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> TaggingData:
        if isinstance(data, TaggedSentences):
            return TaggingData.of(data)
        return TaggingData.of(_read_one(data, _column(columns)))

    def relabel(self, data: Any) -> Any:
        return data

    # Training ----------------------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        """The IOB2 tags, in the order of the head's outputs: ``O``, then ``B-``/``I-`` of
        each entity type."""
        return list(self._tags)

    @classmethod
    def build_backbone(cls, config: FitConfig, data: Any) -> Any:
        from graft.backbones.factory import build_backbone
        from graft.backbones.hf_text import HFTextBackbone
        from graft.backbones.hf_tokens import HFTokenBackbone

        pooled = build_backbone(config, data)
        if not isinstance(pooled, HFTextBackbone):
            raise ConfigError(f"--model {config.model}: tagging needs a text encoder")
        return HFTokenBackbone.from_text_backbone(pooled)

    @classmethod
    def restore_backbone(cls, spec: str, pretrained: bool) -> Any:
        from graft.backbones.hf_tokens import create_token_backbone

        return create_token_backbone(spec, pretrained=pretrained)

    def new_head(self, backbone, dropout: float = 0.2):
        from graft.heads import ClassificationHead

        return ClassificationHead(backbone.feature_dim, len(self._tags), dropout)

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        import torch.nn.functional as F

        from graft.tasks.tagging.batches import IGNORED

        if not (targets != IGNORED).any():
            return outputs.sum() * 0.0
        return F.cross_entropy(
            outputs.reshape(-1, outputs.shape[-1]),
            targets.reshape(-1),
            weight=class_weights,
            ignore_index=IGNORED,
            label_smoothing=label_smoothing,
        )

    def score_metric(self):
        from graft.tasks.tagging.entity_f1 import EntityF1

        return EntityF1(self._tags)

    def score_inputs(self, outputs, targets) -> tuple:
        """The decoded tags of a validation batch, and its true tags."""
        from graft.tasks.tagging.batches import IGNORED
        from graft.tasks.tagging.decoding import viterbi

        log_probs = outputs.float().log_softmax(dim=-1)
        return viterbi(log_probs, targets != IGNORED, self._tags), targets

    def training_module(self, head, phase, backbone, **options: Any):
        from graft.tasks.tagging.module import TaggingModule

        return TaggingModule(head, phase, backbone, task=self, **options)

    # Batches -----------------------------------------------------------------------------------

    def items_of(self, data: TaggingData) -> list:
        """Each sentence as its text and its words' character spans."""
        return list(zip(data.texts, data.offsets, strict=True))

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        from graft.tasks.tagging.batches import TaggingDataset

        if isinstance(data, list):
            return TaggingDataset(data, None, by_length=True)
        zero = self._index["O"]  # validation types the training data never showed
        tag_ids = [[self._index.get(tag, zero) for tag in tags] for tags in data.tags]
        return TaggingDataset(self.items_of(data), tag_ids, by_length=not train)

    def collate(self, preprocessing: Any):
        from graft.tasks.tagging.batches import TaggingCollate

        return TaggingCollate(preprocessing)

    def train_batches(
        self, data: TaggingData, batch_size: int, seed: int, distributed: bool, preprocessing: Any
    ):
        """Batches of sentences of alike length (less padding), in an order of (seed, epoch)
        only (across processes, Lightning's distributed sampler instead)."""
        if distributed:
            return None
        from graft.training.sampling import LengthGroupedBatches

        lengths = [len(text) for text in data.texts]
        return {"batch_sampler": LengthGroupedBatches(lengths, batch_size, seed)}

    def head_loaders(self, loaders: Any) -> tuple:
        from graft.tasks.tagging.word_features import word_feature_loaders

        return word_feature_loaders(loaders)

    def model_inputs(self, batch: dict) -> dict:
        from graft.backbones.hf_tokens import MODEL_INPUTS

        return {name: batch[name] for name in MODEL_INPUTS if name in batch}

    def infer(self, backbone, head, inputs) -> dict:
        from graft.tasks.tagging.answers import word_outputs

        return word_outputs(head(backbone(inputs)), inputs)

    def infer_exported(self, engine, inputs) -> dict:
        from graft.tasks.tagging.answers import word_outputs

        return word_outputs(engine(self.model_inputs(inputs)), inputs)

    def join(self, chunks: list) -> dict:
        from graft.tasks.tagging.answers import join_outputs

        return join_outputs(chunks)

    # Answers -----------------------------------------------------------------------------------

    def answers(self, outputs: dict) -> list[list[dict]]:
        """Each input's entities: ``{"text", "label", "start", "end", "score"}``."""
        from graft.tasks.tagging.answers import answers

        return answers(outputs, self._tags)

    def prediction_records(self, outputs: dict, top_k: int) -> list[dict]:
        return [{"entities": found} for found in self.answers(outputs)]

    # Metrics -----------------------------------------------------------------------------------

    def metrics(self, outputs: dict, data: TaggingData) -> dict:
        """seqeval's entity metrics (:func:`graft.tasks.tagging.metrics.tagging_metrics`) and the
        sentences with the most confidently wrong entities (``confident_errors``)."""
        from graft.tasks.tagging.answers import confident_errors, sentences
        from graft.tasks.tagging.metrics import tagging_metrics

        decoded = sentences(outputs, self._tags)
        metrics = tagging_metrics(data.tags, [row["tags"] for row in decoded])
        metrics["confident_errors"] = confident_errors(decoded, data.tags, data.lines)
        return metrics

    def describe(self) -> str:
        return f"{len(self.entity_types)} entity types ({', '.join(self.entity_types)})"

    # Record ------------------------------------------------------------------------------------

    def record(self) -> dict:
        return {"kind": self.kind, "entity_types": self.entity_types, "scheme": self.scheme}

    def export_record(self) -> dict:
        return {
            "kind": self.kind,
            "tags": self.classes,
            "outputs": "tag logits of every sub-token [rows, sequence, tags]; a word is scored "
            "at its first sub-token, a sentence over the window is read in overlapping windows",
        }

    def summary(self, splits: DataSplits) -> dict:
        from graft.tasks.tagging.summary import entity_summary

        return entity_summary(splits)

    def data_summary(self, splits: DataSplits, backbone: Any) -> dict:
        """Sentences, words and entities of each split, and how many sentences are longer
        than the encoder's window (read in overlapping windows, never cut)."""
        from graft.tasks.tagging.summary import data_summary

        return data_summary(splits, backbone, self.kind)

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> TaggingTask:
        task = cls(list(record["entity_types"]), record.get("scheme", "IOB2"))
        if list(labels) != task.classes:
            raise DataError(f"labels.json holds the tags {labels}; the run's task {task.classes}")
        return task


def _column(columns: dict[str, str | None]) -> int | None:
    """``--label-column`` as the tag's column number in a CoNLL file (None: the last)."""
    for name in ("text_column", "image_column"):
        if columns.get(name):
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} names a table's column; tagging data are CoNLL or JSONL")
    value = columns.get("label_column")
    if value is None or isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(
            f"--label-column {value!r}: for tagging data it is the tag's column number in a "
            "CoNLL file (0 is the token, -1 the last column, the default)"
        ) from None


def _read_one(data: Any, column: int | None) -> TaggedSentences:
    from pathlib import Path

    from graft.tasks.tagging import read_tagged

    if isinstance(data, TaggedSentences):
        return data
    if not isinstance(data, str | Path):
        raise DataError(f"tagging data are CoNLL or JSONL files; got a {type(data).__name__}")
    if Path(data).expanduser().is_dir():
        raise DataError(f"{data}: a folder; name one CoNLL or JSONL file")
    return read_tagged(data, label_column=column)
