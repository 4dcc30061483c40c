"""MkDocs hook: the catalogue of graft's errors, read from the source at build time.

A page holding ``<!-- graft-error-catalogue -->`` gets every ``raise SomeError(message)`` in
``graft/`` whose class is ``GraftError`` or a subclass of it (found by reading the class
definitions, so nothing is imported), grouped by class, with the module that raises it and
its message; the parts an f-string fills in are shown as ``{name}``. These are the errors a
user can fix, which the command line prints as one line (``error: ...``, exit status 2).
"""

from __future__ import annotations

import ast
from pathlib import Path

MARKER = "<!-- graft-error-catalogue -->"
ROOT = Path(__file__).resolve().parents[2]
ORDER = ["DataError", "ConfigError", "ModelUnavailableError", "RunError", "NotFittedError"]


def _trees(package: Path) -> list[tuple[str, ast.AST]]:
    """Every module of the package, parsed: (dotted name, tree)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        name = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        found.append((name.removesuffix(".__init__"), ast.parse(path.read_text("utf-8"))))
    return found


def _user_errors(trees) -> set[str]:
    """The names of GraftError and every class that derives from it, directly or not."""
    bases: dict[str, set[str]] = {}
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                bases.setdefault(node.name, set()).update(names)
    known = {"GraftError"}
    grew = True
    while grew:
        grew = False
        for name, parents in bases.items():
            if name not in known and parents & known:
                known.add(name)
                grew = True
    return known


def _message(node: ast.AST) -> str:
    """A message as a reader sees it: literal text, and ``{expression}`` where it varies."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append("{" + ast.unparse(value.value) + "}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _message(node.left) + _message(node.right)
    return "{" + ast.unparse(node) + "}"


def catalogue(package: Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """Error class -> [(module, message)] for every raise of a user's error in the package."""
    trees = _trees(package or ROOT / "graft")
    user = _user_errors(trees)
    found: dict[str, list[tuple[str, str]]] = {}
    for module, tree in trees:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in user and node.exc.args:
                found.setdefault(name, []).append((module, _message(node.exc.args[0])))
    return found


def _cell(text: str) -> str:
    """Table-safe code text."""
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'")


def catalogue_markdown() -> str:
    """The catalogue as one section per error class, one table row per message."""
    found = catalogue()
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    lines = []
    for name in names:
        rows = sorted(set(found[name]))
        lines += [f"### {name} ({len(rows)})", "", "| raised in | message |", "|---|---|"]
        lines += [f"| `{module}` | `{_cell(message)}` |" for module, message in rows]
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs' hook: put the catalogue where the page holds the marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, catalogue_markdown())
