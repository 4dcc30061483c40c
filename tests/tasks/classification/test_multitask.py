"""Multi-task training on real Amazon reviews: sentiment and product domain as two tasks of one
minilm backbone, with missing sentiment labels; uncertainty weights, save and load, the
command line, and the errors of bad task options."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

import graft
from graft.cli import app, main
from graft.errors import ConfigError, DataError
from tests.conftest import DOMAINS, amazon_records, write_csv

runner = CliRunner()
#: Every fit here reads texts at this length (the features of each text are computed once).
MAX_LENGTH = 64
FIT = dict(strategy="feature-extract", max_length=MAX_LENGTH, progress=False)
#: Test accuracy floors, measured with seeds 0-2 (either weighting): sentiment 0.675-0.7125,
#: domain 0.875 on the 80 test reviews; chance is 0.5 and 0.25.
SENTIMENT_FLOOR, DOMAIN_FLOOR = 0.60, 0.75


def review_rows(per_class: int, offset: int, seed: int = 0) -> list[dict[str, str]]:
    """``per_class`` positive and as many negative reviews of each domain (texts cut to 300
    characters), with the columns text, sentiment and domain, in a seeded order."""
    rows = []
    for domain in DOMAINS:
        records = amazon_records(domain)
        for label, sentiment in (("1", "positive"), ("0", "negative")):
            chosen = [r for r in records if r["label"] == label]
            random.Random(f"{domain}{label}").shuffle(chosen)
            rows += [
                {"text": r["text"][:300], "sentiment": sentiment, "domain": domain}
                for r in chosen[offset : offset + per_class]
            ]
    random.Random(seed).shuffle(rows)
    return rows


def write_rows(path, rows, fields=("text", "sentiment", "domain")):
    return write_csv(path, rows, fields)


def training_rows() -> list[dict[str, str]]:
    """200 reviews (25 per class and domain) with the sentiment of every fourth one blanked
    out, and two rows with no label at all (skipped)."""
    rows = review_rows(25, offset=0)
    for row in rows[::4]:
        row["sentiment"] = ""
    rows[1] = {**rows[1], "sentiment": "", "domain": ""}
    rows[2] = {**rows[2], "sentiment": "", "domain": ""}
    return rows


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("multitask")
    return {
        "train": write_rows(folder / "train.csv", training_rows()),
        "test": write_rows(folder / "test.csv", review_rows(10, offset=100)),
        "folder": folder,
    }


@pytest.fixture(scope="module")
def uncertainty_run(reviews):
    out = reviews["folder"] / "uncertainty-run"
    model = graft.fit(
        reviews["train"],
        test=reviews["test"],
        tasks=["sentiment", "domain"],
        task_weights="uncertainty",
        out=out,
        **FIT,
    )
    return model, out


def test_missing_labels_still_train_every_task(uncertainty_run):
    model, _ = uncertainty_run
    assert isinstance(model, graft.MultiTaskClassifier)
    assert model.tasks_ == {"sentiment": "multiclass", "domain": "multiclass"}
    assert model.classes_ == {
        "sentiment": ["negative", "positive"],
        "domain": list(DOMAINS),
    }
    # 198 usable rows, all with a domain; 148 with a sentiment (every fourth one blanked)
    labelled = model.summary_["labelled"]
    assert labelled["train"]["domain"] + labelled["val"]["domain"] == 198
    assert labelled["train"]["sentiment"] + labelled["val"]["sentiment"] == 148
    skipped = model.summary_["skipped"]["train"]
    assert [row["reason"] for row in skipped] == [
        "no label in any task column (sentiment, domain)"
    ] * 2
    test = model.metrics_["test"]
    assert test["sentiment"]["num_examples"] == test["domain"]["num_examples"] == 80
    assert test["sentiment"]["accuracy"] >= SENTIMENT_FLOOR
    assert test["domain"]["accuracy"] >= DOMAIN_FLOOR
    row = model.history_[-1]
    for key in ("train_loss_sentiment", "val_loss_domain", "val_score_sentiment", "val_score"):
        assert key in row
    assert row["val_score"] == pytest.approx(
        (row["val_score_sentiment"] + row["val_score_domain"]) / 2
    )


def test_every_task_is_predicted(uncertainty_run):
    model, _ = uncertainty_run
    texts = ["This blender broke after a week. Useless.", "A wonderful novel, I loved it."]
    predicted = model.predict(texts)
    assert set(predicted) == {"sentiment", "domain"}
    assert predicted["domain"] == ["kitchen", "books"]  # the same with seeds 0-2
    assert all(answer in ("negative", "positive") for answer in predicted["sentiment"])
    probabilities = model.predict_proba(texts)
    assert probabilities["domain"].shape == (2, 4)
    assert np.allclose(probabilities["sentiment"].sum(axis=1), 1.0)
    evaluated = model.evaluate(model.splits_.test)
    assert evaluated["domain"]["accuracy"] == model.metrics_["test"]["domain"]["accuracy"]


def test_uncertainty_weights_are_learned(uncertainty_run):
    model, out = uncertainty_run
    start = {"sentiment": 1.0, "domain": 1.0}  # s_i = 0
    weights = model.task_weights_
    assert all(abs(weights[t] - start[t]) > 0.05 for t in start), weights
    record = model.summary_["task_weights"]
    assert record["mode"] == "uncertainty"
    assert record["weights"] == pytest.approx(
        {t: np.exp(-s) for t, s in record["log_variances"].items()}
    )
    per_epoch = [row["task_weight_domain"] for row in model.history_]
    assert per_epoch[0] != per_epoch[-1]  # they move while training
    saved = json.loads((out / "config.json").read_text())["task"]["weighting"]
    assert saved["mode"] == "uncertainty" and saved["weights"] == pytest.approx(weights)


def test_save_and_load_keep_every_head(uncertainty_run, reviews):
    model, out = uncertainty_run
    restored = graft.load(out)
    assert isinstance(restored, graft.MultiTaskClassifier)
    assert restored.tasks_ == model.tasks_ and restored.classes_ == model.classes_
    assert restored.task_weights_ == model.task_weights_
    texts = ["Great picture quality for the price.", "The plot was dull and predictable."]
    before, after = model.predict_proba(texts), restored.predict_proba(texts)
    assert all(np.array_equal(before[t], after[t]) for t in ("sentiment", "domain"))
    assert restored.predict(texts) == model.predict(texts)
    page = (out / "report.html").read_text()
    for heading in ("Confusion matrix (test, task sentiment)", "Per class (test, task domain)"):
        assert f"<h2>{heading}</h2>" in page
    assert "loss weights (learned by uncertainty)" in page


@pytest.fixture(scope="module")
def cli_run(reviews):
    out = reviews["folder"] / "cli-run"
    arguments = ["fit", str(reviews["train"]), "--tasks", "sentiment,domain"]
    arguments += ["--task-weights", "1,0.5", "--strategy", "feature-extract"]
    arguments += ["--max-length", str(MAX_LENGTH), "--epochs", "10"]
    arguments += ["--out", str(out), "--no-progress"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_cli_fit_with_fixed_weights(cli_run):
    out, output = cli_run
    assert "tasks (loss weights fixed)" in output
    assert "val metrics, task sentiment: accuracy" in " ".join(output.split())
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["tasks"] == {"sentiment": "auto", "domain": "auto"}
    assert record["task"]["weighting"] == {
        "mode": "fixed",
        "weights": {"sentiment": 1.0, "domain": 0.5},
    }
    assert json.loads((out / "labels.json").read_text())["domain"] == list(DOMAINS)


def test_cli_predict_and_evaluate_answer_every_task(cli_run, reviews):
    out, _ = cli_run
    text = "The knife set is sharp and sturdy, I use it every day."
    result = runner.invoke(app, ["predict", str(out), text, "--json", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["input"] == text and set(answer["predictions"]) == {"sentiment", "domain"}
    assert [len(v) for v in answer["predictions"].values()] == [2, 2]
    assert answer["predictions"]["domain"][0]["label"] == "kitchen"
    result = runner.invoke(app, ["evaluate", str(out), str(reviews["test"]), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["sentiment"]["num_examples"] == metrics["domain"]["num_examples"] == 80


@pytest.mark.parametrize(
    "options, message",
    [
        (["--tasks", "sentiment,topic"], "no column 'topic' (option --tasks)"),
        (["--tasks", "sentiment,empty"], "task column 'empty' holds no label in any usable row"),
        (["--tasks", "sentiment"], "--tasks needs at least two label columns"),
        (["--tasks", "sentiment,domain:ordinal"], "the kind of column 'domain' must be one of"),
        (
            ["--tasks", "sentiment,domain", "--task-weights", "1,2,3"],
            "--task-weights gives 3 weight(s) for the 2 tasks sentiment, domain",
        ),
        (
            ["--tasks", "sentiment,domain", "--task-weights", "1,-0.5"],
            "the weight of 'domain' is -0.5; weights must be finite and not negative",
        ),
        (
            ["--tasks", "sentiment,domain", "--task-weights", "sentiment=1,topic=1"],
            "--task-weights names 'topic', not among the tasks (sentiment, domain)",
        ),
        (["--task-weights", "uncertainty"], "--task-weights weighs the tasks of --tasks"),
        (
            ["--tasks", "sentiment,domain", "--label-column", "domain"],
            "--label-column names the one label column of a single-task fit",
        ),
        (
            ["--tasks", "sentiment,domain", "--strategy", "auto"],
            "--strategy auto measures one label column",
        ),
    ],
)
def test_bad_task_options_are_one_clear_line(options, message, tmp_path, capsys, monkeypatch):
    rows = review_rows(2, offset=0)
    table = write_rows(tmp_path / "data.csv", rows, ("text", "sentiment", "domain", "empty"))
    arguments = ["graft", "fit", str(table), *options, "--out", str(tmp_path / "run")]
    monkeypatch.setattr("sys.argv", arguments)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in " ".join(error.split()) and "Traceback" not in error


def test_python_api_errors(reviews):
    with pytest.raises(ConfigError, match="graft.MultiTaskClassifier"):
        graft.GraftClassifier(tasks=["sentiment", "domain"])
    with pytest.raises(ConfigError, match="needs at least two"):
        graft.MultiTaskClassifier(tasks=["sentiment"])
    with pytest.raises(ConfigError, match="gives no weight for 'domain'"):
        graft.MultiTaskClassifier(tasks=["sentiment", "domain"], task_weights={"sentiment": 1})
    with pytest.raises(DataError, match="'text' holds the inputs; it cannot also be a task"):
        graft.fit(reviews["test"], tasks=["sentiment", "text"], **FIT)


def test_a_phase_that_trains_the_backbone_trains_every_task(tmp_path):
    """``full``: the packed targets, missing labels included, go through the loaders of raw
    texts; the backbone and both heads train, and the run saves and loads its backbone."""
    table = write_rows(tmp_path / "small.csv", training_rows()[:32])
    out = tmp_path / "run"
    model = graft.fit(
        table,
        tasks="sentiment,domain",
        task_weights="uncertainty",
        strategy="full",
        epochs=1,
        batch_size=16,
        max_length=24,
        out=out,
        progress=False,
    )
    (row,) = model.history_
    assert row["phase"] == "full" and row["trained_parameters"] > 20_000_000
    assert {"val_score_sentiment", "val_score_domain", "train_loss_sentiment"} <= set(row)
    assert all(weight != 1.0 for weight in model.task_weights_.values())
    texts = ["Sturdy pan, heats evenly.", "The film drags on."]
    restored = graft.load(out)
    before, after = model.predict_proba(texts), restored.predict_proba(texts)
    assert set(before) == {"sentiment", "domain"}
    assert all(np.array_equal(before[t], after[t]) for t in before)


def test_each_epoch_validates_every_row_of_a_multitask_split(reviews, monkeypatch):
    """A sample of rows could leave a task with too few labels to score: multitask fits are
    never validated on a sample (tests/training/test_schedule.py: a single-task fit is)."""
    from graft.training import schedule

    monkeypatch.setattr(schedule, "EPOCH_VALIDATION", 10)
    model = graft.fit(reviews["train"], tasks=["sentiment", "domain"], epochs=2, **FIT)
    assert "epoch_validation" not in model.summary_
    assert model.summary_["labelled"]["val"]["domain"] > 10
