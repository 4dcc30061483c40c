"""A number per input: one output trained on the standardised target, mean squared error, R².

The head learns ``(y - mean) / std`` with the training target's mean and standard deviation,
which the run keeps, so the loss and learning rates work alike whatever the target's units;
predictions are turned back into those units. Metrics: MSE, RMSE, MAE and R².
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from graft.errors import DataError
from graft.tasks.base import MetricsTable
from graft.tasks.capabilities import ExportedGraph
from graft.tasks.classification.label_column import LabelColumnTask

if TYPE_CHECKING:
    import torch

    from graft.config import FitConfig
    from graft.data import LabelledData


class RegressionTask(ExportedGraph, LabelColumnTask):
    """A number per input (see the module docstring).

    Attributes:
        classes: ``[the target's name]``.
        target_stats: the training target's ``(mean, std)``.
    """

    kind = "regression"
    headline = "r2"

    def __init__(self, classes: list[str], target_stats: tuple[float, float] = (0.0, 1.0)):
        super().__init__(classes, None)
        self.target_stats = (float(target_stats[0]), float(target_stats[1]))

    @classmethod
    def from_training_data(cls, train: LabelledData, config: FitConfig) -> RegressionTask:
        return cls(list(train.classes), regression_stats(train))

    def prepare_targets(self, targets: torch.Tensor) -> torch.Tensor:
        mean, std = self.target_stats
        return (targets - mean) / std

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        import torch.nn.functional as F

        return F.mse_loss(outputs.squeeze(-1), targets.to(outputs.dtype))

    def score_metric(self):
        from torchmetrics.regression import R2Score

        return R2Score()

    def score_inputs(self, outputs, targets):
        return outputs.squeeze(-1), targets

    def answers(self, outputs: torch.Tensor) -> np.ndarray:
        """The predicted values (float64 ``[n]``), in the target's units."""
        mean, std = self.target_stats
        return outputs.squeeze(-1).double().numpy() * std + mean

    def prediction_records(self, outputs: torch.Tensor, top_k: int) -> list[dict]:
        return [{"prediction": float(value)} for value in self.answers(outputs)]

    def served_answers(self, outputs: torch.Tensor, top_k: int) -> list[dict]:
        return [{"value": float(value)} for value in self.answers(outputs)]

    def metrics(self, outputs: torch.Tensor, data: LabelledData) -> dict:
        import torch

        from graft.evaluation import regression_metrics

        values = torch.as_tensor(self.answers(outputs))
        return regression_metrics(values, torch.as_tensor(data.labels))

    def describe(self) -> str:
        return f"target {self.classes[0]!r}"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: list[str], title: str) -> list[MetricsTable]:
        r2 = "n/a" if metrics["r2"] is None else f"{metrics['r2']:.4f}"
        table = MetricsTable(
            f"{title}: R² {r2} ({metrics['num_examples']} examples)",
            ["metric", "value"],
            left=("metric",),
        )
        table.rows += [[name.upper(), f"{metrics[name]:.4f}"] for name in ("mse", "rmse", "mae")]
        table.rows.append(["R²", r2])
        return [table]

    def record(self) -> dict:
        mean, std = self.target_stats
        return {"kind": self.kind, "target_mean": mean, "target_std": std}

    def export_record(self) -> dict:
        mean, std = self.target_stats
        return {"kind": self.kind, "mean": mean, "std": std}

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> RegressionTask:
        return cls(list(labels), (record["target_mean"], record["target_std"]))


def regression_stats(train: LabelledData) -> tuple[float, float]:
    """The mean and standard deviation of a regression target, which must vary."""
    mean, std = float(np.mean(train.labels, dtype=np.float64)), float(np.std(train.labels))
    if not std > 0:
        raise DataError(f"{train.source}: the regression target is {mean:g} throughout")
    return mean, std
