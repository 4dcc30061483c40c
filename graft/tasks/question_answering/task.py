"""Extractive question answering: the answer to a question is a span of its context.

The data are questions about passages with their answers' texts and characters
(:mod:`graft.tasks.question_answering.read`: SQuAD v1.1 and v2.0 JSON, JSON Lines, tables,
DataFrames and ``datasets``); ``--task auto`` recognises them by content. The backbone is a text
encoder read sub-token by sub-token (:mod:`graft.tasks.question_answering.encoder`), the head a
start and an end logit per sub-token; a context longer than the window is read in overlapping
windows and the best span is chosen across them
(:mod:`graft.tasks.question_answering.windows`). Every strategy but the frozen ones applies;
every phase keeps its epoch of best validation F1. ``--model RUN`` continues an earlier
question-answering run, encoder and span head (sequential transfer). A sequence-to-sequence
``--model`` (T5, BART) makes it a generative reader instead, which writes each answer
(:mod:`graft.tasks.question_answering.generative`, LoRA by default).

Answers are each question's answer text, its score (start plus end logit) and its characters;
metrics are the official SQuAD exact match and F1 (:mod:`graft.tasks.question_answering.squad`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError
from graft.tasks.base import Task, check_companions
from graft.tasks.capabilities import BuildsBackbone, ClaimsData, HeadLoss, JoinsOutputs, PlansPhases
from graft.tasks.question_answering.capabilities import AnswersCapabilities
from graft.tasks.question_answering.data import QuestionsData

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits

log = logging.getLogger("graft")

#: What replaces graft's generic defaults for question answering (a value left at the generic
#: default counts as not given); against run_qa.py's recipe in bench/RESULTS.md.
DEFAULTS = {"batch_size": 16, "lr": 3e-4, "epochs": 2, "backbone_lr_mult": 1 / 3}
#: The window of a question and its context (run_qa.py's ``max_seq_length``).
DEFAULT_MAX_LENGTH = 384


class QuestionAnsweringTask(
    AnswersCapabilities, ClaimsData, BuildsBackbone, HeadLoss, PlansPhases, JoinsOutputs, Task
):
    """An answer span in each question's context (see the module docstring).

    Attributes:
        negatives: whether some training questions have no answer (SQuAD v2.0): then a
            question's answer is empty when the ``[CLS]`` score beats every span's.
        doc_stride, max_answer_length: the windows' overlap and the longest answer, in
            sub-tokens.
        generative: whether the model writes its answers (a sequence-to-sequence model)
            instead of scoring spans.
    """

    kind = "question-answering"
    headline = "f1"
    split_kind = "by context"
    formats = (
        "SQuAD JSON, or JSON Lines or tables of question, context, answers (question-answering)"
    )

    def __init__(
        self,
        negatives: bool = False,
        doc_stride: int = 128,
        max_answer_length: int = 30,
        generative: bool = False,
    ):
        self.negatives = negatives
        self.doc_stride, self.max_answer_length = doc_stride, max_answer_length
        self.generative = generative

    # Labels ------------------------------------------------------------------------------------

    @classmethod
    def claims(cls, data: Any) -> bool:
        from graft.tasks.question_answering.read import holds_questions

        return holds_questions(data)

    @classmethod
    def near_miss(cls, data: Any) -> str | None:
        from graft.tasks.question_answering.read import near_miss

        return near_miss(data)

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """A file, a folder of train/dev/test files, or data in memory; ``val`` and ``test``
        given replace the folder's."""
        from graft.data import DataSplits
        from graft.tasks.question_answering.read import read_question_splits, read_questions

        fix = bool(config.task_options.get("fix_offsets", False))
        parts = read_question_splits(data, fix)
        for position, given in ((1, val), (2, test)):
            if given is not None:
                parts[position] = read_questions(given, fix)
        return DataSplits(*parts)

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        refused = {
            "--strategy auto measures pooled features of classification data; choose a "
            "strategy for question answering (default fine-tune)": config.strategy == "auto",
            f"--adapt {config.adapt} aligns pooled features for classification; question "
            "answering trains on its labelled questions only": config.adapt != "none",
            "--sampler balanced draws classes evenly; question answering has none": (
                config.sampler == "balanced"
            ),
            "--class-weights weighs classes; question answering has none": bool(
                config.class_weights
            ),
            "--image-size resizes images; question answering reads text": (
                config.image_size is not None
            ),
        }
        for message, bad in refused.items():
            if bad:
                raise ConfigError(message)

    def defaults(self, config: FitConfig) -> FitConfig:
        """Question answering's defaults for the options left at graft's generic ones
        (:data:`DEFAULTS`), and a window of :data:`DEFAULT_MAX_LENGTH` sub-tokens."""
        from graft.config import FitConfig

        generic = FitConfig()
        if self.generative:
            from graft.tasks.question_answering.generative import generative_defaults

            return generative_defaults(config, generic, DEFAULT_MAX_LENGTH)
        chosen = {
            name: value
            for name, value in DEFAULTS.items()
            if getattr(config, name) in (None, getattr(generic, name))
        }
        if config.max_length is None:
            chosen["max_length"] = DEFAULT_MAX_LENGTH
        return config.resolved(**chosen)

    def plan(self, phases: list) -> list:
        """The span head trains with the encoder, as run_qa.py's: a head-only phase is left
        out when a phase that trains the encoder follows (a head on frozen sub-token features
        costs a full encoder pass per epoch), and every phase keeps its epoch of best
        validation F1 (a generative reader's: of least validation loss, the teacher-forced
        cross-entropy of the reference answers, as Seq2SeqTrainer's default)."""
        trains = [p for p in phases if p.backbone_groups != 0]
        kept = trains if trains and len(trains) < len(phases) else phases
        if self.generative:  # generated answers score 0 for epochs before the loss shows it
            return [dataclasses.replace(p, monitor="val_loss") for p in kept]
        return [dataclasses.replace(p, monitor="val_score") for p in kept]

    @classmethod
    def split(cls, data: QuestionsData, val_fraction: float, seed: int):
        """A seeded ``val_fraction`` of the contexts, with all their questions, to validation
        (questions about one passage would otherwise leak its answers across)."""
        from graft.tasks.question_answering.read import split_by_context

        return split_by_context(data, val_fraction, seed)

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        check_companions(splits)
        return splits

    @classmethod
    def from_training_data(cls, train: QuestionsData, config: FitConfig) -> QuestionAnsweringTask:
        from graft.tasks.question_answering.generative import check_generative

        options = config.task_options
        return cls(
            negatives=train.unanswerable > 0,
            doc_stride=int(options.get("doc_stride", 128)),
            max_answer_length=int(options.get("max_answer_length", 30)),
            generative=check_generative(config.model),
        )

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> QuestionsData:
        from graft.tasks.question_answering.read import read_questions

        return read_questions(data)

    def relabel(self, data: Any) -> Any:
        return data

    # Training ----------------------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        """The head's two outputs per sub-token."""
        return ["start", "end"]

    @classmethod
    def build_backbone(cls, config: FitConfig, data: Any) -> Any:
        """The encoder of ``--model``: a text model, or an earlier question-answering run
        (its fine-tuned encoder, with its span head kept for :meth:`new_head`)."""
        from graft.backbones.factory import build_backbone
        from graft.backbones.hf_text import HFTextBackbone
        from graft.tasks.question_answering.encoder import SpanEncoder, from_run, run_record
        from graft.tasks.question_answering.generative import build_reader, check_generative

        if check_generative(config.model):
            return build_reader(config.model, max_length=config.max_length or DEFAULT_MAX_LENGTH)
        record = run_record(config.model)
        if record is not None and (record.get("task") or {}).get("generative"):
            raise ConfigError(
                f"--model {config.model} is a generative question-answering run: continuing "
                "one is not built; give its sequence-to-sequence model instead"
            )
        if record is not None:
            encoder = from_run(config.model, record)
            log.info(
                "continuing the question-answering run %s: its encoder and span head", config.model
            )
            if config.max_length is not None:
                encoder.preprocessing = dataclasses.replace(
                    encoder.preprocessing, max_length=config.max_length
                )
            return encoder
        pooled = build_backbone(config, data)
        if not isinstance(pooled, HFTextBackbone):
            raise ConfigError(f"--model {config.model}: question answering needs a text encoder")
        return SpanEncoder.from_text_backbone(pooled)

    @classmethod
    def restore_backbone(cls, spec: str, pretrained: bool) -> Any:
        from graft.tasks.question_answering.encoder import create_span_encoder
        from graft.tasks.question_answering.generative import build_reader, check_generative

        if check_generative(spec):
            return build_reader(spec, pretrained=pretrained)
        return create_span_encoder(spec, pretrained=pretrained)

    def new_head(self, backbone, dropout: float = 0.1):
        """A span head; the one of the run ``--model`` named, when it named one."""
        from graft.tasks.question_answering.module import SpanHead

        if self.generative:
            from graft.tasks.question_answering.generative import NoHead

            return NoHead()
        head = SpanHead(backbone.feature_dim, dropout)
        if getattr(backbone, "head_state", None):
            head.load_state_dict(backbone.head_state)
        return head

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        from graft.tasks.question_answering.module import span_loss

        return span_loss(outputs, targets)

    def score_metric(self):
        from graft.tasks.question_answering.module import SquadF1

        if self.generative:
            from graft.tasks.question_answering.generated import GeneratedF1

            return GeneratedF1()
        return SquadF1(self.max_answer_length, self.negatives)

    def training_module(self, head, phase, backbone, **options: Any):
        from graft.tasks.question_answering.module import SpanModule

        if self.generative:
            from graft.tasks.question_answering.generated import GenerativeModule

            options.pop("mixup", None)
            return GenerativeModule(head, phase, backbone, task=self, **options)
        return SpanModule(head, phase, backbone, task=self, **options)

    # Batches -----------------------------------------------------------------------------------

    def items_of(self, data: QuestionsData) -> list:
        """Each question with its context."""
        return data.items

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        from graft.tasks.question_answering.batches import QuestionsDataset

        if isinstance(data, list):
            return QuestionsDataset(data, None, by_length=True)
        if self.generative:
            from graft.tasks.question_answering.generated import warn_cut

            warn_cut(preprocessing.tokenizer, data.items, preprocessing.max_length)
        return QuestionsDataset(data.items, data.answers, by_length=not train)

    def collate(self, preprocessing: Any):
        from graft.tasks.question_answering.batches import QuestionsCollate

        if self.generative:
            from graft.tasks.question_answering.generated import GenerativeCollate

            return GenerativeCollate(preprocessing, self.max_answer_length + 1)
        return QuestionsCollate(preprocessing, self.doc_stride)

    def read_inputs(self, inputs: list, modality: str, column: str | None = None) -> list:
        """Questions with their contexts: pairs or dicts, or tables (SQuAD JSON, JSONL, CSV)
        of questions and contexts (answers not needed)."""
        from graft.tasks.question_answering.read import read_unlabelled

        return read_unlabelled(inputs)

    def model_inputs(self, batch: dict) -> dict:
        from graft.backbones.hf_tokens import MODEL_INPUTS

        return {name: batch[name] for name in MODEL_INPUTS if name in batch}

    def infer(self, backbone, head, inputs) -> dict:
        """Each window's best answer; the windows read :data:`WINDOW_BATCH` at a time."""
        from graft.tasks.question_answering.answers import infer_windows

        if self.generative:
            from graft.tasks.question_answering.generated import generate

            return generate(backbone, inputs, self.max_answer_length)
        return infer_windows(lambda part: head(backbone(part)), inputs, self.max_answer_length)

    def infer_exported(self, engine, inputs) -> dict:
        """Each window's best answer from an exported encoder and span head (its start and
        end logits), as :meth:`infer` finds it."""
        from graft.tasks.question_answering.answers import infer_windows

        return infer_windows(
            lambda part: engine(self.model_inputs(part)), inputs, self.max_answer_length
        )

    def join(self, chunks: list) -> dict:
        from graft.tasks.question_answering.answers import join_windows

        if self.generative:
            from graft.tasks.question_answering.generated import join_generated

            return join_generated(chunks)
        return join_windows(chunks)

    # Record ------------------------------------------------------------------------------------

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "negatives": self.negatives,
            "doc_stride": self.doc_stride,
            "max_answer_length": self.max_answer_length,
            "generative": self.generative,
        }

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> QuestionAnsweringTask:
        return cls(
            negatives=bool(record.get("negatives", False)),
            doc_stride=int(record.get("doc_stride", 128)),
            max_answer_length=int(record.get("max_answer_length", 30)),
            generative=bool(record.get("generative", False)),
        )
