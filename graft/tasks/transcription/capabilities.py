"""What transcription has beyond the core of a task (:mod:`graft.tasks.capabilities`): its
metrics with the pretrained model's beside the fitted one's, and its report sections and
overview rows (:class:`~graft.tasks.capabilities.Reported`)."""

from __future__ import annotations

from typing import Any

from graft.tasks.capabilities import ExportsItself, Refused, Reported, Served


class TranscriptionCapabilities(Reported):
    """Mixed into :class:`graft.tasks.transcription.task.TranscriptionTask`: the report's
    sections (:mod:`graft.tasks.transcription.report`; the WER before and after a fit comes
    from the validation metrics' ``pretrained``, the pretrained model scored by the guard on
    the same clips) and the overview's rows on scoring and decoding.
    """

    @classmethod
    def report_sections(cls, metrics: dict, classes: Any, split: str, modality: str | None):
        from graft.tasks.transcription.report import transcription_sections

        return transcription_sections(metrics, split)

    @classmethod
    def comparison_sections(cls, val_metrics: dict) -> list:
        from graft.tasks.transcription.metrics import before_after
        from graft.tasks.transcription.report import before_after_sections

        record = before_after(val_metrics)
        return before_after_sections(record) if record else []

    @classmethod
    def overview(cls, record: dict) -> list[tuple[str, str]]:
        """How texts were scored and decoded (``config.json``'s task record)."""
        normalised = bool(record.get("normalize", True))
        beams = int(record.get("beams", 1))
        rows = [
            ("scored", "normalised text" if normalised else "lower-cased text (--no-normalize)"),
            ("decoding", "greedy" if beams == 1 else f"beam search, {beams} beams"),
        ]
        if record.get("prompt"):
            rows.append(("vocabulary prompt", str(record["prompt"])))
        return rows


class ServedAndExported(Served, ExportsItself, Refused):
    """``graft serve`` and ``graft export`` of a speech model, mixed into
    :class:`graft.tasks.transcription.task.TranscriptionTask` (which gives ``beams``): an
    uploaded clip answered with its transcript, an ONNX export of its own (Whisper's encoder
    and decoder, or the CTC model: :mod:`graft.tasks.transcription.export`), and the refusal
    to export beam search."""

    beams: int
    #: The longest clip ``graft serve`` takes in one upload (Whisper's window, as the
    #: readers': :data:`graft.tasks.transcription.read.MAX_SECONDS`); longer ones are refused
    #: by name.
    clip_seconds: float | None = 30.0

    def served_answers(self, outputs: list[dict], top_k: int) -> list[dict]:
        """Each clip's ``{"text", "seconds", "duration"}``: its transcript (empty for
        silence), the seconds the model took for it (its batch's share) and its length in
        seconds."""
        return [
            {"text": a["transcript"], "seconds": a["seconds"], "duration": a.get("duration")}
            for a in outputs
        ]

    def refusal(self, command: str) -> str | None:
        if command == "export" and self.beams > 1:
            return (
                f"this transcription model decodes with {self.beams} beams (--beams), and an "
                "ONNX export decodes greedily: fit with --beams 1 to export it"
            )
        return None

    def export(self, model: Any, items: list, out: Any, format: str) -> dict:
        """Whisper's encoder and decoder, or the CTC model, as ONNX, parity checked on the
        transcripts of real clips (:mod:`graft.tasks.transcription.export`)."""
        from pathlib import Path

        from graft.tasks.transcription.export import export_transcription

        return export_transcription(model, items, Path(out), format)

    def exported_engine(self, folder: Any, format: str, run_dir: Any) -> Any:
        from pathlib import Path

        from graft.errors import ConfigError
        from graft.tasks.transcription.export import speech_engine

        if format != "onnx":
            raise ConfigError("a transcription model exports to ONNX only: --engine onnx")
        return speech_engine(Path(folder), run_dir)
