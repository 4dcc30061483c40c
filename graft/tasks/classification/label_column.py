"""What the tasks of one label column share: a folder of class folders or a table whose label
column holds a class, several labels or a number (:mod:`graft.data.sources`), read, split and
relabelled alike. Multiclass, multi-label and regression are its kinds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graft.data.sources import read_one
from graft.errors import ConfigError, DataError
from graft.tasks.base import Task, check_companions
from graft.tasks.capabilities import BatchesTraining, HeadLoss, Served
from graft.tasks.classification.inputs import ItemInputs

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits, LabelledData


class LabelColumnTask(BatchesTraining, HeadLoss, Served, ItemInputs, Task):
    """A task whose labels come from one label column (or class folders).

    Attributes:
        classes: class or label names in the order of the head's outputs; for regression,
            the target's name.
        label_delimiter: what separates a multi-label row's labels (None for the others).
    """

    formats = (
        "class folders of images, texts or audio (or train/ and val/ folders of them), or a "
        "table (.csv, .tsv, .jsonl, .parquet) with a label column (classification, regression)"
    )

    def __init__(self, classes: list[str], label_delimiter: str | None = None):
        self._classes = list(classes)
        self.label_delimiter = label_delimiter

    @property
    def classes(self) -> list[str]:
        return self._classes

    @classmethod
    def from_training_data(cls, train: LabelledData, config: FitConfig) -> LabelColumnTask:
        return cls(list(train.classes), train.label_delimiter)

    def train_batches(
        self, data: LabelledData, batch_size: int, seed: int, distributed: bool, preprocessing
    ):
        """Texts in batches of alike length in sub-tokens (each batch is padded to about its
        own texts' length, not to the longest of a random draw: a third of the encoder's work
        on sst2's sentences), in an order of (seed, epoch) only; images and audio, and
        training across processes, the usual seeded shuffle."""
        from graft.backbones.base import TextPreprocessing

        if distributed or not isinstance(preprocessing, TextPreprocessing):
            return None
        from graft.data.transforms import token_counts
        from graft.training.sampling import LengthGroupedBatches

        lengths = token_counts(list(data.items), preprocessing)
        return {"batch_sampler": LengthGroupedBatches(lengths, batch_size, seed)}

    def validation_order(self, data: LabelledData) -> list[int] | None:
        """Texts longest first (the metrics add up batch by batch, whatever the order)."""
        from graft.data.transforms import longest_first

        order = longest_first(list(data.items)) if data.modality == "text" else None
        return None if order is None else order.tolist()

    @classmethod
    def check_options(cls, config: FitConfig) -> None:
        super().check_options(config)
        refuse_head_init(cls.kind, config)

    @classmethod
    def read_splits(cls, data, val, test, columns: dict, config: FitConfig) -> DataSplits:
        return read_label_splits(data, val, test, columns, config)

    @classmethod
    def check_splits(cls, splits: DataSplits) -> DataSplits:
        check_parts(splits)
        for name in ("val", "test"):
            part = getattr(splits, name)
            if part is not None:
                setattr(splits, name, part.relabel(splits.train.classes))
        return splits

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> LabelledData:
        """Labelled data to evaluate on, read as this task's kind, indexed into its classes."""
        from graft.data import LabelledData

        if not isinstance(data, LabelledData):
            data = read_one(data, columns, self.kind, self.label_delimiter)
        if data.task != self.kind:
            raise DataError(f"{data.source} holds {data.task} labels; this model is {self.kind}")
        return data.relabel(self.classes)

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> LabelColumnTask:
        return cls(list(labels), record.get("label_delimiter"))

    def new_head(self, backbone, dropout: float = 0.2):
        from graft.heads import ClassificationHead

        return ClassificationHead(backbone.feature_dim, self.outputs, dropout)

    @property
    def outputs(self) -> int:
        """The head's outputs: one per class (or label)."""
        return len(self.classes)


def read_label_splits(
    data: Any,
    val: Any,
    test: Any,
    columns: dict[str, str | None],
    config: FitConfig,
) -> DataSplits:
    """The training data (and ``val``/``test`` when given, or the splits of a ``train/val/test``
    folder or a ``datasets.DatasetDict``), validation and test data read as the training
    data's task and delimiter."""
    from graft.data import DataSplits, LabelledData, load_splits

    task = dict(task=config.task, label_delimiter=config.label_delimiter)
    if isinstance(data, LabelledData):
        splits = DataSplits(data)
    else:
        given = {k: v for k, v in columns.items() if v is not None}
        splits = load_splits(data, **given, **task)
    train = splits.train
    if val is not None:
        splits.val = read_one(val, columns, train.task, train.label_delimiter, "val")
    if test is not None:
        splits.test = read_one(test, columns, train.task, train.label_delimiter, "test")
    return splits


def refuse_head_init(kind: str, config: FitConfig) -> None:
    """``--head-init labels`` starts one multiclass head (ConfigError for ``kind``'s)."""
    if (config.task_options or {}).get("head_init", "random") != "random":
        raise ConfigError(f"--head-init labels starts a multiclass head; this data is {kind}")


def check_parts(splits: DataSplits) -> None:
    """Validation and test data must hold examples of the training data's modality and task."""
    train = splits.train
    check_companions(splits)
    for part in (splits.val, splits.test):
        if part is not None and part.task != train.task:
            raise DataError(
                f"{part.source} holds {part.task} labels but the training data "
                f"{train.source} holds {train.task} ones"
            )
