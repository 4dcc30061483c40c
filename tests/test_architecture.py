"""The shape of the code (ARCHITECTURE.md's invariants): no import cycles, no giant function
or class, no kind of task imported from outside its package (but by the registry), and a
command line that starts without torch."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )


def test_the_architecture_script_finds_no_cycle_and_nothing_over_the_limits():
    done = subprocess.run(
        [sys.executable, "scripts/architecture.py", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    report = json.loads(done.stdout)
    assert report["cycles"] == []
    assert report["kind_imports"] == []
    assert {"graft.tasks.classification", "graft.tasks.detection"} <= set(report["kinds"])
    assert report["functions_over_limit"] == [] and report["classes_over_limit"] == []
    assert done.returncode == 0
    assert report["modules"] > 50 and report["longest_functions"]  # it read the package


def load_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import architecture
    finally:
        sys.path.pop(0)
    return architecture


def test_the_script_sees_a_cycle_made_through_an_import_inside_a_function(tmp_path):
    package = tmp_path / "graft"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from graft.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from graft import a\n    return a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from graft import a\n"
    )
    assert load_script().report(root=tmp_path)["cycles"] == [["graft.a", "graft.b"]]


def test_the_script_sees_a_kind_imported_from_the_engine_or_from_another_kind(tmp_path):
    files = {
        "__init__.py": "",
        "tasks/__init__.py": "from graft.tasks.cats import task\n",  # the registry may
        "tasks/base.py": "",
        "tasks/cats/__init__.py": "",
        "tasks/cats/task.py": "from graft.tasks import base\nfrom graft.tasks.cats import read\n",
        "tasks/cats/read.py": "def read():\n    from graft.tasks.dogs.task import Dog\n",
        "tasks/dogs/__init__.py": "",
        "tasks/dogs/task.py": "from ..cats import read\n",
        "engine.py": "def fit():\n    import graft.tasks.dogs.task\n",
        "typed.py": "import typing\nif typing.TYPE_CHECKING:\n    import graft.tasks.dogs\n",
    }
    for name, text in files.items():
        (tmp_path / "graft" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "graft" / name).write_text(text)
    report = load_script().report(root=tmp_path)
    assert report["kinds"] == ["graft.tasks.cats", "graft.tasks.dogs"]
    assert [(f["module"], f["imports"]) for f in report["kind_imports"]] == [
        ("graft.engine", "graft.tasks.dogs.task"),
        ("graft.tasks.cats.read", "graft.tasks.dogs.task"),
        ("graft.tasks.dogs.task", "graft.tasks.cats.read"),
    ]


def test_import_graft_and_the_command_line_import_no_torch():
    check = (
        "import sys\n"
        "import graft\n"
        "from graft.cli import app\n"
        "from graft.backbones.catalogue import list_backbones\n"
        "assert [e.name for e in list_backbones()]\n"
        "heavy = [m for m in ('torch', 'lightning', 'timm', 'transformers') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    assert run(check).stdout.strip() == "[]"
