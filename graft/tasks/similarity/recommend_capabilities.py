"""What a recommendation model has beyond the core protocol: it is guarded by the pretrained
encoder (:class:`~graft.tasks.capabilities.GuardsPretrained`), keeps the catalogue and the
known interactions beside its weights (:class:`~graft.tasks.capabilities.HoldsNetworks`), and
recommends (:class:`~graft.tasks.capabilities.Recommends`, through
:class:`~graft.tasks.similarity.recommend_model.Recommender`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graft.tasks.capabilities import (
    BatchesTraining,
    BuildsBackbone,
    GuardsPretrained,
    HeadLoss,
    HoldsNetworks,
    PlansPhases,
    PredictionText,
    Recommends,
    Refused,
    Summarised,
)

if TYPE_CHECKING:
    from graft.data import DataSplits


class RecommendationCapabilities(
    BuildsBackbone,
    HeadLoss,
    PlansPhases,
    BatchesTraining,
    HoldsNetworks,
    PredictionText,
    Refused,
    Summarised,
    GuardsPretrained,
    Recommends,
):
    """The answers and recommendations of
    :class:`~graft.tasks.similarity.recommend_task.RecommendationTask`."""

    kind = "recommendation"

    def answers(self, outputs: Any) -> list[list[str]]:
        """The ten best items of each user (seen items included: ``recommend`` leaves them
        out)."""
        import torch

        top = torch.topk(outputs, min(10, outputs.shape[1]), dim=1).indices.tolist()
        return [[self.item_ids[i] for i in row] for row in top]

    def prediction_records(self, outputs: Any, top_k: int) -> list[dict]:
        import torch

        found = torch.topk(outputs, min(top_k, outputs.shape[1]), dim=1)
        return [
            {
                "items": [
                    {"item": self.item_ids[i], "score": round(float(s), 4)}
                    for i, s in zip(r, v, strict=True)
                ]
            }
            for r, v in zip(found.indices.tolist(), found.values.tolist(), strict=True)
        ]

    def prediction_text(self, record: dict) -> str | None:
        return ", ".join(entry["item"] for entry in record["items"])

    def refusal(self, command: str) -> str | None:
        if command == "export":
            return "a recommendation model is not exported yet: use graft recommend"
        return None  # served by graft serve as /recommend (graft.serve.recommendations)

    def data_summary(self, splits: DataSplits, backbone: Any) -> dict:
        """Interactions, users and items of each split."""
        parts = splits.parts()
        return {
            "modality": "text",
            "task": self.kind,
            "examples": {n: len(p) for n, p in parts.items()},
            "users": {n: len(set(p.users)) for n, p in parts.items()},
            "items": len(self.item_ids),
            "skipped": {n: p.skipped for n, p in parts.items()},
            "skipped_count": sum(p.skipped for p in parts.values()),
        }

    def recommender(self, predictor: Any) -> Any:
        from graft.tasks.similarity.recommend_model import Recommender

        return Recommender(predictor)
