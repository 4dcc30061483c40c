"""The similarity kind of task: an encoder fitted so that a query lands nearest the documents
it should find (see :mod:`graft.tasks.similarity`).

Its model is no classification head on pooled features: it trains, saves and evaluates itself
(:class:`~graft.tasks.capabilities.FitsItself`) and answers by embedding and searching
(:class:`~graft.tasks.capabilities.Searches`). The per-input protocol of the other kinds
(heads, batches, answers) is refused with the command to use instead.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError
from graft.tasks.base import MetricsTable, Task
from graft.tasks.capabilities import FitsItself, Searches
from graft.tasks.similarity.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_PROJECTION_LR,
)

if TYPE_CHECKING:
    from graft.config import FitConfig
    from graft.data import DataSplits

log = logging.getLogger("graft")

#: The strategies a similarity fit takes: fine-tune and full train the encoder,
#: feature-extract a projection on the frozen encoder.
STRATEGIES = ("fine-tune", "full", "feature-extract")
USE = "a similarity model embeds and searches: use graft index, graft search, graft evaluate"


class SimilarityTask(FitsItself, Searches, Task):
    """Texts embedded so that similar ones are near (see the module docstring)."""

    kind = "similarity"
    headline = "ndcg@10"
    split_kind = "queries"
    formats = (
        "a BEIR folder (corpus.jsonl, queries.jsonl, qrels/), or a table of query and positive "
        "columns (similarity)"
    )

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
        if config.strategy not in STRATEGIES:
            raise ConfigError(
                f"--strategy {config.strategy}: a similarity fit takes {', '.join(STRATEGIES)}"
            )
        if config.adapt != "none":
            raise ConfigError(f"--adapt {config.adapt} aligns classification features")
        super().check_options(config)

    @classmethod
    def split(cls, data: Any, val_fraction: float, seed: int):
        """A seeded ``val_fraction`` of the training queries, with all their pairs."""
        return data.split_by_query(val_fraction, seed)

    @classmethod
    def from_training_data(cls, train: Any, config: FitConfig) -> SimilarityTask:
        return cls()

    def announce(self) -> str:
        return "task: similarity (an encoder fitted for search)"

    def read_labelled(self, data: Any, columns: dict[str, str | None]) -> Any:
        from graft.tasks.similarity.read import read_any

        return read_any(data)

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

    def fit_itself(self, estimator: Any, splits: Any, config: Any, out: Any, overwrite: bool):
        from graft.tasks.similarity.fit import fit_similarity

        return fit_similarity(self, estimator, splits, config, out, overwrite)

    @classmethod
    def open_model(cls, source: Any) -> Any:
        from graft.tasks.similarity.model import SimilarityModel

        return SimilarityModel.open(source)

    @classmethod
    def holds_run(cls, path: Any) -> bool:
        from graft.tasks.similarity.model import is_run

        return is_run(path)

    # The per-input protocol, refused ------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        return []

    def new_head(self, backbone: Any, dropout: float = 0.2):
        raise ConfigError(USE)

    def loss(self, outputs, targets, class_weights=None, label_smoothing=0.0):
        raise ConfigError(USE)

    def score_metric(self) -> Any:
        raise ConfigError(USE)

    def items_of(self, data: Any) -> list:
        return list(data.anchors)

    def dataset(self, data: Any, preprocessing: Any, train: bool = False, augment: str = "none"):
        raise ConfigError(USE)

    def collate(self, preprocessing: Any):
        raise ConfigError(USE)

    def answers(self, outputs: Any) -> Any:
        raise ConfigError(USE)

    def prediction_records(self, outputs: Any, top_k: int) -> list[dict]:
        raise ConfigError(USE)

    def served_answers(self, outputs: Any, top_k: int) -> list:
        raise ConfigError(USE)

    def check_exportable(self) -> None:
        raise ConfigError("a similarity model is not exported yet: " + USE)

    def check_servable(self) -> None:
        raise ConfigError("graft serve does not answer /search yet: " + USE)

    # Metrics and record ------------------------------------------------------------------------

    def metrics(self, outputs: Any, data: Any) -> dict:
        raise ConfigError(USE)

    def describe(self) -> str:
        return "pairs of similar texts"

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        from graft.tasks.similarity.metrics import REPORTED

        shown = [m for m in (*REPORTED, "recall@10") if m in metrics]
        rows = [[name, f"{metrics[name]:.4f}"] for name in shown]
        rows.append(["queries", str(metrics.get("queries", ""))])
        return [MetricsTable(title, ["metric", "value"], rows, left=("metric",))]

    def record(self) -> dict:
        return {"kind": self.kind}

    @classmethod
    def from_record(cls, record: dict, labels: Any) -> SimilarityTask:
        return cls()


def timed(function, *args) -> tuple[Any, float]:
    """``function(*args)`` and the seconds it took."""
    started = time.perf_counter()
    return function(*args), time.perf_counter() - started
