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
    assert options_class("multiclass") is None and options_class("tagging") is None


def test_each_kind_declares_its_options_importing_no_torch():
    check = (
        "import sys\n"
        "from graft.config import kind_option_owners\n"
        "owners = kind_option_owners()\n"
        "print(sorted(owners), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.stdout.strip() == (
        "['architecture', 'binary_masks', 'detector', 'ignore_index', 'loss'] False"
    ), out.stderr


def test_the_kinds_choices_are_those_their_models_build():
    from graft.tasks.detection.detectors import DETECTORS
    from graft.tasks.detection.options import DETECTORS as OFFERED_DETECTORS
    from graft.tasks.segmentation.decoders import ARCHITECTURES
    from graft.tasks.segmentation.module import LOSSES
    from graft.tasks.segmentation.options import ARCHITECTURES as OFFERED
    from graft.tasks.segmentation.options import LOSSES as OFFERED_LOSSES

    assert tuple(DETECTORS) == OFFERED_DETECTORS
    assert tuple(ARCHITECTURES) == OFFERED and tuple(LOSSES) == OFFERED_LOSSES


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
    assert not set(kind_option_owners()) & set(settings), "a flowers fit shows no detector"


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
