"""``parity``: a kind of task that lives outside graft, as a plug-in package would.

Its data is a CSV table with a ``text`` column and a ``parity`` column (``even`` or ``odd``);
``--task auto`` recognises it by that column. It is built on graft's protocol alone
(:class:`graft.tasks.base.Task` and the capabilities of :mod:`graft.tasks.capabilities` it has,
graft's data readers, head and evaluation): it imports no kind of graft's.
``tests/tasks/test_plugin.py`` registers it through an ``entry_points.txt``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from graft.data import DataSplits, LabelledData, load_data
from graft.errors import DataError
from graft.tasks.base import MetricsTable, Task
from graft.tasks.capabilities import ClaimsData, HeadLoss, PredictionText, Served

COLUMN = "parity"
CLASSES = ["even", "odd"]


def is_parity_table(data: Any) -> bool:
    """Whether ``data`` is a CSV file whose header names a ``parity`` column."""
    if not isinstance(data, str | Path) or Path(data).suffix != ".csv" or not Path(data).is_file():
        return False
    with open(data, newline="") as handle:
        return COLUMN in next(csv.reader(handle), [])


def read_parity(data: Any) -> LabelledData:
    """A parity table, its labels indexed into :data:`CLASSES`."""
    if isinstance(data, LabelledData):
        return data
    if not is_parity_table(data):
        raise DataError(f"{data}: not a CSV table with a {COLUMN} column")
    read = load_data(data, text_column="text", label_column=COLUMN, task="multiclass")
    return read.relabel(CLASSES)


class ParityTask(ClaimsData, HeadLoss, Served, PredictionText, Task):
    """Even or odd, one of two classes per text."""

    kind = "parity"
    headline = "accuracy"

    @classmethod
    def claims(cls, data: Any) -> bool:
        return is_parity_table(data)

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config) -> DataSplits:
        return DataSplits(
            read_parity(data),
            None if val is None else read_parity(val),
            None if test is None else read_parity(test),
        )

    @classmethod
    def from_training_data(cls, train: Any, config) -> ParityTask:
        return cls()

    def read_labelled(self, data: Any, columns: dict) -> LabelledData:
        return read_parity(data)

    @property
    def classes(self) -> list[str]:
        return list(CLASSES)

    def new_head(self, backbone, dropout: float = 0.2):
        from graft.heads import ClassificationHead

        return ClassificationHead(backbone.feature_dim, len(CLASSES), dropout)

    def items_of(self, data: LabelledData) -> list[str]:
        return data.items

    def read_inputs(self, inputs: list, modality: str, column: str | None = None) -> list:
        from graft.data import load_inputs

        return load_inputs(inputs, modality, column=column)

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        from graft.data.transforms import InputDataset

        if isinstance(data, list):
            return InputDataset(data, None, preprocessing)
        return InputDataset(data.items, data.labels, preprocessing, train=train, augment=augment)

    def collate(self, preprocessing: Any):
        from graft.data.transforms import Collate

        return Collate(preprocessing)

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        import torch.nn.functional as F

        return F.cross_entropy(outputs, targets)

    def score_metric(self):
        from torchmetrics.classification import MulticlassAccuracy

        return MulticlassAccuracy(num_classes=len(CLASSES), average="micro")

    def answers(self, outputs) -> list[str]:
        return [CLASSES[i] for i in outputs.argmax(dim=-1).tolist()]

    def prediction_records(self, outputs, top_k: int) -> list[dict]:
        return [{"prediction": answer} for answer in self.answers(outputs)]

    def served_answers(self, outputs, top_k: int) -> list:
        return self.answers(outputs)

    def prediction_text(self, record: dict) -> str:
        return record["prediction"]

    def metrics(self, outputs, data: LabelledData) -> dict:
        import torch

        from graft.evaluation import classification_metrics

        return classification_metrics(outputs, torch.as_tensor(data.labels), CLASSES)

    def describe(self) -> str:
        return "even or odd"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        table = MetricsTable(title, ["metric", "value"], left=("metric",))
        table.rows.append(["accuracy", f"{metrics['accuracy']:.4f}"])
        return [table]

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> ParityTask:
        return cls()
