"""The table of a study's trials, the ``best`` link and the search page.

Rows come from each trial's ``trial.json`` (:mod:`graft.tuning.trial`), so the table is the
same whichever backend ran the trials, and it holds every trial: complete, pruned (its last
reported score), failed (the error in one line). ``DIR/trials.csv`` and ``DIR/trials.json``
hold it; ``DIR/best`` links the run directory of the best complete trial (highest validation
score); ``DIR/search.html`` draws the score of each trial and, when Optuna can measure it, the
importance of each option (fANOVA, :func:`optuna.importance.get_param_importances`).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from graft.report.html import escape, figure, number
from graft.tuning.space import DEFAULTS_FLAG
from graft.tuning.trial import read_trial

#: The trial states a row can have.
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


def trial_rows(
    out: Path, names: list[str], states: dict[str, str] | None = None, fixed: dict | None = None
) -> list[dict]:
    """One row per trial folder ``names`` (in order) of ``out``, once no trial runs; ``states``
    overrides the state a trial recorded (Optuna's); one still recorded as running was killed
    with its process: ``FAIL``. A row's ``params`` leave out the ``fixed`` options."""
    rows = []
    for number_, name in enumerate(names):
        record = read_trial(out / name) or {"state": "FAIL", "params": {}, "scores": []}
        state = (states or {}).get(name, record["state"])
        state = "FAIL" if state == "RUNNING" else state  # its process ended before it did
        scores = record.get("scores", [])
        score = record.get("score") if state == "COMPLETE" else (scores[-1] if scores else None)
        error = record.get("error")
        if state == "FAIL" and error is None:
            error = "interrupted: the process running it ended before it finished"
        params = record.get("params", {})
        rows.append(
            {
                "trial": number_,
                "run_dir": name,
                "state": state,
                "score": score,
                "seconds": record.get("seconds"),
                "epochs_trained": len(scores),
                "defaults": bool(params.get(DEFAULTS_FLAG)),
                "params": {
                    k: v for k, v in params.items() if k != DEFAULTS_FLAG and k not in (fixed or {})
                },
                "cache_misses": record.get("cache_misses"),
                "error": error,
            }
        )
    return rows


def best_row(rows: list[dict]) -> dict | None:
    """The complete trial with the highest validation score (the first of equals)."""
    complete = [row for row in rows if row["state"] == "COMPLETE" and row["score"] is not None]
    return max(complete, key=lambda row: row["score"]) if complete else None


def write_table(out: Path, rows: list[dict], searched: list[str]) -> dict | None:
    """``trials.json``, ``trials.csv`` and the ``best`` link; the best row."""
    _write(out / "trials.json", json.dumps(rows, indent=2, default=str))
    columns = ["trial", "run_dir", "state", "score", "seconds", "epochs_trained", "defaults"]
    columns += [name for name in searched if name not in columns]
    with open(out / "trials.csv.tmp", "w", newline="") as handle:
        writer = csv.DictWriter(handle, [*columns, "error"], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **{k: row["params"].get(k) for k in searched}})
    os.replace(out / "trials.csv.tmp", out / "trials.csv")
    best = best_row(rows)
    if best is not None:
        link_best(out, best["run_dir"])
    return best


def link_best(out: Path, name: str) -> None:
    """``out/best`` -> ``name`` (a relative symbolic link, replaced atomically)."""
    temporary = out / ".best.tmp"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(name, target_is_directory=True)
    os.replace(temporary, out / "best")


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_search_page(out: Path, rows: list[dict], importance: dict[str, float] | None) -> Path:
    """``out/search.html``: the trials, their scores against trial number and each option's
    importance."""
    counts = {state: sum(row["state"] == state for row in rows) for state in STATES}
    best = best_row(rows)
    summary = (
        f"{len(rows)} trials: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
        f"{counts['FAIL']} failed"
    )
    if best is not None:
        summary += f"; best {best['run_dir']} (validation score {best['score']:.4f})"
    parts = [f"<h1>graft tune: {escape(out.name)}</h1>", f"<p>{escape(summary)}</p>"]
    if any(row["score"] is not None for row in rows):
        parts.append(figure(lambda fig: _draw_scores(fig, rows), 7, 3.5))
    if importance:
        cells = "".join(
            f"<tr><td>{escape(k)}</td><td>{v:.3f}</td></tr>" for k, v in importance.items()
        )
        parts.append(f"<h2>Importance of each option</h2><table>{cells}</table>")
    header = "<tr><th>trial</th><th>state</th><th>score</th><th>seconds</th><th>options</th></tr>"
    body = "".join(
        f"<tr><td>{escape(row['run_dir'])}</td><td>{row['state']}</td>"
        f"<td>{number(row['score'])}</td><td>{number(row['seconds'])}</td>"
        f"<td>{escape(describe(row))}</td></tr>"
        for row in rows
    )
    parts.append(f"<h2>Trials</h2><table>{header}{body}</table>")
    page = f"<!doctype html><meta charset='utf-8'><title>graft tune</title>{''.join(parts)}"
    _write(out / "search.html", page)
    return out / "search.html"


def describe(row: dict) -> str:
    """A row's options in one line (graft's defaults for the first trial); a failure's error."""
    options = ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
    text = "graft's defaults" + (f" ({options})" if options else "") if row["defaults"] else options
    return f"{text} [{row['error']}]" if row["error"] else text


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _draw_scores(fig: Any, rows: list[dict]) -> None:
    axes = fig.add_subplot()
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        shown = [row for row in rows if row["state"] == state and row["score"] is not None]
        axes.scatter([r["trial"] for r in shown], [r["score"] for r in shown], marker=marker,
                     label=state.lower())  # fmt: skip
    scored = [row for row in rows if row["state"] == "COMPLETE" and row["score"] is not None]
    best, running = [], float("-inf")
    for row in scored:
        running = max(running, row["score"])
        best.append((row["trial"], running))
    if best:
        axes.step(*zip(*best, strict=True), where="post", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel("validation score")
    axes.legend()
