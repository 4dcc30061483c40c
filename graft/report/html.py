"""What every section of the report is drawn with: escaped text, tables of pairs, numbers, and
matplotlib figures embedded as PNG data URIs (the file opens offline)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { border: 1px solid #ddd; padding: 0.5rem; width: 15rem; font-size: 0.85rem; }
.card img { display: block; margin-bottom: 0.3rem; }
.muted { color: #666; }
"""


def escape(value: Any) -> str:
    return html.escape(str(value))


def pair_table(pairs: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in pairs)
    return f"<table>{cells}</table>"


def table_section(spec: Any, heading: str) -> str:
    """A section of the report: ``heading``, ``spec``'s title, and its table
    (a :class:`graft.tasks.base.MetricsTable`: its ``left`` columns left-aligned, the others
    right-aligned numbers)."""
    header = "".join(f"<th>{escape(c)}</th>" for c in spec.columns)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(cell)}</td>"
            if column in spec.left
            else f"<td class='n'>{escape(cell)}</td>"
            for column, cell in zip(spec.columns, row, strict=True)
        )
        + "</tr>"
        for row in spec.rows
    )
    return (
        f"<h2>{escape(heading)}</h2><p>{escape(spec.title)}</p>"
        f"<table><tr>{header}</tr>{rows}</table>"
    )


def number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def figure(draw, width: float = 6.0, height: float = 4.0) -> str:
    """An ``<img>`` of the matplotlib figure that ``draw(figure)`` fills, as a PNG data URI."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'
