"""Speech recognition: a transcript for each audio clip.

The data are clips with their transcripts (:mod:`graft.tasks.transcription.read`: the
audiofolder layout, tables, Kaldi folders), recognised by content. The model is a pretrained
speech-to-text model (:mod:`graft.tasks.transcription.model`: graft's offline
``whisper-tiny.en`` by default, a Whisper or CTC model by ``hf:`` name or folder), its encoder
the backbone and its decoder (a CTC model's output layer) the head. The phases train through
the engine with the model's own loss (:mod:`graft.tasks.transcription.module`), SpecAugment,
a small learning rate with a warm-up, each keeping its epoch of best validation word accuracy
(``1 - WER``); the pretrained model is scored on validation first and kept when no phase
beats it (:class:`~graft.tasks.capabilities.GuardsPretrained`).

Answers are transcripts; metrics are the word and character error rates of normalised texts
(:mod:`graft.tasks.transcription.metrics`), per speaker when the data name speakers, with the
worst utterances.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError
from graft.tasks.base import MetricsTable, Task, check_companions
from graft.tasks.capabilities import (
    BuildsBackbone,
    ClaimsData,
    EvaluatesPretrained,
    GuardsPretrained,
    HeadLoss,
    JoinsOutputs,
    PlansPhases,
    PredictionText,
    Summarised,
)
from graft.tasks.transcription.capabilities import (
    ServedAndExported,
    TranscriptionCapabilities,
)
from graft.tasks.transcription.options import DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_LR

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits

#: The strategies a transcription fit takes.
STRATEGIES = ("feature-extract", "fine-tune", "full", "lora")


class TranscriptionTask(
    ClaimsData,
    BuildsBackbone,
    HeadLoss,
    PlansPhases,
    JoinsOutputs,
    PredictionText,
    GuardsPretrained,
    EvaluatesPretrained,
    Summarised,
    TranscriptionCapabilities,
    ServedAndExported,
    Task,
):
    """A transcript for each clip (see the module docstring).

    Attributes:
        normalize: whether texts are scored normalised (Whisper's English normaliser).
        beams: Whisper's beams when decoding (1: greedy).
        prompt: the ``--vocabulary`` terms Whisper reads before each clip ("" without).
        finetune_groups: the encoder groups ``fine-tune`` trains (the top half of its blocks).
    """

    kind = "transcription"
    headline = "word_accuracy"
    split_kind = "by speaker"
    formats = (
        "an audiofolder (metadata.csv of file_name and text), a table of audio files and "
        "transcripts, or a Kaldi folder (wav.scp, text) (transcription)"
    )

    def __init__(
        self, normalize: bool = True, beams: int = 1, prompt: str = "", finetune_groups: int = 2
    ):
        self.normalize, self.beams, self.prompt = bool(normalize), int(beams), prompt
        self.finetune_groups = int(finetune_groups)

    # Data --------------------------------------------------------------------------------------

    @classmethod
    def claims(cls, data: Any) -> bool:
        from graft.tasks.transcription.read import holds_speech

        return holds_speech(data)

    @classmethod
    def near_miss(cls, data: Any) -> str | None:
        return None

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        """Split folders, one folder or a table; ``val`` and ``test`` given replace the
        folder's."""
        from graft.data import DataSplits
        from graft.tasks.transcription.read import read_speech, read_speech_splits

        parts = read_speech_splits(data)
        for position, given in ((1, val), (2, test)):
            if given is not None:
                parts[position] = read_speech(given)
        return DataSplits(*parts)

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        refused = {
            f"--strategy {config.strategy}: a transcription fit takes {', '.join(STRATEGIES)}": (
                config.strategy not in STRATEGIES
            ),
            f"--adapt {config.adapt} aligns pooled features for classification": (
                config.adapt != "none"
            ),
            "--lr auto tests a classification head's rates; give --lr (default 5e-5)": (
                config.lr == "auto"
            ),
            "--baseline scratch trains a classifier from random weights; a transcription fit "
            "is compared with the pretrained model instead": config.baseline == "scratch",
            "--sampler balanced draws classes evenly; transcripts have none": (
                config.sampler == "balanced"
            ),
            "--class-weights weighs classes; transcripts have none": bool(config.class_weights),
            "--image-size resizes images; transcription reads audio": (
                config.image_size is not None
            ),
        }
        for message, bad in refused.items():
            if bad:
                raise ConfigError(message)

    def defaults(self, config: FitConfig) -> FitConfig:
        """A learning rate of 5e-5 with a warm-up, batches of 8, 3 epochs, and graft's
        offline ``whisper-tiny.en`` when the model is the default audio classifier's."""
        from graft.config import DEFAULT_MODELS, FitConfig
        from graft.tasks.transcription.model import DEFAULT_MODEL

        generic = FitConfig()
        chosen: dict[str, Any] = {
            "lr": config.lr if isinstance(config.lr, float) else DEFAULT_LR,
            "batch_size": config.batch_size or DEFAULT_BATCH_SIZE,
            "epochs": config.epochs or DEFAULT_EPOCHS,
        }
        if config.lr == generic.lr:
            chosen["lr"] = DEFAULT_LR
        if config.model in (None, DEFAULT_MODELS["audio"]):
            chosen["model"] = DEFAULT_MODEL
        return config.resolved(**chosen)

    def plan(self, phases: list) -> list:
        """The decoder does not train alone before the encoder (``fine-tune``, ``lora``);
        ``fine-tune`` trains the top half of the encoder's blocks; every phase keeps its
        epoch of best validation word accuracy, with a warm-up of a tenth of its steps."""
        trains = [p for p in phases if p.backbone_groups != 0]
        kept = trains or phases
        planned = []
        for phase in kept:
            changes: dict[str, Any] = {"monitor": "val_score", "warmup_fraction": 0.1}
            if phase.name == "finetune":
                changes["backbone_groups"] = self.finetune_groups
            planned.append(dataclasses.replace(phase, **changes))
        return planned

    @classmethod
    def split(cls, data: Any, val_fraction: float, seed: int):
        """A seeded ``val_fraction`` of the speakers (of the clips without speakers)."""
        from graft.tasks.transcription.read import split_by_speaker

        return split_by_speaker(data, val_fraction, seed)

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        check_companions(splits)
        return splits

    @classmethod
    def from_training_data(cls, train: Any, config: FitConfig) -> TranscriptionTask:
        options = config.task_options
        vocabulary = options.get("vocabulary")
        return cls(
            normalize=bool(options.get("normalize", True)),
            beams=int(options.get("beams", 1)),
            prompt=vocabulary_prompt(vocabulary) if vocabulary else "",
            finetune_groups=_finetune_groups(config.model),
        )

    def announce(self) -> str:
        scored = "normalised" if self.normalize else "lower-cased"
        return f"task: transcription (WER of {scored} text)"

    def summary(self, splits: Any) -> dict:
        """Utterances skipped by reason, and speakers, of each split."""
        parts = splits.parts()
        skipped: dict[str, dict[str, int]] = {}
        for name, part in parts.items():
            for _, reason in part.skipped:  # "empty transcript", "unreadable audio", ...
                key = " ".join(reason.split(" ")[:2])
                skipped.setdefault(name, {}).setdefault(key, 0)
                skipped[name][key] += 1
        speakers = {n: len(set(p.speakers)) for n, p in parts.items() if p.speakers}
        return {"skipped_by_reason": skipped, "speakers": speakers}

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> Any:
        """The test split of split folders (else the only one), or a table."""
        from graft.tasks.transcription.read import read_speech_splits

        train, val, test = read_speech_splits(data)
        return test or val or train

    def relabel(self, data: Any) -> Any:
        return data

    # Training ----------------------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        return []

    @classmethod
    def build_backbone(cls, config: FitConfig, data: Any) -> Any:
        from graft.tasks.transcription.model import build_encoder

        augment = float(config.task_options.get("spec_augment", 0.05))
        encoder = build_encoder(config.model, pretrained=True, spec_augment=augment)
        encoder.lr_mult = 1.0  # the encoder trains at --lr, as the decoder does
        return encoder

    @classmethod
    def restore_backbone(cls, spec: str, pretrained: bool) -> Any:
        from graft.tasks.transcription.model import build_encoder

        return build_encoder(spec, pretrained=pretrained)

    def new_head(self, backbone: Any, dropout: float = 0.0):
        from graft.tasks.transcription.model import SpeechHead

        return SpeechHead(backbone.whole)

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        raise ConfigError("a speech model computes its own loss (TranscriptionModule)")

    def score_metric(self):
        from graft.tasks.transcription.module import WordAccuracy

        return WordAccuracy(self.normalize)

    def training_module(self, head, phase, backbone, **options: Any):
        from graft.tasks.transcription.module import TranscriptionModule

        options.pop("mixup", None)
        return TranscriptionModule(head, phase, backbone, task=self, **options)

    # Batches -----------------------------------------------------------------------------------

    def items_of(self, data: Any) -> list[str]:
        return list(data.paths)

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        from graft.tasks.transcription.batches import ClipsDataset

        if isinstance(data, list):
            return ClipsDataset(data, None)
        return ClipsDataset(data.paths, data.texts)

    def collate(self, preprocessing: Any):
        from graft.tasks.transcription.batches import SpeechCollate

        return SpeechCollate(preprocessing.feature_extractor)

    def read_inputs(self, inputs: list, modality: str, column: str | None = None) -> list:
        """Audio files, folders of them (an audiofolder's or Kaldi folder's clips in their
        order), or tables with an audio-file column (``column``, else a usual name)."""
        from graft.tasks.transcription.read import read_clips

        return read_clips(inputs, column)

    def infer(self, backbone, head, inputs) -> list[dict]:
        """Each clip's transcript, the seconds its batch took per clip, the clip's duration
        and its words with their times (None: the model gives none;
        :mod:`graft.tasks.transcription.words`)."""
        import time

        from graft.tasks.transcription.module import transcribe_words

        start = time.perf_counter()
        found = transcribe_words(backbone, inputs, self.beams, self.prompt or None)
        seconds = round((time.perf_counter() - start) / max(1, len(found)), 4)
        durations = inputs.get("duration")
        durations = [None] * len(found) if durations is None else durations.tolist()
        return [
            {"transcript": text, "seconds": seconds, "duration": _seconds(length), "words": words}
            for (text, words), length in zip(found, durations, strict=True)
        ]

    def join(self, chunks: list) -> list[dict]:
        return [answer for chunk in chunks for answer in chunk]

    # Answers and metrics -----------------------------------------------------------------------

    def answers(self, outputs: list[dict]) -> list[str]:
        return [answer["transcript"] for answer in outputs]

    def prediction_records(self, outputs: list[dict], top_k: int) -> list[dict]:
        """The transcript, the seconds it took (its batch's share), the clip's duration in
        seconds and its words (``{"word", "start", "end"}``; None when the model gives no
        timestamps)."""
        return [dict(answer) for answer in outputs]

    def prediction_text(self, record: dict) -> str:
        return record["transcript"] or "(silence: no speech)"

    def metrics(self, outputs: list[dict], data: Any) -> dict:
        """Error rates overall, per speaker and of the worst utterances."""
        from graft.tasks.transcription.metrics import transcription_metrics

        hypotheses = self.answers(outputs)
        return transcription_metrics(
            data.texts, hypotheses, data.speakers, self.normalize, data.paths
        )

    @classmethod
    def evaluate_pretrained(cls, model: str, data: Any) -> tuple[Any, dict]:
        """The pretrained ``model`` scored as it is on labelled ``data``
        (:mod:`graft.tasks.transcription.evaluate`)."""
        from graft.tasks.transcription.evaluate import evaluate_model

        return cls(), evaluate_model(model, data)

    def describe(self) -> str:
        return "transcripts" + ("" if self.normalize else " (not normalised)")

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        from graft.tasks.transcription.tables import metrics_tables

        return metrics_tables(metrics, title)

    # Record ------------------------------------------------------------------------------------

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "normalize": self.normalize,
            "beams": self.beams,
            "prompt": self.prompt,
            "finetune_groups": self.finetune_groups,
        }

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> TranscriptionTask:
        return cls(
            normalize=bool(record.get("normalize", True)),
            beams=int(record.get("beams", 1)),
            prompt=str(record.get("prompt", "")),
            finetune_groups=int(record.get("finetune_groups", 2)),
        )


def vocabulary_prompt(vocabulary: str | Path) -> str:
    """The prompt Whisper reads before each clip: the ``--vocabulary`` file's terms (one a
    line, blank lines ignored) joined by commas."""
    path = Path(vocabulary).expanduser()
    if not path.is_file():
        raise ConfigError(f"--vocabulary {vocabulary}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ConfigError(f"--vocabulary {vocabulary}: not UTF-8 text ({error.reason})") from None
    terms = [t.strip() for t in lines if t.strip()]
    if not terms:
        raise ConfigError(f"--vocabulary {vocabulary}: no terms (one word or name a line)")
    return ", ".join(terms) + "."


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _finetune_groups(spec: str | None) -> int:
    """The top half of the encoder's blocks of the model ``spec`` (read from its
    configuration)."""
    from transformers import AutoConfig

    from graft.tasks.transcription.model import DEFAULT_MODEL, model_folder

    config = AutoConfig.from_pretrained(model_folder(spec or DEFAULT_MODEL))
    layers = getattr(config, "encoder_layers", None) or config.num_hidden_layers
    return max(1, (int(layers) + 1) // 2)
