"""MkDocs hook: the command-line reference, written at build time from graft's typer app.

A page holding the marker ``<!-- graft-cli-reference -->`` gets, in its place, every command of
``graft.cli.app`` (as ``typer.main.get_command`` builds it for ``graft --help``), its usage, its
help and every parameter, grouped in the help panels ``--help`` shows (``rich_help_panel``;
``Arguments`` and ``Options`` when a parameter names none). Each parameter's line is the one
``--help`` prints (``get_help_record``: names, metavar, help and default), so the page cannot
drift from the code: it is the code's own declarations, read when the site is built.
"""

from __future__ import annotations

import re

MARKER = "<!-- graft-cli-reference -->"
_ESCAPE = re.compile(r"([\\*_<>|\[\]])")


def _escape(text: str) -> str:
    """Markdown-safe text: help strings may hold ``*``, ``_``, ``<``, ``|`` or brackets (their
    backquotes are kept: they mark code, as in the guides)."""
    return _ESCAPE.sub(r"\\\1", " ".join(text.split()))


def _panel(param) -> str:
    """The help panel a parameter is shown in, as ``--help`` groups it."""
    named = getattr(param, "rich_help_panel", None)
    if named:
        return named
    return "Arguments" if param.param_type_name == "argument" else "Options"


def _context(command, name: str, parent):
    """A click context for ``command`` (typer vendors click: take the context class it uses)."""
    return command.context_class(command, info_name=name, parent=parent)


def command_sections(app=None) -> list[dict]:
    """Every command of the app: name, panel, help, usage and its parameters by panel."""
    import typer.main

    if app is None:
        from graft.cli import app
    group = typer.main.get_command(app)
    root = _context(group, "graft", None)
    sections = []
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        if command is None or command.hidden:
            continue
        context = _context(command, name, root)
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in command.get_params(context):
            record = param.get_help_record(context)
            if record is None or getattr(param, "hidden", False):
                continue
            panels.setdefault(_panel(param), []).append(record)
        sections.append(
            {
                "name": name,
                "panel": getattr(command, "rich_help_panel", None) or "Commands",
                "help": (command.help or "").strip(),
                "usage": command.get_usage(context).strip(),
                "panels": panels,
            }
        )
    return sections


def _command_markdown(section: dict) -> list[str]:
    """One command's part of the page: heading, usage, help, a table per panel."""
    lines = [f"## graft {section['name']}", "", "```text", section["usage"], "```", ""]
    if section["help"]:
        lines += [_escape(section["help"].split("\b")[0]), ""]
    for panel, records in section["panels"].items():
        lines += [f"**{_escape(panel)}**", "", "| parameter | meaning |", "|---|---|"]
        for names, meaning in records:
            lines.append(f"| `{names}` | {_escape(meaning or '')} |")
        lines.append("")
    return lines


def cli_markdown(app=None) -> str:
    """The whole reference: an index of the commands by panel, then each command."""
    sections = command_sections(app)
    lines: list[str] = []
    by_panel: dict[str, list[dict]] = {}
    for section in sections:
        by_panel.setdefault(section["panel"], []).append(section)
    for panel, members in by_panel.items():
        lines += [f"**{_escape(panel)}**", "", "| command | what it does |", "|---|---|"]
        for section in members:
            anchor = "graft-" + section["name"]
            first = section["help"].split("\n\n")[0]
            lines.append(f"| [`graft {section['name']}`](#{anchor}) | {_escape(first)} |")
        lines.append("")
    for section in sections:
        lines += _command_markdown(section)
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs' hook: put the generated reference where the page holds the marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_markdown())
