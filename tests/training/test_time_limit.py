"""``--time-limit``: durations read, a fit kept inside its limit with a usable run, a limit too
short for the head refused before training, and what the budget cut recorded."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import graft
from graft.backbones import create_backbone
from graft.config import FitConfig
from graft.errors import ConfigError
from graft.training.budget import (
    BudgetCallback,
    OutOfTime,
    TimeBudget,
    describe,
    padding_share,
    parse_duration,
    probe_shares,
)
from tests.conftest import SHARED


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("45", 45.0),
        (30, 30.0),
        (1.5, 1.5),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        (" 2 m ", 120.0),
        ("10min", 600.0),
    ],
)
def test_durations_are_read(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "ten minutes", "10x", "1h30", "-5", "0s", "0", True, [1]])
def test_bad_durations_are_refused_naming_the_option(value):
    with pytest.raises(ConfigError, match="--time-limit") as caught:
        parse_duration(value)
    assert "\n" not in str(caught.value)


def test_the_option_is_checked_with_the_others():
    assert FitConfig(time_limit="10m").validate().time_limit == "10m"
    with pytest.raises(ConfigError, match="--time-limit must be a duration"):
        graft.GraftEstimator(time_limit="soon")


def test_durations_are_written_as_the_option_takes_them():
    assert [describe(s) for s in (42.0, 95.3, 3600, 3661)] == ["42s", "1m36s", "1h", "1h1m1s"]
    assert parse_duration(describe(95.3)) == 96


def test_a_limit_too_short_for_the_head_is_refused_before_training(tiny_flowers, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"--time-limit 1s is too short.*at least \d+") as caught:
        graft.fit(tiny_flowers, strategy="fine-tune", time_limit="1s", out=out, progress=False)
    assert "nothing was trained" in str(caught.value)
    assert not (out / "checkpoints").exists()  # no phase started


def test_summary_records_what_the_limit_cut(tiny_flowers, tmp_path, monkeypatch):
    """A phase whose epoch cannot fit the time left is skipped, the head phase's weights are
    kept, the run is complete, and summary.json says what was cut."""

    def dear(budget, seconds, inputs):  # as if a forward pass had measured 100 s an input
        budget.forward = 100.0

    monkeypatch.setattr(TimeBudget, "calibrate", dear)
    model = graft.GraftEstimator(strategy="fine-tune", head_epochs=2, time_limit="1h")
    model.fit(tiny_flowers, out=tmp_path / "run")
    record = json.loads((tmp_path / "run" / "summary.json").read_text())["time_limit"]
    assert record["limit"] == "1h" and record["limit_seconds"] == 3600
    assert record["phases"]["head"] == {"planned_epochs": 2, "epochs": 2, "cut": None}
    assert record["phases"]["finetune"]["epochs"] == 0
    assert record["skipped_phases"] == ["finetune"]
    assert record["cut"][0].startswith("finetune: skipped: one epoch would need about")
    assert {row["phase"] for row in model.history_} == {"head"}
    loaded = graft.load(tmp_path / "run")
    assert len(loaded.predict(sorted((tiny_flowers / "val" / "roses").iterdir()))) == 4


class FakeTrainer:
    """What the budget's callback reads of Lightning's Trainer, with a real LambdaLR."""

    def __init__(self, max_epochs: int, batches: int):
        import torch

        self.current_epoch, self.max_epochs, self.num_training_batches = 0, max_epochs, batches
        self.should_stop = False
        self.fit_loop = self
        parameter = torch.nn.Parameter(torch.zeros(1))
        optimiser = torch.optim.SGD([parameter], lr=1.0)
        total = max_epochs * batches
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 1 - s / total)
        self.lr_scheduler_configs = [SimpleNamespace(interval="step", scheduler=self.scheduler)]


def phase_callback(limit: float, first: bool) -> tuple[TimeBudget, BudgetCallback]:
    budget = TimeBudget.of(limit)
    budget.admits("finetune", 10, (0 if first else 1, 2), 0.0)
    return budget, BudgetCallback(budget, budget.current, 0.0)


def test_epochs_are_cut_to_the_time_left_and_the_schedule_ends_with_them():
    budget, callback = phase_callback(100.0, first=False)  # the last phase: all the room
    trainer = FakeTrainer(max_epochs=10, batches=10)
    callback._plan(trainer, None, epoch=20.0, rest_of_first=10.0)
    room = 100.0 - budget.end_seconds
    expected = 1 + int((room - 1.1 * 10.0) // (1.1 * 20.0))
    assert trainer.max_epochs == expected < 10
    assert budget.current.cut.startswith(f"cut from 10 to {expected} epochs")
    factor = trainer.scheduler.lr_lambdas[0]
    assert factor(expected * 10) == pytest.approx(0.0)  # the decay ends with the last epoch
    assert factor(expected * 5) == pytest.approx(0.5)


def test_a_later_phase_whose_first_epoch_cannot_end_is_abandoned_the_first_is_not():
    _, later = phase_callback(30.0, first=False)
    with pytest.raises(OutOfTime, match="first epoch would end"):
        later._plan(FakeTrainer(3, 10), None, epoch=60.0, rest_of_first=55.0)
    budget, first = phase_callback(30.0, first=True)
    trainer = FakeTrainer(3, 10)
    first._plan(trainer, None, epoch=60.0, rest_of_first=55.0)
    assert trainer.max_epochs == 1  # the first phase always trains an epoch


def test_training_stops_at_the_epoch_boundary_when_the_next_epoch_would_overrun():
    budget, callback = phase_callback(100.0, first=False)
    trainer = FakeTrainer(max_epochs=5, batches=10)
    callback.planned = True
    callback._epoch_start -= 40.0  # an epoch of 40 s has just ended
    callback.on_train_epoch_end(trainer, None)
    assert not trainer.should_stop  # about 95 s left: room for another
    budget.started -= 60.0  # about 35 s left
    callback._epoch_start = time.monotonic() - 40.0
    callback.on_train_epoch_end(trainer, None)
    assert trainer.should_stop
    assert budget.current.cut == "stopped after 1 of 10 epochs (out of time)"


def test_an_epoch_dearer_than_probed_cuts_the_phase_again_and_the_schedule_goes_on():
    """The probe times training steps and guesses validation; a detector's validation (a
    Faster R-CNN scoring its proposals, then mAP) costs more. Each epoch's end plans again from
    the epoch measured: the phase is cut to what fits, and the learning rate goes on from the
    factor it had to the schedule's end at the new last epoch (before: stopped with the decay
    unfinished)."""
    budget, callback = phase_callback(100.0, first=False)
    trainer = FakeTrainer(max_epochs=10, batches=10)
    callback._plan(trainer, None, epoch=5.0, rest_of_first=4.0)
    assert trainer.max_epochs == 10  # the probe's guess: all ten fit
    for _ in range(20):  # two epochs of steps
        trainer.scheduler.optimizer.step()
        trainer.scheduler.step()
    factor = trainer.scheduler.lr_lambdas[0]
    assert factor(20) == pytest.approx(0.8)
    trainer.current_epoch = 1
    budget.started -= 30.0  # about 67 s left: the next three epochs of 22 s with the margin
    callback._epoch_start = time.monotonic() - 20.0  # the second epoch took 20 s
    callback.on_train_epoch_end(trainer, None)
    room = budget.room()
    expected = 2 + int(room // (1.1 * 20.0))
    assert trainer.max_epochs == expected == 5 and not trainer.should_stop
    assert budget.current.cut.startswith("cut from 10 to 5 epochs (about 20.0s each, measured)")
    factor = trainer.scheduler.lr_lambdas[0]
    assert factor(20) == pytest.approx(0.8)  # goes on from where it was
    assert factor(35) == pytest.approx(0.4)
    assert factor(50) == pytest.approx(0.0)  # and ends with the new last epoch


def test_half_the_first_epoch_plans_the_phase_again_before_its_end():
    """A phase left one epoch by its time stops at that epoch's end with its learning rate
    still high when only the epoch's end shows it (sst2, 500 sentences told 30 s: fine-tuning
    "stopped after 1 of 3 epochs"); halfway through the first epoch, the half measured plans
    again, so the schedule decays within the epoch that remains."""
    budget, callback = phase_callback(100.0, first=True)
    trainer = FakeTrainer(max_epochs=10, batches=20)
    callback._plan(trainer, None, epoch=2.0, rest_of_first=1.8)  # the probe: all ten fit
    assert trainer.max_epochs == 10
    callback._epoch_start = time.monotonic() - 30.0  # half the epoch took 30 s
    callback.on_train_batch_end(trainer, None, None, None, batch_idx=9)
    assert trainer.max_epochs == 1
    assert budget.current.cut == "cut from 10 to 1 epochs (about 60.0s each)"
    assert trainer.scheduler.lr_lambdas[0](20) == pytest.approx(0.0)
    callback._epoch_start = time.monotonic() - 60.0  # once only
    callback.on_train_batch_end(trainer, None, None, None, batch_idx=9)
    assert budget.current.cut == "cut from 10 to 1 epochs (about 60.0s each)"


def test_a_cut_made_under_a_moments_load_is_taken_back_when_the_epoch_measures_cheaper():
    """A probe of three steps can catch another process's burst (a detection fit told 549 s
    cut fine-tuning from 8 epochs to 4 on a probe of 93 s an epoch while tests ran beside it,
    and ended 229 s early): the epoch measured plans again, up to the epochs planned."""
    budget, callback = phase_callback(100.0, first=False)
    trainer = FakeTrainer(max_epochs=10, batches=10)
    callback._plan(trainer, None, epoch=30.0, rest_of_first=27.0)
    assert trainer.max_epochs == 3
    for _ in range(10):  # the first epoch's steps
        trainer.scheduler.optimizer.step()
        trainer.scheduler.step()
    before = trainer.scheduler.lr_lambdas[0](10)
    callback._epoch_start = time.monotonic() - 5.0  # it took 5 s
    callback.on_train_epoch_end(trainer, None)
    assert trainer.max_epochs == 10 and budget.current.cut is None
    factor = trainer.scheduler.lr_lambdas[0]
    assert factor(10) == pytest.approx(before)
    assert factor(100) == pytest.approx(0.0)


def test_a_phase_whose_later_phases_are_not_guessed_keeps_their_share_of_a_short_limit():
    """Detection caches no features, so fine-tuning's epoch is not guessed before it starts;
    the head phase (the backbone frozen but run on every batch) took up to half of a short
    limit for four warm-up epochs, leaving fine-tuning three of its eight (mAP 0.506 told
    460 s, against 0.549 with two head epochs). Once the head's epoch is measured, the later
    phases keep their planned work's share (at 1.25 times a head epoch), or all they plan
    when the plan fits."""
    budget = TimeBudget.of(200.0)
    budget.admits("head", 4, (0, 2), 0.0, later_epochs=8)
    callback = BudgetCallback(budget, budget.current, 0.0)
    trainer = FakeTrainer(max_epochs=4, batches=10)
    left = budget.left()
    callback._plan(trainer, None, epoch=20.0, rest_of_first=15.0)
    share = 8 * 1.25 / (4 + 8 * 1.25)  # the plan, 280 s of work, does not fit
    assert budget.current.later_reserve == pytest.approx(left * share, abs=0.5)
    assert budget.room() == pytest.approx(left * (1 - share), abs=0.5)
    assert trainer.max_epochs == 1 + int((budget.room() - 1.1 * 15.0) // (1.1 * 20.0)) == 2
    roomy = TimeBudget.of(1000.0)
    roomy.admits("head", 4, (0, 2), 0.0, later_epochs=8)
    trainer = FakeTrainer(max_epochs=4, batches=10)
    BudgetCallback(roomy, roomy.current, 0.0)._plan(trainer, None, 20.0, 15.0)
    assert roomy.current.later_reserve == pytest.approx(8 * 1.25 * 20.0)
    assert trainer.max_epochs == 4  # everything fits: nothing is cut


def test_the_probe_weighs_batches_of_alike_length_by_their_work():
    """Texts train in batches of alike length: a batch of long texts costs many times one of
    short texts, so the probe's first steps stand for their share of the epoch's work, not
    for their count."""
    from graft.training.sampling import LengthGroupedBatches

    lengths = [4] * 60 + [64] * 4  # sixteen batches of short texts, one of long texts
    sampler = LengthGroupedBatches(lengths, 4, seed=0)
    trainer = SimpleNamespace(train_dataloader=SimpleNamespace(batch_sampler=sampler))
    work = sampler.batch_work()
    assert len(work) == 16 and sorted(work)[-1] == 4 * 64 and sorted(work)[0] == 4 * 4
    done, timed = probe_shares(trainer, 3, len(work))
    assert done == pytest.approx(sum(work[:4]) / sum(work))
    assert timed == pytest.approx(sum(work[1:4]) / sum(work))
    assert timed != pytest.approx(3 / 16)  # the long batch is a quarter of the work, not 1/16
    images = SimpleNamespace(train_dataloader=SimpleNamespace(batch_sampler=None))
    assert probe_shares(images, 3, 16) == (4 / 16, 3 / 16)  # batches of equal size: by count


def test_a_forward_pass_is_guessed_at_the_texts_own_length(sst2):
    """The timed batch pads every text to its longest; graft reads texts longest first, so
    the guess is scaled to the texts' mean length (on sst2 a random draw of 32 pads to about
    three times it)."""
    from graft.backbones.base import TextPreprocessing
    from graft.data import load_data
    from graft.data.transforms import token_counts

    data = load_data(sst2["train"])
    from graft.backbones.catalogue import _minilm_path

    preprocessing = TextPreprocessing(tokenizer=str(_minilm_path()), max_length=128)
    backbone = SimpleNamespace(preprocessing=preprocessing)
    share = padding_share(backbone, data, 32)
    counts = token_counts(list(data.items), preprocessing)
    assert share == pytest.approx(sum(counts) / len(counts) / max(counts[:32]), rel=0.05)
    assert share < 0.6
    assert padding_share(SimpleNamespace(preprocessing=None), data, 32) == 1.0


def test_the_room_of_a_phase_follows_the_later_phases_guess_as_it_is_guessed_again():
    """The head phase leaves an epoch of fine-tuning its time by a guess made before the
    features were computed; once they are, the guess is made again, and when fine-tuning
    no longer fits what is left, the head phase may use all of it."""
    budget = TimeBudget.of(100.0)
    guess = {"finetune": 30.0}
    budget.admits("head", 30, (0, 2), 0.0, lambda: guess["finetune"])
    left = budget.left()
    assert budget.room() == pytest.approx(left - 1.1 * 30.0, abs=0.5)
    guess["finetune"] = 200.0  # measured dearer: fine-tuning cannot run after the head
    assert budget.room() == pytest.approx(left, abs=0.5)


def test_the_end_reserve_follows_the_validation_passes_measured_while_training():
    """A kind whose features are not cached measures no forward pass before training (NER on
    CoNLL overran a 174 s limit by 9 s evaluating 3,453 test sentences): each validation
    pass measured sizes the reserve for the final evaluation."""
    budget = TimeBudget.of(200.0)
    budget.reserve_end(3653)  # 200 validation and 3,453 test sentences, no forward measured
    before = budget.end_seconds
    assert before == pytest.approx(3.0 + 0.02 * 200.0)
    budget.observe_validation(seconds=1.0, inputs=200)  # 5 ms a sentence
    assert budget.end_seconds == pytest.approx(before + 1.1 * 0.005 * 3653)
    budget.observe_validation(seconds=0.5, inputs=200)  # cheaper: the reserve stays
    assert budget.end_seconds == pytest.approx(before + 1.1 * 0.005 * 3653)


def test_a_forward_pass_measured_at_scale_replaces_the_first_guess():
    budget = TimeBudget.of(600)
    budget.forward = 0.03
    budget.calibrate(seconds=0.5, inputs=20)  # cheaper, from few inputs: the guess stays
    assert budget.forward == 0.03
    budget.calibrate(seconds=1.0, inputs=20)  # dearer: taken
    assert budget.forward == pytest.approx(0.05)
    budget.calibrate(seconds=1.0, inputs=100)  # at scale, cheaper: taken
    assert budget.forward == pytest.approx(0.01)


@pytest.mark.slow
def test_a_fit_told_60_seconds_ends_within_15_percent_with_a_usable_run(tmp_path):
    """Fine-tuning 500 flower photos for 50 epochs takes many minutes (an epoch about 9 s on
    two quiet cores); told 60 s, the whole ``graft.fit`` call ends within 69 s having cut the
    fine-tuning phase's epochs, with the time left under one epoch and the reserve for the
    end (measured: 46.9 s, 4 of 50 epochs), and the run loads and predicts above chance."""
    source = SHARED / "flowers5_128px"
    if not source.is_dir():
        pytest.skip(f"shared dataset {source} is not available")
    data = tmp_path / "flowers"
    for split, count in (("train", 100), ("val", 10)):
        for folder in sorted((source / split).iterdir()):
            (data / split / folder.name).mkdir(parents=True)
            for photo in sorted(folder.iterdir())[:count]:
                shutil.copy(photo, data / split / folder.name / photo.name)
    fit = graft.fit  # graft's modules imported before the clock starts
    start = time.perf_counter()
    try:
        model = fit(
            data,
            strategy="fine-tune",
            epochs=50,
            image_size=128,
            time_limit="60s",
            out=tmp_path / "run",
        )
    except ConfigError as refusal:  # a machine so busy that even the head cannot fit 60 s
        assert "too short" in str(refusal) and time.perf_counter() - start <= 60
        assert not (tmp_path / "run" / "checkpoints").exists()
        pytest.skip(f"this machine is too busy for a 60 s fit here: {refusal}")
    seconds = time.perf_counter() - start
    assert seconds <= 69, f"the fit took {seconds:.1f}s"
    record = json.loads((tmp_path / "run" / "summary.json").read_text())["time_limit"]
    assert record["limit_seconds"] == 60 and record["used_seconds"] <= 69
    assert record["phases"]["head"]["epochs"] >= 1 and record["cut"]
    loaded = graft.load(tmp_path / "run")
    assert loaded.score(data / "val") >= 0.35  # 5 classes: chance is 0.2
    assert model.metrics_["val"]["accuracy"] == pytest.approx(loaded.score(data / "val"), abs=1e-6)
    finetune = record["phases"]["finetune"]
    if finetune["cut"].startswith("skipped"):  # a loaded machine: no fine-tuning epoch fits
        pytest.skip(f"this machine is too busy for a fine-tuning epoch in 60 s: {finetune}")
    assert finetune["cut"].startswith("cut from 50 to ") and finetune["epochs"] < 50
    epoch_seconds = float(finetune["cut"].rpartition("about ")[2].split("s")[0])
    assert 60 - seconds <= epoch_seconds + record["reserved_for_end_seconds"] + 5  # no waste


# graft pretrain ---------------------------------------------------------------------------------


def _digits(target: Path, per_class: int) -> Path:
    source = SHARED / "mnist_usps_16x16" / "mnist"
    if not source.is_dir():
        pytest.skip(f"shared dataset {source} is not available")
    for digit in range(10):
        (target / str(digit)).mkdir(parents=True)
        for image in sorted((source / str(digit)).iterdir())[:per_class]:
            shutil.copy(image, target / str(digit) / image.name)
    return target


def test_pretraining_refuses_a_limit_spent_before_training(tmp_path):
    from graft.pretraining import pretrain

    digits = _digits(tmp_path / "digits", 3)
    with pytest.raises(ConfigError, match="--time-limit 0.01 is too short"):
        pretrain(digits, out=tmp_path / "run", init="scratch", image_size=32, time_limit=0.01)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_pretraining_cuts_its_epochs_to_the_limit(tmp_path):
    from graft.pretraining import pretrain

    digits = _digits(tmp_path / "digits", 6)
    start = time.perf_counter()
    result = pretrain(
        digits,
        out=tmp_path / "run",
        init="scratch",
        image_size=32,
        epochs=500,
        patience=500,
        time_limit="60s",
        progress=False,
    )
    assert time.perf_counter() - start <= 60 * 1.15
    record = result.record["time_limit"]
    ran = record["phases"]["pretrain"]["epochs"]
    # cut by the plan, or stopped by an epoch's end that found the next one would overrun
    cut = ("pretrain: cut from 500 to", "pretrain: stopped after")
    assert 1 <= ran < 500 and record["cut"][0].startswith(cut)
    assert result.record["epochs"]["ran"] == ran
    assert create_backbone(str(tmp_path / "run")).feature_dim == 1280
