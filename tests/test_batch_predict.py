"""``graft predict RUN INPUTS --out FILE``: answers streamed to CSV, JSON lines or Parquet
equal the in-memory ones, an interrupted prediction resumes without repeating or losing a
row, and a file that is not an unfinished prediction of the same inputs is never replaced."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import graft
from graft import batch_prediction
from graft.batch_prediction import predict_to_file, table_row
from graft.cli import app
from graft.errors import DataError, RunError


@pytest.fixture(scope="module")
def run(tiny_flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "flowers"
    graft.fit(tiny_flowers, strategy="feature-extract", epochs=2, out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def model(run):
    return graft.load(run)


@pytest.fixture(scope="module")
def expected(model, tiny_flowers):
    """The in-memory answers, top 2, of the 20 validation photos, in input order."""
    items = model.fitted_task_.read_inputs([str(tiny_flowers / "val")], "image")
    return [table_row(r) for r in model.prediction_records(items, top_k=2)]


def read_rows(path):
    if path.suffix == ".jsonl":
        return [table_row(json.loads(line)) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        floats = ("probability", "probability_2")
        return [{k: float(v) if k in floats else v for k, v in row.items()} for row in rows]
    return pq.read_table(path).to_pylist()


def assert_same(rows, expected):
    assert [r["input"] for r in rows] == [e["input"] for e in expected]
    for row, answer in zip(rows, expected, strict=True):
        assert row["label"] == answer["label"] and row["label_2"] == answer["label_2"]
        assert row["probability"] == pytest.approx(
            answer["probability"], abs=2e-6
        )  # rounded to 6 digits


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_streamed_predictions_equal_the_in_memory_ones(
    model, tiny_flowers, expected, tmp_path, suffix
):
    out = tmp_path / f"predictions{suffix}"
    result = predict_to_file(
        model, [str(tiny_flowers / "val")], out, top_k=2, batch_size=3, progress=False
    )
    assert (result.rows, result.resumed, result.predicted) == (20, 0, 20)
    assert_same(read_rows(out), expected)
    assert not (tmp_path / f"predictions{suffix}.partial").exists()  # finished: no state left
    if suffix == ".parquet":
        assert pq.ParquetFile(out).metadata.num_row_groups == 1  # 7 parts joined


class Killed(Exception):
    """What a kill after some batches looks like to the code that was running."""


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_an_interrupted_prediction_resumes_without_repeating_or_losing_a_row(
    model, tiny_flowers, expected, tmp_path, monkeypatch, suffix
):
    out, calls = tmp_path / f"predictions{suffix}", []
    outputs = batch_prediction._outputs

    def dying(model, task, inputs):
        calls.append(len(inputs))
        if len(calls) == 4:  # killed while predicting the 4th batch: 3 batches of 3 are done
            raise Killed
        return outputs(model, task, inputs)

    monkeypatch.setattr(batch_prediction, "_outputs", dying)
    with pytest.raises(Killed):
        predict_to_file(
            model, [str(tiny_flowers / "val")], out, top_k=2, batch_size=3, progress=False
        )
    state = json.loads((tmp_path / f"predictions{suffix}.partial" / "state.json").read_text())
    assert state["rows"] == 9
    if suffix != ".parquet":  # and the kill cut a row of the next batch in half
        with open(out, "ab") as handle:
            handle.write(b'{"input": "half a ro')
    monkeypatch.setattr(batch_prediction, "_outputs", outputs)
    result = predict_to_file(
        model, [str(tiny_flowers / "val")], out, top_k=2, batch_size=3, progress=False
    )
    assert (result.rows, result.resumed, result.predicted) == (20, 9, 11)
    assert_same(read_rows(out), expected)


def test_a_file_that_is_not_this_prediction_is_never_replaced(
    model, tiny_flowers, tmp_path, monkeypatch
):
    mine = tmp_path / "predictions.csv"
    mine.write_text("my,own\n1,2\n")
    val = str(tiny_flowers / "val")
    with pytest.raises(RunError, match="already exists: choose another --out or pass --overwrite"):
        predict_to_file(model, [val], mine, progress=False)
    assert mine.read_text() == "my,own\n1,2\n"
    predict_to_file(model, [val], mine, progress=False, overwrite=True)
    assert len(read_rows(mine)) == 20
    # an unfinished prediction of other inputs, or with other settings, is not resumed
    out = tmp_path / "partial.jsonl"
    monkeypatch.setattr(batch_prediction, "_outputs", _dies_after_one(batch_prediction._outputs))
    with pytest.raises(Killed):
        predict_to_file(model, [val], out, batch_size=4, progress=False)
    monkeypatch.undo()
    with pytest.raises(RunError, match="other settings \\(top_k\\)"):
        predict_to_file(model, [val], out, top_k=3, progress=False)
    others = sorted((tiny_flowers / "train").rglob("*.jpg"))[:6]
    with pytest.raises(RunError, match="other settings \\(arguments_sha256\\)"):
        predict_to_file(model, [str(p) for p in others], out, progress=False)
    out.write_text("")  # the partial file was emptied since
    with pytest.raises(RunError, match="shorter than the 4 rows .* --overwrite"):
        predict_to_file(model, [val], out, progress=False)


def _dies_after_one(outputs):
    calls = []

    def dying(model, task, inputs):
        calls.append(1)
        if len(calls) > 1:
            raise Killed
        return outputs(model, task, inputs)

    return dying


def test_changed_inputs_are_not_resumed(model, tiny_flowers, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = sorted((tiny_flowers / "val").rglob("*.jpg"))
    for photo in photos[:8]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    out = tmp_path / "p.jsonl"
    monkeypatch.setattr(batch_prediction, "_outputs", _dies_after_one(batch_prediction._outputs))
    with pytest.raises(Killed):
        predict_to_file(model, [str(folder)], out, batch_size=4, progress=False)
    monkeypatch.undo()
    (folder / f"0{photos[0].name}").write_bytes(photos[9].read_bytes())  # sorts first
    with pytest.raises(RunError, match="answers of other inputs than these"):
        predict_to_file(model, [str(folder)], out, batch_size=4, progress=False)


def test_the_command_streams_a_glob_and_reports_throughput(run, tiny_flowers, expected, tmp_path):
    out = tmp_path / "answers.jsonl"
    pattern = str(tiny_flowers / "val" / "*" / "*.jpg")
    result = CliRunner().invoke(
        app, ["predict", str(run), pattern, "--out", str(out), "--top-k", "2", "--batch-size", "8"]
    )
    assert result.exit_code == 0, result.output
    assert "engine: torch" in result.output
    assert "20 predictions in" in result.output and "inputs/s" in result.output
    assert_same(read_rows(out), expected)


def test_bad_inputs_are_refused_before_anything_is_written(model, tiny_flowers, tmp_path):
    out = tmp_path / "p.csv"
    with pytest.raises(DataError, match="no-such-folder"):
        predict_to_file(model, [str(tmp_path / "no-such-folder")], out, progress=False)
    assert list(tmp_path.iterdir()) == []
    predict_to_file(model, [str(tiny_flowers / "val")], out, progress=False)
    assert len(read_rows(out)) == 20
