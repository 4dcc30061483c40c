"""Predictions of any number of inputs streamed to a file, resumable where they stopped.

``graft predict RUN INPUTS --out predictions.csv|.jsonl|.parquet`` (:func:`predict_to_file`)
reads the inputs (folders, tables, globs, texts) one argument at a time, runs them through the
model in batches of ``batch_size`` and writes each batch's answers before reading on, so memory
stays that of one batch (and of one argument's list of paths) whatever the number of inputs.

Resuming: beside the output, ``<out>.partial/state.json`` records after every batch how many
rows are complete, where they end in the file and a SHA-256 of the inputs they answer. A run
that is killed leaves both; the same command again truncates what the last batch may have half
written, checks that the inputs and settings are the same, and goes on from the next row: no
row is repeated or lost. JSON lines and CSV are appended in place (readable while they grow);
Parquet is written as one part file per batch in the ``.partial`` folder and joined into row
groups at the end. A finished output has no ``.partial`` folder; an existing file that is not
an unfinished prediction of the same inputs is refused unless ``overwrite``.

Columns: ``input``, then the answer: for a multiclass model ``label`` and ``probability`` (and
``label_2``, ``probability_2``, ... up to ``top_k``), for other kinds the fields of ``graft
predict --json``, nested ones (a multi-label list, boxes) as JSON text in CSV and Parquet.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from graft.errors import ConfigError, DataError, RunError
from graft.tasks.capabilities import configured, infer_exported

TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet")
#: The marker of graft's state file in ``<out>.partial``.
STATE_FORMAT = "graft-batch-prediction/1"
#: Parquet rows per row group when the parts are joined.
ROW_GROUP = 65536


def is_table_output(path: str | os.PathLike) -> bool:
    """Whether ``--out`` names a predictions table (else a folder of files, segmentation)."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


@dataclass
class BatchPrediction:
    """What :func:`predict_to_file` did: ``rows`` in the finished file, of which ``resumed``
    were there before and ``predicted`` were added in ``seconds``."""

    out: Path
    rows: int
    resumed: int
    predicted: int
    seconds: float

    @property
    def throughput(self) -> float:
        """Inputs predicted per second by this call."""
        return self.predicted / self.seconds if self.seconds > 0 else 0.0


def predict_to_file(
    model: Any,
    inputs: list,
    out: str | os.PathLike,
    *,
    column: str | None = None,
    top_k: int = 1,
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    answers: Callable | None = None,
    **options: Any,
) -> BatchPrediction:
    """Write the answers of fitted (or loaded) ``model`` for ``inputs`` to ``out`` (see the
    module docstring); ``options`` as :meth:`graft.GraftEstimator.predict` takes them.
    ``answers(model, task, stream, skip, batch_size, top_k)`` yields ``(items, rows)`` in input
    order from the ``skip``-th item on (default :func:`local_answers`; Ray's in
    :mod:`graft.ray_prediction`)."""
    start = time.perf_counter()
    out = Path(out).expanduser()
    if not is_table_output(out):
        raise ConfigError(f"--out {out}: a predictions table ends in {', '.join(TABLE_SUFFIXES)}")
    if top_k < 1 or (batch_size is not None and batch_size < 1):
        raise ConfigError("--top-k and --batch-size must be at least 1")
    if out.suffix.lower() == ".parquet":
        _require_pyarrow()
    task = configured(model.fitted_task_, **options)
    stream = InputStream(inputs, task, model.backbone_.modality, column)
    settings = _settings(model, stream, top_k, options)
    partial = out.with_name(out.name + ".partial")
    state = _previous(out, partial, settings, overwrite)
    resumed = state["rows"] if state else 0
    total, digest = stream.survey(resumed)  # reads every input once: errors before writing
    if state and (digest is None or digest.hexdigest() != state["inputs_sha256"]):
        raise RunError(
            f"{out} holds the answers of other inputs than these (its {resumed} rows do not "
            "answer the first of them): choose another --out or pass --overwrite"
        )
    state = state or _fresh(out, partial, settings)
    writer = WRITERS[out.suffix.lower()](out, partial, state, digest)
    batch_size = batch_size or model.config.with_defaults().batch_size * 2
    batches = (answers or local_answers)(model, task, stream, resumed, batch_size, top_k)
    with _Progress(progress, out, total, resumed) as advance:
        for items, rows in batches:
            writer.write(rows, items)
            advance(len(rows))
    writer.finish()
    shutil.rmtree(partial)
    added = state["rows"] - resumed
    return BatchPrediction(out, state["rows"], resumed, added, time.perf_counter() - start)


def local_answers(model: Any, task: Any, stream: InputStream, skip: int, batch_size: int,
                  top_k: int) -> Iterator[tuple[list, list[dict]]]:  # fmt: skip
    """Batches of ``(items, rows)`` predicted in this process, from the ``skip``-th item."""
    for items, inputs in _loader(model, task, stream, skip, batch_size):
        yield items, answer_rows(model, task, items, inputs, top_k)


def answer_rows(model: Any, task: Any, items: list, inputs: Any, top_k: int) -> list[dict]:
    """The rows of one batch: each item's input and answer."""
    records = task.prediction_records(_outputs(model, task, inputs), top_k)
    return [{"input": _text(i), **r} for i, r in zip(items, records, strict=True)]


def answer_items(model: Any, task: Any, items: list, top_k: int) -> list[dict]:
    """The rows of ``items`` (read, preprocessed and collated here) as one batch."""
    preprocessing = model.backbone_.preprocessing
    dataset = task.dataset(items, preprocessing)
    samples = [(item, dataset[i]) for i, item in enumerate(items)]
    _, inputs = _Collate(task.collate(preprocessing))(samples)
    return answer_rows(model, task, items, inputs, top_k)


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError("--out FILE.parquet needs pyarrow: pip install 'graft[tables]'") from None


# Inputs ----------------------------------------------------------------------------------------


class InputStream:
    """The items of ``graft predict``'s arguments, read one argument at a time (a folder's
    sorted files, a table's column, a glob's matches, a file, a text), in a stable order."""

    def __init__(self, arguments: list, task: Any, modality: str, column: str | None):
        self.arguments, self.task = [_argument(a) for a in arguments], task
        self.modality, self.column = modality, column
        if not self.arguments:
            raise DataError("nothing to predict: no inputs were given")

    def __iter__(self):
        for argument in self.arguments:
            for path in self._expanded(argument):
                yield from self.task.read_inputs([path], self.modality, column=self.column)

    def _expanded(self, argument: Any) -> list:
        """A glob's matches (sorted); any other argument as it is."""
        if not isinstance(argument, str) or not glob.has_magic(argument):
            return [argument]
        if Path(argument).expanduser().exists():
            return [argument]
        matches = sorted(glob.glob(os.path.expanduser(argument), recursive=True))
        if not matches and self.modality != "text":  # a text may hold '?' or '*'
            raise DataError(f"{argument}: no file matches this pattern")
        return matches or [argument]

    def survey(self, head: int) -> tuple[int, Any]:
        """How many items there are, and the SHA-256 of the first ``head`` of them (None when
        there are fewer)."""
        digest, count = hashlib.sha256(), 0
        for count, item in enumerate(self, start=1):
            if count <= head:
                _absorb(digest, item)
        return count, (digest if count >= head else None)


def _argument(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _text(item: Any) -> str:
    return item if isinstance(item, str) else str(item)


def _absorb(digest: Any, item: Any) -> None:
    data = _text(item).encode("utf-8", "surrogatepass")
    digest.update(len(data).to_bytes(8, "little") + data)


class _Samples(IterableDataset):
    """The stream's items after the first ``skip``, preprocessed, each with its item; a
    loading worker takes every n-th batch-sized chunk, so batches arrive in input order."""

    def __init__(self, stream: InputStream, skip: int, batch_size: int, task, preprocessing):
        self.stream, self.skip, self.batch_size = stream, skip, batch_size
        self.task, self.preprocessing = task, preprocessing

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        items = islice(iter(self.stream), self.skip, None)
        for index, chunk in enumerate(iter(lambda: list(islice(items, self.batch_size)), [])):
            if index % workers == worker:
                dataset = self.task.dataset(chunk, self.preprocessing)
                yield from ((item, dataset[i]) for i, item in enumerate(chunk))


class _Collate:
    """A batch of ``(item, sample)``: the items and the task's collated inputs."""

    def __init__(self, collate: Any):
        self.collate = collate

    def __call__(self, samples: list) -> tuple[list, Any]:
        inputs, _ = self.collate([sample for _, sample in samples])
        return [item for item, _ in samples], inputs


def _loader(model: Any, task: Any, stream: InputStream, skip: int, batch_size: int):
    from graft.training.sampling import loader_workers

    preprocessing = model.backbone_.preprocessing
    return DataLoader(
        _Samples(stream, skip, batch_size, task, preprocessing),
        batch_size=batch_size,
        collate_fn=_Collate(task.collate(preprocessing)),
        num_workers=loader_workers(model.config.num_workers),
    )


@torch.inference_mode()
def _outputs(model: Any, task: Any, inputs: Any) -> Any:
    """One batch's outputs, from the exported engine or the modules (on the GPU if any)."""
    from graft.features import to_device
    from graft.inference import _float_cpu

    if model.engine_ is not None:
        return infer_exported(task, model.engine_, inputs)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone, head = model.backbone_.to(device).eval(), model.head_.to(device).eval()
    return _float_cpu(task.infer(backbone, head, to_device(inputs, device)))


# State -----------------------------------------------------------------------------------------


def _settings(model: Any, stream: InputStream, top_k: int, options: dict) -> dict:
    """What must not change between an interrupted prediction and its resumption."""
    from graft.export.engine import model_hash
    from graft.runs.persistence import describe_engine

    arguments = hashlib.sha256()
    for argument in stream.arguments:
        _absorb(arguments, argument)
    run = getattr(model, "run_dir_", None)
    return {
        "run": None if run is None else str(Path(run).resolve()),
        "model_sha256": model_hash(run),
        "engine": describe_engine(model),
        "arguments_sha256": arguments.hexdigest(),
        "column": stream.column,
        "top_k": top_k,
        "options": {k: _text(v) for k, v in options.items() if v is not None},
    }


def _previous(out: Path, partial: Path, settings: dict, overwrite: bool) -> dict | None:
    """The state of an unfinished prediction of ``out`` to go on from (one with rows done and
    the same ``settings``), or None to start afresh; refuses to start afresh over an existing
    file or another prediction's rows without ``overwrite``."""
    state = _read_state(partial)
    if state is not None and state["rows"] and not overwrite:
        changed = [k for k, v in settings.items() if state["settings"].get(k) != v]
        if changed:
            raise RunError(
                f"{out}: an unfinished prediction with other settings ({', '.join(changed)}) "
                "is there: run it with those, or pass --overwrite to start again"
            )
        return state
    if out.is_dir():
        raise RunError(f"{out} is a folder: --out names the predictions file to write")
    if out.exists() and not overwrite and state is None:
        raise RunError(f"{out} already exists: choose another --out or pass --overwrite")
    return None


def _fresh(out: Path, partial: Path, settings: dict) -> dict:
    """A new state in an empty ``.partial`` folder, the output removed (checked by
    :func:`_previous`: replaced only with ``overwrite`` or when nothing of it was done)."""
    out.unlink(missing_ok=True)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    state = {"format": STATE_FORMAT, "settings": settings, "rows": 0, "offset": 0}
    state.update(inputs_sha256=hashlib.sha256().hexdigest(), columns=None, parts=0)
    write_state(partial, state)
    return state


def _read_state(partial: Path) -> dict | None:
    if not partial.exists():
        return None
    try:
        state = json.loads((partial / "state.json").read_text())
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise RunError(f"{partial} is not graft's record of an unfinished prediction: move it")
    return state


def write_state(partial: Path, state: dict) -> None:
    """``state.json``, replaced whole (written aside and renamed)."""
    temporary = partial / "state.json.tmp"
    temporary.write_text(json.dumps(state))
    os.replace(temporary, partial / "state.json")


# Writers ---------------------------------------------------------------------------------------


def table_row(record: dict) -> dict:
    """A ``graft predict --json`` record as flat columns (see the module docstring)."""
    row = {}
    for key, value in record.items():
        if key == "predictions" and value and "probability" in value[0]:
            ranked = "probabilities" not in record and _ranked(value)
            if ranked:
                for rank, answer in enumerate(value, start=1):
                    suffix = "" if rank == 1 else f"_{rank}"
                    row[f"label{suffix}"], row[f"probability{suffix}"] = (
                        answer["label"],
                        answer["probability"],
                    )
                continue
        row[key] = json.dumps(value) if isinstance(value, list | dict) else value
    return row


def _ranked(answers: list) -> bool:
    return all(set(answer) == {"label", "probability"} for answer in answers)


class _Writer:
    """Appends batches of rows and records the state after each (``digest``: the SHA-256 of
    the inputs of the rows already there, continued with each batch's)."""

    def __init__(self, out: Path, partial: Path, state: dict, digest: Any):
        self.out, self.partial, self.state, self.digest = out, partial, state, digest

    def write(self, rows: list[dict], items: list) -> None:
        self.state["offset"] = self._append(rows)
        for item in items:
            _absorb(self.digest, item)
        self.state["rows"] += len(rows)
        self.state["inputs_sha256"] = self.digest.hexdigest()
        write_state(self.partial, self.state)

    def _append(self, rows: list[dict]) -> int:
        """Write ``rows`` durably enough to survive the process; the file's new end."""
        raise NotImplementedError

    def finish(self) -> None:
        """Complete the file once every row is written."""


class _LinesWriter(_Writer):
    """JSON lines or CSV appended in place: what the last, unfinished batch may have written
    after the recorded end is cut off first."""

    def __init__(self, out: Path, partial: Path, state: dict, digest: Any):
        super().__init__(out, partial, state, digest)
        if (out.stat().st_size if out.is_file() else 0) < state["offset"]:
            raise RunError(
                f"{out} is shorter than the {state['rows']} rows its unfinished prediction "
                "wrote (changed since?): pass --overwrite to start again"
            )
        self.handle = open(out, "r+b" if out.exists() else "wb")  # noqa: SIM115 (kept open)
        self.handle.truncate(state["offset"])
        self.handle.seek(state["offset"])

    def _append(self, rows: list[dict]) -> int:
        self.handle.write(self._encode(rows).encode("utf-8"))
        self.handle.flush()
        return self.handle.tell()

    def _encode(self, rows: list[dict]) -> str:
        raise NotImplementedError

    def finish(self) -> None:
        os.fsync(self.handle.fileno())
        self.handle.close()


class _JsonLinesWriter(_LinesWriter):
    def _encode(self, rows: list[dict]) -> str:
        return "".join(json.dumps(row) + "\n" for row in rows)


class _CsvWriter(_LinesWriter):
    def _encode(self, rows: list[dict]) -> str:
        flat = [table_row(row) for row in rows]
        text = io.StringIO()
        if self.state["columns"] is None:
            self.state["columns"] = list(flat[0])
            csv.writer(text).writerow(self.state["columns"])
        writer = csv.DictWriter(text, self.state["columns"], extrasaction="ignore")
        writer.writerows(flat)
        return text.getvalue()


class _ParquetWriter(_Writer):
    """One Parquet part file per batch in the ``.partial`` folder, joined into row groups of
    up to :data:`ROW_GROUP` rows at the end (Parquet cannot be appended to)."""

    def _append(self, rows: list[dict]) -> int:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([table_row(row) for row in rows])
        if self.state["parts"]:
            table = table.cast(pq.read_schema(self._part(0)))
        temporary = self.partial / "part.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, self._part(self.state["parts"]))
        self.state["parts"] += 1
        return 0

    def _part(self, index: int) -> Path:
        return self.partial / f"part-{index:08d}.parquet"

    def finish(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.state["parts"]:
            raise DataError("nothing to predict: the inputs hold no image, audio or text")
        temporary = self.partial / "joined.parquet"
        schema, pending, count = pq.read_schema(self._part(0)), [], 0
        with pq.ParquetWriter(temporary, schema) as writer:
            for index in range(self.state["parts"]):
                pending.append(pq.read_table(self._part(index)))
                count += pending[-1].num_rows
                if count >= ROW_GROUP or index == self.state["parts"] - 1:
                    writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
                    pending, count = [], 0
        os.replace(temporary, self.out)


WRITERS = {".jsonl": _JsonLinesWriter, ".csv": _CsvWriter, ".parquet": _ParquetWriter}


class _Progress:
    """A rich progress bar of rows (``advance(n)``), or nothing when ``enabled`` is False."""

    def __init__(self, enabled: bool, out: Path, total: int, done: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self.task = self.bar.add_task(f"predicting into {out.name}", total=total, completed=done)

    def __enter__(self):
        self.bar.start()
        return lambda count: self.bar.advance(self.task, count)

    def __exit__(self, *exc_info) -> None:
        self.bar.stop()
