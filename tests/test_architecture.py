"""The shape of the code (ARCHITECTURE.md's invariants): no import cycles, no giant function
or class, and a command line that starts without torch."""

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
    assert report["functions_over_limit"] == [] and report["classes_over_limit"] == []
    assert done.returncode == 0
    assert report["modules"] > 50 and report["longest_functions"]  # it read the package


def test_the_script_sees_a_cycle_made_through_an_import_inside_a_function(tmp_path):
    package = tmp_path / "graft"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from graft.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from graft import a\n    return a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from graft import a\n"
    )
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import architecture
    finally:
        sys.path.pop(0)
    assert architecture.report(root=tmp_path)["cycles"] == [["graft.a", "graft.b"]]


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
