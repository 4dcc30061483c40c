"""What a similarity model has beyond the core protocol: it is guarded by the pretrained
encoder (:class:`~graft.tasks.capabilities.GuardsPretrained`), its answers are embeddings, and
it searches (:class:`~graft.tasks.capabilities.Searches`: a pretrained model as it is, or a
fitted one through :class:`~graft.tasks.similarity.model.SimilarityModel`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft.tasks.capabilities import (
    BatchesTraining,
    BuildsBackbone,
    ClaimsData,
    GuardsPretrained,
    HeadLoaders,
    HeadLoss,
    PlansPhases,
    PredictionText,
    Refused,
    Searches,
    Served,
    Summarised,
)

if TYPE_CHECKING:
    from graft.data import DataSplits


class SimilarityCapabilities(
    ClaimsData,
    BuildsBackbone,
    HeadLoss,
    PlansPhases,
    BatchesTraining,
    HeadLoaders,
    PredictionText,
    Served,
    Refused,
    Summarised,
    GuardsPretrained,
    Searches,
):
    """The answers and search of :class:`~graft.tasks.similarity.task.SimilarityTask`."""

    kind = "similarity"

    # Answers -----------------------------------------------------------------------------------

    def answers(self, outputs: Any) -> Any:
        """The normalised embeddings, ``float32[n, width]``."""
        return outputs.float().numpy()

    def prediction_records(self, outputs: Any, top_k: int) -> list[dict]:
        return [{"embedding": [round(v, 6) for v in row]} for row in outputs.tolist()]

    def served_answers(self, outputs: Any, top_k: int) -> list:
        return self.prediction_records(outputs, top_k)

    def prediction_text(self, record: dict) -> str | None:
        values = record["embedding"]
        return f"[{', '.join(f'{v:.3f}' for v in values[:4])}, ...] ({len(values)} values)"

    def refusal(self, command: str) -> str | None:
        """Export is refused: the model embeds with ``graft predict`` and searches with
        ``graft index`` and ``graft search``; ``graft serve`` serves an index, not a run."""
        if command == "export":
            return (
                "a similarity model is not exported yet: it embeds with graft predict and "
                "searches with graft index and graft search"
            )
        if command == "serve":
            return (
                "graft serve answers /search for an index: write one with graft index RUN "
                "CORPUS --out INDEX, then graft serve INDEX"
            )
        return None

    # Summary ---------------------------------------------------------------------------------

    def data_summary(self, splits: DataSplits, backbone: Any) -> dict:
        """Pairs, queries and documents of each split."""
        parts = splits.parts()
        return {
            "modality": splits.train.modality,
            "task": self.kind,
            "examples": {n: len(p) for n, p in parts.items()},
            "queries": {n: len(set(p.query_ids)) for n, p in parts.items()},
            "documents": {n: len(p.corpus) for n, p in parts.items()},
            "skipped": {},
            "skipped_count": 0,
        }

    def summary(self, splits: DataSplits) -> dict:
        return {"loss": self.loss_name, "hard_negatives": splits.train.negatives is not None}

    # Search ------------------------------------------------------------------------------------

    @classmethod
    def open_model(cls, source: Any) -> Any:
        """The pretrained model a model string names, as it is."""
        from graft.tasks.similarity.model import SimilarityModel

        return SimilarityModel.pretrained(str(source))

    def searcher(self, predictor: Any) -> Any:
        from graft.tasks.similarity.model import SimilarityModel

        return SimilarityModel.of(predictor)

    @classmethod
    def holds_run(cls, path: Any) -> bool:
        import json

        record = Path(str(path)) / "config.json"
        if not record.is_file():
            return False
        task = json.loads(record.read_text()).get("task")
        return isinstance(task, dict) and task.get("kind") == cls.kind
