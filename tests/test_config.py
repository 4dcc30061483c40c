"""The configuration of a fit: the options every fit has in :class:`FitConfig`, each kind's own
in its package (``graft/tasks/<kind>/options.py``), refused for data of another kind, and saved
records (old ones too) read back."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import graft
from graft.config import FitConfig, kind_option_owners, options_class
from graft.errors import ConfigError
from graft.runs.persistence import hyperparameters


def test_fit_config_keeps_only_the_options_every_fit_has():
    names = {f.name for f in dataclasses.fields(FitConfig)}
    assert not {"detector", "architecture", "loss", "binary_masks", "ignore_index"} & names
    assert options_class("detection") is options_class("instance-segmentation")
    assert options_class("tagging") is None
    # where a classification head starts: the options of the label-column kinds
    assert options_class("multiclass") is options_class("regression")


def test_each_kind_declares_its_options_importing_no_torch():
    check = (
        "import sys\n"
        "from graft.config import kind_option_owners\n"
        "owners = kind_option_owners()\n"
        "print(','.join(sorted(owners)), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    names, torch_imported = out.stdout.split()
    assert {"architecture", "binary_masks", "detector", "ignore_index", "loss"} <= set(
        names.split(",")
    ), out.stderr
    assert torch_imported == "False"


def test_the_kinds_choices_are_those_their_models_build():
    """Each choice a kind's options offer is one its engine builds: every loss computes, every
    architecture has its encoder's output stride, every detector its anchors."""
    import torch

    from graft.tasks.detection.detectors import DetectorSettings, new_detector
    from graft.tasks.detection.options import DETECTORS
    from graft.tasks.segmentation.decoders import OUTPUT_STRIDES
    from graft.tasks.segmentation.module import segmentation_loss
    from graft.tasks.segmentation.options import ARCHITECTURES, LOSSES

    logits, masks = torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    for loss in LOSSES:  # an unknown kind adds no term: a loss of 0
        assert segmentation_loss(logits, masks, kind=loss) > 0
    assert set(ARCHITECTURES) == set(OUTPUT_STRIDES)
    built = {
        type(
            new_detector([8, 8, 8], [8, 16, 32], DetectorSettings(d, 2, False, 64, 96, (0,), (1,)))
        )
        for d in DETECTORS
    }
    assert {b.__name__ for b in built} == {"FasterRCNN", "RetinaNet", "FCOS"}


def test_a_kind_option_is_taken_by_python_and_round_trips_through_get_and_set_params():
    model = graft.GraftEstimator(task="detection", detector="retinanet", epochs=2)
    params = model.get_params()
    assert params["detector"] == "retinanet" and "task_options" not in params
    assert "architecture" not in params, "another kind's options are not there at all"
    clone = graft.GraftEstimator(**params)
    assert clone.get_params() == params
    model.set_params(detector="fcos")
    assert model.get_params()["detector"] == "fcos"
    assert model.config.for_kind("detection").task_options == {"detector": "fcos"}


def test_an_option_of_another_kind_is_refused_naming_the_option_and_its_kind():
    with pytest.raises(
        ConfigError, match="--architecture is an option of segmentation; this data is multiclass"
    ):
        FitConfig.from_params({"architecture": "fpn"}).validate().for_kind("multiclass")
    with pytest.raises(
        ConfigError,
        match="--detector is an option of detection and "
        "instance-segmentation; this data is segmentation",
    ):
        graft.GraftEstimator(task="segmentation", detector="fcos")
    with pytest.raises(ConfigError, match="--loss must be one of ce, dice, ce\\+dice"):
        graft.GraftEstimator(loss="focal")
    with pytest.raises(ConfigError, match="unknown option"):
        graft.GraftEstimator(detectorr="fcos")


def test_a_kinds_options_get_their_defaults_once_the_kind_is_known():
    config = FitConfig.from_params({"loss": "dice"}).validate()
    assert config.for_kind("segmentation").to_dict() == {
        **FitConfig().to_dict(),
        "architecture": "unet",
        "loss": "dice",
        "binary_masks": False,
        "ignore_index": 255,
    }
    settings = FitConfig().for_kind("multiclass").to_dict()
    shown = set(kind_option_owners()) & set(settings)
    assert shown == {"head_init", "label_template", "label_descriptions"}, "no detector"


def test_a_config_json_written_before_kinds_had_options_reads_back():
    old = {**FitConfig().to_dict(), "detector": "fasterrcnn", "architecture": "unet"}
    old |= {"loss": "ce+dice", "binary_masks": False, "ignore_index": 255, "epochs": 2}
    flowers = {"params": old, "config": old, "task": {"kind": "multiclass"}}
    params = hyperparameters(flowers)
    assert params["epochs"] == 2 and not set(kind_option_owners()) & set(params)
    graft.GraftEstimator(**params).config.for_kind("multiclass")  # not refused
    segmentation = {"config": {**old, "loss": "dice"}, "task": {"kind": "segmentation"}}
    params = hyperparameters(segmentation)
    assert params["loss"] == "dice" and params["architecture"] == "unet"
    assert "detector" not in params
    # no kind in sight (an unfinished run being resumed): the changed ones stay
    config = FitConfig.from_dict({**old, "detector": "retinanet"})
    assert config.task_options == {"detector": "retinanet"}


def test_options_whose_default_depends_on_the_kind_are_none_until_the_kind_fills_them():
    """None means "graft's default for this data": the kind's own value, else the declared
    fallback; a value the user gives is kept even when it equals the fallback."""
    config = FitConfig()
    assert (config.batch_size, config.lr, config.head_epochs, config.label_smoothing) == (
        None,
        None,
        None,
        None,
    )
    classic = config.with_defaults()
    assert (classic.batch_size, classic.lr, classic.head_epochs, classic.label_smoothing) == (
        32,
        3e-3,
        30,
        0.1,
    )
    segmentation = FitConfig(batch_size=32, lr="auto").with_defaults(
        {"batch_size": 8, "lr": 1e-3, "label_smoothing": 0.0}
    )
    assert (segmentation.batch_size, segmentation.lr, segmentation.label_smoothing) == (
        32,
        "auto",
        0.0,
    )
    assert segmentation.head_epochs == 30


def test_params_of_a_run_written_before_kind_defaults_were_none_keep_their_meaning():
    """Such a run held 32 for a batch size not given; a detection refit still takes its own 4."""
    old = {**FitConfig().with_defaults().to_dict(), "detector": "fasterrcnn", "loss": "ce"}
    old |= {"architecture": "unet", "binary_masks": False, "ignore_index": 255, "lr": 0.01}
    record = {"params": old, "config": old, "task": {"kind": "detection"}}
    params = hyperparameters(record)
    assert params["batch_size"] is None and params["lr"] == 0.01
    assert FitConfig.from_dict(old).batch_size == 32, "a resolved record keeps its values"
