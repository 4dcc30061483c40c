"""The shape of graft's code: import cycles, the longest functions and the largest classes.

    python scripts/architecture.py            # the report; exits 1 when a limit is broken
    python scripts/architecture.py --json     # the same, as JSON

Imports are read from the source (``ast``), wherever they stand: at the top of a module or
inside a function. Imports under ``if TYPE_CHECKING:`` are left out, since they never run.
``from graft.a import b`` counts as an import of ``graft.a.b`` when that is a module, else of
``graft.a``. A cycle is a strongly connected group of two or more modules.

The kinds of task (:data:`KINDS`, each a package ``graft/tasks/<kind>/``) are plug-ins: no
module outside a kind's package imports it, except the registry ``graft/tasks/__init__.py``
(and the few modules :data:`ALLOWED` names, each with its reason), and kinds never import each
other. Imports inside functions count.

The limits (:data:`MAX_FUNCTION_LINES`, :data:`MAX_CLASS_LINES`) are those of
``ARCHITECTURE.md``; ``tests/test_architecture.py`` runs this script and holds the code to them.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "graft"
#: A function (with its docstring) longer than this many lines breaks the limit.
MAX_FUNCTION_LINES = 80
#: A class longer than this many lines breaks the limit.
MAX_CLASS_LINES = 400
#: Where the kinds of task live: each package directly under it is one kind.
KINDS = "graft.tasks"
#: The one module outside the kinds that may import them: the registry, which finds them.
REGISTRY = "graft.tasks"
#: ``(module, kind package)`` -> why ``module``, outside the kind, may import it.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Span:
    """A function or class: where it is and how many lines it takes."""

    name: str
    module: str
    line: int
    lines: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Import statements anywhere in ``tree``, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the graft modules it imports."""
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(node, name, path.name == "__init__.py")
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in known:  # a name inside a module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def kind_of(module: str, kinds: set[str]) -> str | None:
    """The kind package (``graft.tasks.detection``) that holds ``module``, or None."""
    for kind in kinds:
        if module == kind or module.startswith(kind + "."):
            return kind
    return None


def kind_packages(known: dict[str, Path], package: str = KINDS) -> set[str]:
    """The packages directly under ``graft/tasks/``: one kind of task each."""
    depth = package.count(".") + 1
    inside = (name for name, path in known.items() if path.name == "__init__.py")
    return {name for name in inside if name.startswith(package + ".") and name.count(".") == depth}


def kind_imports(graph: dict[str, set[str]], kinds: set[str]) -> list[dict]:
    """Imports of a kind's package from outside it (another kind, or the engine), except the
    registry's and those :data:`ALLOWED` names: ``{"module", "imports", "kind"}`` each."""
    found = []
    for module in sorted(graph):
        if module == REGISTRY:
            continue
        home = kind_of(module, kinds)
        for target in sorted(graph[module]):
            kind = kind_of(target, kinds)
            if kind is None or kind == home or (module, kind) in ALLOWED:
                continue
            found.append({"module": module, "imports": target, "kind": kind})
    return found


def spans(known: dict[str, Path]) -> tuple[list[Span], list[Span]]:
    """Every function (methods and nested functions included) and every class, by length."""
    functions, classes = [], []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                span = Span(node.name, name, first, node.end_lineno - first + 1)
                (classes if isinstance(node, ast.ClassDef) else functions).append(span)
    key = lambda s: (-s.lines, s.module, s.line)  # noqa: E731
    return sorted(functions, key=key), sorted(classes, key=key)


def report(root: Path = ROOT, top: int = 10) -> dict:
    """Cycles, the ``top`` longest functions and largest classes, and what breaks a limit."""
    known = modules(root)
    graph = imports(known)
    functions, classes = spans(known)
    kinds = kind_packages(known)
    return {
        "modules": len(known),
        "cycles": cycles(graph),
        "kinds": sorted(kinds),
        "kind_imports": kind_imports(graph, kinds),
        "longest_functions": [asdict(s) for s in functions[:top]],
        "largest_classes": [asdict(s) for s in classes[:top]],
        "functions_over_limit": [asdict(s) for s in functions if s.lines > MAX_FUNCTION_LINES],
        "classes_over_limit": [asdict(s) for s in classes if s.lines > MAX_CLASS_LINES],
        "limits": {"function_lines": MAX_FUNCTION_LINES, "class_lines": MAX_CLASS_LINES},
    }


def _print(result: dict) -> None:
    print(f"{result['modules']} modules in {PACKAGE}/")
    print(f"import cycles: {len(result['cycles']) or 'none'}")
    for group in result["cycles"]:
        print("  " + " <-> ".join(group))
    crossing = result["kind_imports"]
    print(
        f"kinds of task: {', '.join(k.rpartition('.')[2] for k in result['kinds'])}; "
        f"imports of a kind from outside it: {len(crossing) or 'none'}"
    )
    for found in crossing:
        print(f"  {found['module']} imports {found['imports']}")
    for title, key in (
        ("longest functions", "longest_functions"),
        ("largest classes", "largest_classes"),
    ):
        print(f"{title}:")
        for span in result[key]:
            print(f"  {span['lines']:4d}  {span['module']}.{span['name']} (line {span['line']})")
    limits = result["limits"]
    over = len(result["functions_over_limit"]) + len(result["classes_over_limit"])
    print(
        f"over the limits ({limits['function_lines']} lines a function, "
        f"{limits['class_lines']} a class): {over or 'none'}"
    )
    for span in result["functions_over_limit"] + result["classes_over_limit"]:
        print(f"  {span['lines']:4d}  {span['module']}.{span['name']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--top", type=int, default=10, help="how many of each to list")
    args = parser.parse_args()
    result = report(top=args.top)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    broken = (
        result["cycles"]
        or result["kind_imports"]
        or result["functions_over_limit"]
        or result["classes_over_limit"]
    )
    raise SystemExit(1 if broken else 0)


if __name__ == "__main__":
    main()
