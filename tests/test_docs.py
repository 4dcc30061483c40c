"""The documentation site: it builds with ``mkdocs build --strict``, its pages name only options
the commands have and every option some page explains, its generated references hold every
command, option and user error, and its examples run.

Examples are fenced blocks preceded by ``<!-- test: quick -->`` (run here, in seconds) or
``<!-- test: slow -->`` (run under the ``slow`` marker: they train on ``examples/flowers``).
A page's examples run in order, in one scratch folder holding a link to ``examples/``, so that
a page's ``graft fit`` makes the run its ``graft predict`` reads.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent
# Options of other tools that the pages show (mkdocs, pip), and click's own --help.
OTHER_TOOLS = {"--help", "--strict"}
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
EXAMPLE = re.compile(r"<!-- test: (quick|slow) -->\s*\n```(\w+)\n(.*?)\n```", re.S)


def _hook(name: str):
    """A module of docs/hooks, imported from its file (docs/ is no package)."""
    spec = importlib.util.spec_from_file_location(
        f"docs_hook_{name}", DOCS / "hooks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _guides() -> list[Path]:
    """The hand-written pages (the generated CLI reference is complete by construction)."""
    return [p for p in sorted(DOCS.rglob("*.md")) if p != DOCS / "reference" / "cli.md"]


def _commands():
    """graft's click commands, as ``graft --help`` builds them: name -> command."""
    import typer.main

    from graft.cli import app

    group = typer.main.get_command(app)
    return dict(group.commands)


def _mentioned(paths: list[Path]) -> dict[str, list[str]]:
    """Every ``--option`` the pages mention -> the pages that mention it."""
    found: dict[str, list[str]] = {}
    for path in paths:
        for option in OPTION.findall(path.read_text("utf-8")):
            found.setdefault(option, []).append(path.name)
    return found


def test_pages_name_only_options_that_exist():
    known = {o for c in _commands().values() for p in c.params for o in p.opts + p.secondary_opts}
    mentioned = _mentioned(_guides() + [ROOT / "README.md"])
    unknown = {o: pages for o, pages in mentioned.items() if o not in known | OTHER_TOOLS}
    assert not unknown, f"the docs mention options no command has: {unknown}"


def test_every_option_is_explained_in_a_guide():
    mentioned = set(_mentioned(_guides()))
    missing = []
    for name, command in _commands().items():
        for param in command.params:
            names = [o for o in param.opts + param.secondary_opts if o.startswith("--")]
            if names and not mentioned & set(names):
                missing.append(f"graft {name} {names[0]}")
    assert not missing, f"options no guide mentions (document them in docs/): {missing}"


def test_the_option_check_catches_a_stale_option(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Use `--epochs 3` and `--no-such-option`, not `---` or a-b--c.\n")
    assert set(_mentioned([page])) == {"--epochs", "--no-such-option"}


def test_cli_reference_holds_every_command_and_option():
    text = _hook("cli_reference").cli_markdown()
    for name, command in _commands().items():
        assert f"## graft {name}" in text
        for param in command.params:
            if param.param_type_name == "option":
                assert f"`{param.opts[0]}" in text, (name, param.opts)


def test_cli_reference_groups_options_in_their_help_panels():
    import typer

    app = typer.Typer()

    @app.command()
    def fit(
        data: str,
        epochs: int = typer.Option(3, help="Epochs."),
        detector: str = typer.Option("faster-rcnn", help="Box head.", rich_help_panel="Detection"),
    ) -> None:
        """Train."""

    @app.command()
    def models() -> None:
        """List."""

    text = _hook("cli_reference").cli_markdown(app)
    fit_part = text[text.index("## graft fit") : text.index("## graft models")]
    assert fit_part.index("**Options**") < fit_part.index("`--epochs")
    assert fit_part.index("**Detection**") < fit_part.index("`--detector")
    assert fit_part.index("`--epochs") < fit_part.index("**Detection**")
    assert "[default: faster-rcnn]" in fit_part.replace("\\", "")


def test_error_catalogue_lists_the_user_errors_graft_raises():
    found = _hook("error_catalogue").catalogue()
    assert {"DataError", "ConfigError", "RunError", "ModelUnavailableError"} <= set(found)
    messages = [message for _, message in found["DataError"]]
    assert any("no such file or folder" in message for message in messages)
    assert "ValueError" not in found  # a programming error, not a user's


def _examples(speed: str) -> list[tuple[Path, list[tuple[str, str]]]]:
    """(page, [(language, code)]) for every page with examples of that speed, in page order."""
    pages = []
    for path in _guides():
        blocks = [(lang, code) for s, lang, code in EXAMPLE.findall(path.read_text()) if s == speed]
        if blocks:
            pages.append((path, blocks))
    return pages


def _run_blocks(blocks: list[tuple[str, str]], folder: Path, timeout: int) -> None:
    """Run a page's examples in order in ``folder``: shell lines one by one, Python whole."""
    (folder / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    for lang, code in blocks:
        if lang == "python":
            commands = [[sys.executable, "-c", code]]
        else:
            lines = code.replace("\\\n", " ").splitlines()
            commands = [shlex.split(line, comments=True) for line in lines]
        for command in filter(None, commands):
            done = subprocess.run(
                command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
            )
            assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


QUICK = _examples("quick")
SLOW = _examples("slow")


def test_the_guides_have_examples_under_test():
    assert len(QUICK) >= 2 and len(SLOW) >= 3


@pytest.mark.parametrize("page, blocks", QUICK, ids=[str(p.relative_to(DOCS)) for p, _ in QUICK])
def test_quick_examples_run(page, blocks, tmp_path):
    _run_blocks(blocks, tmp_path, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("page, blocks", SLOW, ids=[str(p.relative_to(DOCS)) for p, _ in SLOW])
def test_slow_examples_run(page, blocks, tmp_path):
    _run_blocks(blocks, tmp_path, timeout=900)


def test_site_builds_strictly(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings"):
        pytest.importorskip(module)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "graft-lr-find" in cli and "--target-unlabeled" in cli
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "GraftEstimator" in api and "FitConfig" in api
