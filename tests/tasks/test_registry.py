"""The registry of kinds: graft's own kinds and those an installed package adds through the
``graft.tasks`` entry points are found by name, a kind whose package is missing is "not
installed" (one line when asked for, passed by when recognising data), and a kind from outside
graft (:mod:`tests.tasks.plugin.parity`) registered like a pip-installed one fits, predicts
and is loaded back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import graft
from graft import tasks
from graft.config import FitConfig
from graft.errors import ConfigError, RunError
from graft.tasks import KindNotInstalledError, claiming_kind, task_class
from tests.conftest import ROOT, write_csv
from tests.tasks.plugin.parity import ParityTask

NUMBERS = "zero one two three four five six seven eight nine ten eleven".split()


def install(folder, entry_points: str, name: str = "graft-extra") -> None:
    """Write the metadata of a distribution ``name`` whose ``entry_points.txt`` is
    ``entry_points`` into ``folder`` (put on ``sys.path``), as pip would install it."""
    info = folder / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """A folder on ``sys.path`` into which a test installs plug-ins (:func:`install`); the
    registry reads the entry points again before and after."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    tasks.kinds.cache_clear()
    yield folder
    tasks.kinds.cache_clear()


def parity_table(path, rows: int = 24):
    records = [
        {"text": f"the number {NUMBERS[n % 12]} and {n}", "parity": ("even", "odd")[n % 2]}
        for n in range(rows)
    ]
    return write_csv(path, records, ("text", "parity"))


def test_the_names_are_read_without_importing_any_kind():
    code = (
        "import json, sys\n"
        "from graft.tasks import CHOOSABLE, LABEL_KINDS\n"
        "kinds = [m for m in sys.modules if m.startswith('graft.tasks.')]\n"
        "print(json.dumps([CHOOSABLE, LABEL_KINDS, kinds, 'torch' in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    choosable, labels, imported, torch = json.loads(done.stdout)
    assert {"multiclass", "detection", "segmentation", "tagging"} <= set(choosable)
    assert "multitask" not in choosable and labels == ["multiclass", "multilabel", "regression"]
    assert imported == [] and torch is False


def test_the_built_in_kinds_are_declared_as_entry_points_too():
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert declared["graft.tasks"] == tasks.BUILT_IN


def test_an_unknown_kind_is_named_with_those_graft_knows():
    with pytest.raises(RunError, match="unknown task kind 'speech'.*multiclass"):
        task_class("speech")
    with pytest.raises(ConfigError, match="--task must be auto or one of"):
        FitConfig(task="speech").validate()


def test_a_kind_whose_package_is_missing_is_not_installed(plugins, tiny_flowers):
    install(plugins, "[graft.tasks]\nabsent = graft_absent_kind.task:AbsentTask\n")
    assert "absent" in tasks.CHOOSABLE
    with pytest.raises(KindNotInstalledError) as caught:
        task_class("absent")
    message = str(caught.value)
    assert message.startswith("the absent kind of task is not installed: graft_absent_kind.task")
    assert "\n" not in message
    assert claiming_kind(tiny_flowers) is None  # recognising data passes it by
    with pytest.raises(KindNotInstalledError, match="absent kind of task is not installed"):
        graft.fit(tiny_flowers, task="absent", progress=False)


def test_a_missing_module_of_graft_itself_is_a_bug_not_a_missing_kind(plugins):
    (plugins / "graft_broken_kind.py").write_text("import graft.no_such_engine_module\n")
    install(plugins, "[graft.tasks]\nbroken = graft_broken_kind:BrokenTask\n")
    with pytest.raises(ModuleNotFoundError, match="graft.no_such_engine_module"):
        task_class("broken")


def test_an_entry_point_naming_no_class_is_one_clear_error(plugins):
    (plugins / "graft_empty_kind.py").write_text("")
    install(plugins, "[graft.tasks]\nempty = graft_empty_kind:EmptyTask\n")
    with pytest.raises(ConfigError, match="graft_empty_kind has no EmptyTask"):
        task_class("empty")


def test_a_plug_in_cannot_take_the_name_of_a_built_in_kind(plugins):
    install(plugins, "[graft.tasks]\nmulticlass = tests.tasks.plugin.parity:ParityTask\n")
    assert task_class("multiclass").__name__ == "MulticlassTask"


def test_a_kind_from_an_installed_package_fits_predicts_and_loads(plugins, tmp_path):
    install(plugins, "[graft.tasks]\nparity = tests.tasks.plugin.parity:ParityTask\n")
    assert task_class("parity") is ParityTask and "parity" in tasks.CHOOSABLE
    train, val = parity_table(tmp_path / "train.csv"), parity_table(tmp_path / "val.csv", 8)
    assert claiming_kind(train) is ParityTask
    assert FitConfig(task="parity").validate().task == "parity"
    out = tmp_path / "run"
    model = graft.fit(train, val, strategy="feature-extract", epochs=2, out=out, progress=False)
    assert model.fitted_task_.kind == "parity"
    assert set(model.predict(["the number three and 3", "two"])) <= {"even", "odd"}
    assert 0.0 <= model.score(val) <= 1.0
    again = graft.load(out)
    assert isinstance(again.fitted_task_, ParityTask)
    texts = ["the number four and 4", "the number five and 5"]
    assert list(again.predict(texts)) == list(model.predict(texts))
