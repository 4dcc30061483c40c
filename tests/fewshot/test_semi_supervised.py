"""Unlabelled data: reading it, balanced confident pseudo-labels, the guarded self-training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import graft
from graft.data import LabelledData, load_data
from graft.errors import ConfigError, DataError
from graft.fewshot.semi_supervised import (
    ROUNDS,
    THRESHOLD,
    balanced_pseudo_labels,
    read_unlabeled,
)
from tests.conftest import EXAMPLES, SHARED


def sst2(name: str = "validation.csv") -> LabelledData:
    path = SHARED / "sst2" / name
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is not available")
    return load_data(path)


def rows(data: LabelledData, per_class: int, offset: int = 0) -> LabelledData:
    chosen = [np.flatnonzero(data.labels == c)[offset : offset + per_class] for c in (0, 1)]
    return data.subset(np.sort(np.concatenate(chosen)))


def test_unlabelled_data_is_read_from_a_folder_or_table_and_its_labels_ignored(tmp_path):
    items, source = read_unlabeled(EXAMPLES / "val", "image", None)
    assert len(items) == 100 and source == str(EXAMPLES / "val")  # class folders ignored
    table = tmp_path / "reviews.csv"
    table.write_text("text,label\ngreat film,1\ndull film,0\nfine,1\n")
    assert read_unlabeled(table, "text", None)[0] == ["great film", "dull film", "fine"]


def test_unusable_unlabelled_data_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(DataError, match="--unlabeled /no/such/folder: no such file or folder"):
        read_unlabeled("/no/such/folder", "text", None)
    with pytest.raises(DataError, match="holds image data, the training data text"):
        read_unlabeled(LabelledData(["a.jpg", "b.jpg"], None, [], "image", "photos"), "text", None)
    one = tmp_path / "one.csv"
    one.write_text("text\nonly one\n")
    with pytest.raises(DataError, match="needs at least 2 items, found 1"):
        read_unlabeled(one, "text", None)


def test_pseudo_labels_are_confident_and_as_many_for_every_class():
    rng = np.random.default_rng(0)
    logits = torch.as_tensor(rng.normal(size=(400, 3)) * 3)
    logits[:300, 0] += 4  # class 0 dominates the unlabelled pool
    probabilities = torch.softmax(logits, dim=-1)
    chosen = balanced_pseudo_labels(probabilities, cap=50)
    counts = chosen.class_counts()
    assert counts.min() == counts.max() > 0  # balanced: the majority class cannot swallow
    assert counts.max() <= 50
    confidence = probabilities.max(dim=1).values.numpy()
    assert np.all(confidence[chosen.indices] >= THRESHOLD)
    assert np.array_equal(chosen.labels, probabilities.argmax(dim=1).numpy()[chosen.indices])
    # of each class, its most confident rows are the ones kept
    for label in range(3):
        mine = chosen.indices[chosen.labels == label]
        others = np.setdiff1d(np.flatnonzero(probabilities.argmax(1).numpy() == label), mine)
        if len(others) and len(mine):
            assert confidence[mine].min() >= confidence[others].max()


def test_no_pseudo_label_while_some_class_has_no_confident_prediction():
    probabilities = torch.tensor([[0.99, 0.01], [0.98, 0.02], [0.6, 0.4]])
    assert len(balanced_pseudo_labels(probabilities, cap=10)) == 0


def test_unlabelled_data_needs_one_class_per_input(tmp_path):
    data = sst2()
    train = rows(data, 4)
    multilabel = LabelledData(
        train.items,
        np.eye(2, dtype=np.float32)[train.labels],
        ["neg", "pos"],
        "text",
        "reviews",
        task="multilabel",
    )
    with pytest.raises(ConfigError, match="--unlabeled trains on pseudo-labels"):
        graft.fit(multilabel, multilabel, unlabeled=rows(data, 4, 20), progress=False)


@pytest.mark.slow
def test_a_fit_with_validation_data_keeps_the_semi_supervised_head_only_if_no_worse(tmp_path):
    data = sst2()
    train, val = rows(data, 10), rows(data, 40, offset=100)
    unlabeled = rows(data, 150, offset=200)
    run = tmp_path / "run"
    model = graft.fit(
        train,
        val,
        unlabeled=unlabeled,
        model="minilm",
        strategy="feature-extract",
        max_length=32,
        out=run,
        progress=False,
    )
    record = model.metrics_["semi_supervised"]
    scores = record["scores"]
    kept = "semi-supervised" if scores["semi-supervised"] >= scores["labelled-only"] else None
    assert record["kept"] == (kept or "labelled-only")
    assert record["basis"] == "validation score" and record["kept"] in record["reason"]
    assert model.metrics_["val"]["accuracy"] == pytest.approx(scores[record["kept"]], abs=1e-6)
    rounds = record["rounds"]
    assert len(rounds) == ROUNDS and all(r["per_class"][0] == r["per_class"][1] for r in rounds)
    assert [r["phase"] for r in model.history_].count("self_training_1") > 0
    assert json.loads((run / "metrics.json").read_text())["semi_supervised"] == json.loads(
        json.dumps(record)
    )
    assert "unlabelled data" in (run / "report.html").read_text()
    restored = graft.load(run)
    texts = ["a gripping, beautifully acted story", "tedious and far too long"]
    np.testing.assert_allclose(restored.predict_proba(texts), model.predict_proba(texts))


def test_the_two_heads_are_compared_on_the_whole_validation_split_when_epochs_read_a_sample(
    tmp_path, monkeypatch
):
    """A large validation split is read as a sample after each epoch; the labelled-only and
    the semi-supervised heads are still compared on all of it, the split the kept model is
    scored on."""
    from graft.training import schedule

    monkeypatch.setattr(schedule, "EPOCH_VALIDATION", 30)
    data = sst2()
    train, val = rows(data, 10), rows(data, 40, offset=100)
    model = graft.fit(
        train,
        val,
        unlabeled=rows(data, 150, offset=200),
        model="minilm",
        strategy="feature-extract",
        max_length=32,
        out=tmp_path / "run",
        progress=False,
    )
    assert model.epoch_validation_ == {"examples": 30, "of": 80}
    record = model.metrics_["semi_supervised"]
    assert model.metrics_["val"]["num_examples"] == 80
    assert model.metrics_["val"]["accuracy"] == pytest.approx(
        record["scores"][record["kept"]], abs=1e-6
    )
