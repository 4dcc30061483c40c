"""Pre-training on real data: SimCLR on MNIST digits, masked-language-model training on book
reviews, supervised pre-training, and the backbone `graft fit --model RUN` then loads."""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import graft
from graft.backbones import create_backbone
from graft.cli import app
from graft.errors import ConfigError, DataError, ModelUnavailableError, RunError
from graft.pretraining import pretrain
from graft.pretraining.simclr import nt_xent_loss
from tests.conftest import SHARED

DIGITS = SHARED / "mnist_usps_16x16" / "mnist"
REVIEWS = SHARED / "amazon_reviews_4domains" / "books.csv"
runner = CliRunner()


def _digits(target: Path, per_class: int, class_folders: bool, offset: int = 0) -> Path:
    """``per_class`` real MNIST digits of each class, in class folders or all in one."""
    if not DIGITS.is_dir():
        pytest.skip(f"shared dataset {DIGITS} is not available")
    for digit in range(10):
        folder = target / str(digit) if class_folders else target
        folder.mkdir(parents=True, exist_ok=True)
        for image in sorted((DIGITS / str(digit)).iterdir())[offset : offset + per_class]:
            shutil.copy(image, folder / image.name)
    return target


def _reviews(target: Path, rows: int, offset: int = 0, labels: bool = False) -> Path:
    if not REVIEWS.is_file():
        pytest.skip(f"shared dataset {REVIEWS} is not available")
    with open(REVIEWS, newline="") as handle:
        records = list(csv.DictReader(handle))
    random.Random(0).shuffle(records)
    columns = ["text", "label"] if labels else ["text"]
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: r[k] for k in columns} for r in records[offset : offset + rows])
    return target


# NT-Xent ---------------------------------------------------------------------------------------


def _nt_xent_by_pairs(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """NT-Xent as Chen et al. (2020) write it: l(i, j) summed over both orders of every pair."""
    z = [F.normalize(v, dim=0) for v in torch.cat([z1, z2]).double()]
    n = len(z1)

    def term(i: int, j: int) -> float:
        numerator = math.exp(float(z[i] @ z[j]) / temperature)
        denominator = sum(
            math.exp(float(z[i] @ z[k]) / temperature) for k in range(2 * n) if k != i
        )
        return -math.log(numerator / denominator)

    return sum(term(k, k + n) + term(k + n, k) for k in range(n)) / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_equals_the_sum_over_positive_pairs(temperature):
    generator = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(5, 7, generator=generator), torch.randn(5, 7, generator=generator)
    expected = _nt_xent_by_pairs(z1, z2, temperature)
    assert float(nt_xent_loss(z1, z2, temperature)) == pytest.approx(expected, rel=1e-5)


def test_nt_xent_is_lowest_when_the_views_agree():
    z = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    aligned = nt_xent_loss(z, z + 0.01 * torch.randn_like(z))
    unrelated = nt_xent_loss(z, torch.randn_like(z))
    assert float(aligned) < float(unrelated)
    assert float(unrelated) == pytest.approx(math.log(31), abs=0.5)  # near chance: 2N - 1 views


# SimCLR on digits, through the command line ----------------------------------------------------


@pytest.fixture(scope="module")
def simclr_run(tmp_path_factory):
    """SimCLR, continued from the ImageNet weights, on 120 unlabelled MNIST digits at 32 px."""
    root = tmp_path_factory.mktemp("simclr")
    digits = _digits(root / "digits", 12, class_folders=False)
    out = root / "run"
    arguments = ["pretrain", str(digits), "--out", str(out), "--objective", "simclr"]
    arguments += ["--image-size", "32", "--epochs", "3", "--batch-size", "16", "--no-flip"]
    result = runner.invoke(app, [*arguments, "--no-progress"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_simclr_loss_falls_on_real_digits(simclr_run):
    out, output = simclr_run
    record = json.loads((out / "pretrain.json").read_text())
    assert record["status"] == "finished" and record["objective"] == "simclr"
    assert record["data"]["labelled"] is False and record["data"]["items"]["train"] == 108
    train, held_out = record["loss"]["train"], record["loss"]["val"]
    assert len(train) == 3 and train[-1] < train[0]
    assert held_out[-1] < held_out[0]  # the same fixed views every epoch
    assert math.isfinite(record["initial_val_loss"])
    assert "use it with: graft fit DATA --model" in output.replace("\n", " ")
    assert not (out / "checkpoints").exists()


def test_simclr_backbone_loads_with_its_preprocessing(simclr_run, tmp_path):
    out, _ = simclr_run
    backbone = create_backbone(str(out))
    reference = create_backbone("efficientnet_lite0")
    assert backbone.feature_dim == reference.feature_dim == 1280
    assert backbone.preprocessing.input_size == (32, 32)
    assert backbone.preprocessing.mean == reference.preprocessing.mean
    assert backbone.preprocessing.std == reference.preprocessing.std
    assert backbone.spec == str(out.resolve())
    # the trained weights, not ImageNet's
    key = "conv_stem.weight"
    assert not torch.equal(backbone.model.state_dict()[key], reference.model.state_dict()[key])

    labelled = _digits(tmp_path / "labelled", 4, class_folders=True, offset=100)
    model = graft.fit(
        labelled, model=str(out), strategy="feature-extract", epochs=3, progress=False
    )
    assert model.backbone_.preprocessing == backbone.preprocessing
    assert model.backbone_.fingerprint() == backbone.fingerprint()
    assert len(model.predict([str(next((labelled / "3").iterdir()))])) == 1


# Masked-language-model training on reviews -------------------------------------------------------


@pytest.mark.slow
def test_mlm_loss_falls_and_fit_uses_the_saved_tokenizer(tmp_path):
    texts = _reviews(tmp_path / "unlabelled.csv", 120)
    out = tmp_path / "run"
    result = pretrain(
        texts, out=out, max_length=32, epochs=1, batch_size=16, progress=False
    )  # objective auto: mlm, the table has no label column
    record = result.record
    assert record["objective"] == "mlm" and record["mlm_head"] == "new"  # MiniLM ships none
    assert math.isfinite(record["loss"]["val"][0])
    assert record["loss"]["val"][0] < record["initial_val_loss"]
    saved = out / "backbone"
    assert (saved / "tokenizer.json").is_file() and (saved / "model.safetensors").is_file()

    labelled = _reviews(tmp_path / "labelled.csv", 40, offset=500, labels=True)
    model = graft.fit(
        labelled, model=str(out), strategy="feature-extract", epochs=3, progress=False
    )
    assert model.backbone_.feature_dim == 384
    assert model.backbone_.preprocessing.tokenizer == str(saved)
    assert model.backbone_.preprocessing.max_length == 32
    assert set(model.predict(["A wonderful, moving book."])) <= {"0", "1"}


# Supervised pre-training ------------------------------------------------------------------------


def test_supervised_pretraining_from_scratch_gives_a_loadable_backbone(tmp_path):
    digits = _digits(tmp_path / "digits", 6, class_folders=True)
    result = pretrain(
        digits,
        out=tmp_path / "run",
        init="scratch",
        image_size=32,
        epochs=1,
        batch_size=32,
        progress=False,
    )
    record = result.record
    assert record["objective"] == "supervised" and record["init"] == "scratch"
    assert record["data"]["classes"] == [str(d) for d in range(10)]
    assert math.isfinite(record["loss"]["train"][0])
    backbone = create_backbone(str(tmp_path / "run"))
    assert backbone.feature_dim == 1280 and backbone.preprocessing.input_size == (32, 32)
    assert backbone.fingerprint() == result.backbone.fingerprint()  # weights and statistics


# Errors ---------------------------------------------------------------------------------------


def test_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*no images or .txt files"):
        pretrain(tmp_path / "empty", out=tmp_path / "run")
    assert not (tmp_path / "run" / "pretrain.json").exists()


def test_supervised_needs_labels_and_mlm_needs_text(tmp_path):
    digits = _digits(tmp_path / "digits", 2, class_folders=False)
    with pytest.raises(DataError, match="--objective supervised.*has none.*--objective simclr"):
        pretrain(digits, out=tmp_path / "a", objective="supervised")
    with pytest.raises(ConfigError, match="--objective mlm.*holds images"):
        pretrain(digits, out=tmp_path / "b", objective="mlm")


def test_model_must_be_a_finished_pretrain_run_or_a_model_folder(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no config.json.*graft pretrain"):
        create_backbone(str(tmp_path))
    fit_run = tmp_path / "fit"
    fit_run.mkdir()
    (fit_run / "config.json").write_text('{"format_version": 1, "config": {}}')
    (fit_run / "labels.json").write_text('["a", "b"]')
    with pytest.raises(ModelUnavailableError, match="`graft fit` run.*not a backbone"):
        create_backbone(str(fit_run))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "pretrain.json").write_text('{"status": "running"}')
    with pytest.raises(ModelUnavailableError, match="graft pretrain --resume"):
        create_backbone(str(unfinished))


def test_a_finished_run_is_not_overwritten(simclr_run, tmp_path):
    out, _ = simclr_run
    digits = _digits(tmp_path / "digits", 2, class_folders=False)
    with pytest.raises(RunError, match="not empty.*--overwrite"):
        pretrain(digits, out=out)
    result = runner.invoke(app, ["pretrain", "--resume", str(out)])
    assert result.exit_code != 0 and "nothing to resume" in str(result.exception)


def test_an_interrupted_run_resumes_without_training_again(tmp_path, monkeypatch):
    import graft.pretraining.run as pretrain_run

    digits = _digits(tmp_path / "digits", 2, class_folders=False)
    out = tmp_path / "run"
    options = dict(objective="simclr", image_size=16, epochs=1, batch_size=8, progress=False)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after training, before the backbone is saved

    with monkeypatch.context() as patch:
        patch.setattr(pretrain_run, "save_backbone", killed)
        with pytest.raises(KeyboardInterrupt):
            pretrain(digits, out=out, **options)
    assert json.loads((out / "pretrain.json").read_text())["status"] == "running"
    with pytest.raises(ModelUnavailableError, match="has not finished"):
        create_backbone(str(out))
    result = runner.invoke(app, ["pretrain", "--resume", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "pretrain.json").read_text())
    assert record["status"] == "finished" and len(record["history"]) == 1
    assert create_backbone(str(out)).preprocessing.input_size == (16, 16)
