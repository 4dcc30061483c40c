"""``graft predict RUN INPUTS --out FILE --ray``: Ray Data actors give the rows the local
``predict --out`` gives, on the 667 validation photos of the shared flowers set, and a
prediction interrupted locally finishes on Ray without repeating or losing a row."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import graft
from graft import batch_prediction
from graft.batch_prediction import predict_to_file
from graft.cli import app

from .conftest import SHARED

ray = pytest.importorskip("ray")
FLOWERS = SHARED / "flowers5_128px" / "val"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FLOWERS.is_dir(), reason="the shared flowers set is not here"),
]


@pytest.fixture(scope="module")
def cluster():
    """A Ray of two CPUs on this machine, for this module."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def run(tiny_flowers, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray-predict") / "flowers"
    graft.fit(tiny_flowers, strategy="feature-extract", epochs=2, image_size=64, out=out,
              progress=False)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def local(run, tmp_path_factory):
    """The local ``predict --out`` rows of the 667 photos."""
    out = tmp_path_factory.mktemp("local") / "predictions.parquet"
    predict_to_file(graft.load(run), [str(FLOWERS)], out, top_k=2, progress=False)
    return pq.read_table(out).to_pylist()


def assert_same(rows, expected):
    assert len(rows) == len(expected) >= 667
    assert [r["input"] for r in rows] == [e["input"] for e in expected]  # input order
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert [r["label_2"] for r in rows] == [e["label_2"] for e in expected]
    for row, answer in zip(rows, expected, strict=True):
        assert row["probability"] == pytest.approx(answer["probability"], abs=1e-5)


def test_predict_on_ray_gives_the_local_rows(cluster, run, local, tmp_path):
    out = tmp_path / "predictions.parquet"
    args = ["predict", str(run), str(FLOWERS), "--out", str(out), "--top-k", "2", "--ray"]
    result = CliRunner().invoke(app, [*args, "--ray-workers", "2"])
    assert result.exit_code == 0, result.output
    assert f"{len(local)} predictions in" in result.output
    assert_same(pq.read_table(out).to_pylist(), local)


def test_a_prediction_interrupted_locally_finishes_on_ray(
    cluster, run, local, tmp_path, monkeypatch
):
    from graft.ray_prediction import predict_on_ray

    out, model, calls = tmp_path / "predictions.jsonl", graft.load(run), []
    outputs = batch_prediction._outputs

    def dying(model, task, inputs):
        calls.append(1)
        if len(calls) == 3:  # killed in the third batch of 64: 128 rows are done
            raise KeyboardInterrupt
        return outputs(model, task, inputs)

    monkeypatch.setattr(batch_prediction, "_outputs", dying)
    with pytest.raises(KeyboardInterrupt):
        predict_to_file(model, [str(FLOWERS)], out, top_k=2, batch_size=64, progress=False)
    monkeypatch.undo()
    result = predict_on_ray(
        model, [str(FLOWERS)], out, top_k=2, batch_size=64, progress=False, workers=1
    )
    assert (result.resumed, result.predicted) == (128, len(local) - 128)
    rows = [batch_prediction.table_row(json.loads(line)) for line in out.read_text().splitlines()]
    assert_same(rows, local)
