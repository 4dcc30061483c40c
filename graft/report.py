"""The run report: one self-contained ``report.html`` built from a run directory's JSON files.

Every fit with an output directory writes it, and ``graft report RUN`` rebuilds it from
``config.json``, ``metrics.json``, ``history.json`` and ``summary.json`` alone (no model is
loaded, no data read, except the thumbnails of the most confidently wrong images, when the
files are still there). It holds:

- what was trained: backbone, strategy, task, data, time, and every setting;
- the decisions graft made: the strategy ``--strategy auto`` chose and why, the phase kept,
  the learning rate found, the transfer gain over a model trained from scratch, and the
  domain gap and label-free scores of a domain adaptation;
- the learning curves of each phase, the metrics of every evaluated split, the confusion
  matrix, per-class precision, recall and F1, the reliability diagram with the expected
  calibration error, and the most confidently wrong examples (thumbnails, or the text).

A multi-task run (``--tasks``) has all of these for each task: its metrics, its validation
score's curve, and the sections of each multiclass task.

Plots are drawn by matplotlib into PNGs embedded as data URIs, and the style sheet is inline,
so the file opens offline with no script, font or image fetched from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from graft.runs import atomic_write, read_json

REPORT_FILE = "report.html"
THUMBNAIL_PIXELS = 112

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


def write_report(run_dir: str | Path) -> Path:
    """Build ``report.html`` in ``run_dir`` from its files (atomically) and return its path."""
    run_dir = Path(run_dir).expanduser()
    page = render(run_dir)
    path = run_dir / REPORT_FILE
    atomic_write(path, lambda temporary: temporary.write_text(page, encoding="utf-8"))
    return path


def render(run_dir: Path) -> str:
    """The report of ``run_dir`` as one HTML string."""
    config = read_json(run_dir / "config.json")
    metrics = _optional(run_dir / "metrics.json", {})
    history = _optional(run_dir / "history.json", [])
    summary = _optional(run_dir / "summary.json", {})
    classes = _optional(run_dir / "labels.json", [])
    multitask = (config.get("task") or {}).get("kind") == "multitask"
    sections = [
        _overview(run_dir, config, summary),
        _decisions(summary, metrics),
        _metrics_table(metrics, multitask),
        _curves(history),
    ]
    split = "test" if "test" in metrics else "val"
    evaluated = metrics.get(split, {})
    # (title, metrics, classes) of each classification with a confusion matrix
    shown = (
        [(f"{split}, task {t}", v, classes[t]) for t, v in evaluated.items()]
        if multitask
        else [(split, evaluated, classes)]
    )
    for title, values, names in shown:
        if "confusion_matrix" in values:
            sections += [
                _confusion(values, names, title),
                _per_class(values, title),
                _calibration(values, title),
                _errors(values, title, summary.get("modality")),
            ]
    sections.append(_settings(config))
    title = f"graft run {run_dir.name}"
    body = "\n".join(section for section in sections if section)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{STYLE}</style></head><body>\n<h1>{_e(title)}</h1>\n{body}\n"
        "</body></html>\n"
    )


def _optional(path: Path, default: Any) -> Any:
    return read_json(path) if path.is_file() else default


def _e(value: Any) -> str:
    return html.escape(str(value))


def _rows(pairs: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f"<table>{cells}</table>"


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _figure(draw, width: float = 6.0, height: float = 4.0) -> str:
    """An ``<img>`` of the matplotlib figure that ``draw(figure)`` fills, as a PNG data URI."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


# Sections ------------------------------------------------------------------------------------


def _overview(run_dir: Path, config: dict, summary: dict) -> str:
    settings = config.get("config", {})
    examples = summary.get("examples", {})
    seconds = summary.get("seconds", {}).get("total")
    pairs = [
        ("backbone", config.get("backbone")),
        ("strategy", settings.get("strategy")),
        ("task", (config.get("task") or {}).get("kind", summary.get("task"))),
        *_tasks(config.get("task") or {}),
        ("examples", ", ".join(f"{k} {v}" for k, v in examples.items()) or "n/a"),
        ("data", ", ".join(f"{k}: {v}" for k, v in (config.get("data") or {}).items() if v)),
        ("training time", "n/a" if seconds is None else f"{seconds:.1f} s"),
        ("written by", ", ".join(f"{k} {v}" for k, v in config.get("versions", {}).items())),
        ("run directory", str(run_dir)),
    ]
    return "<h2>Run</h2>" + _rows(pairs)


def _tasks(record: dict) -> list[tuple[str, str]]:
    """A multi-task run's tasks and the weights of their losses (none for one task)."""
    if record.get("kind") != "multitask":
        return []
    weighting = record.get("weighting", {})
    weights = weighting.get("weights", {})
    mode = "learned by uncertainty" if weighting.get("mode") == "uncertainty" else "fixed"
    return [
        ("tasks", ", ".join(f"{t['name']} ({t['kind']})" for t in record.get("tasks", []))),
        (f"loss weights ({mode})", ", ".join(f"{k} {v:.4f}" for k, v in weights.items())),
    ]


def _decisions(summary: dict, metrics: dict) -> str:
    items = []
    if "advice" in summary:
        advice = summary["advice"]
        items.append(
            f"<b>--strategy auto chose {_e(advice['strategy'])}</b>: {_e(advice['reason'])}"
        )
    if "kept_phase" in summary:
        kept = summary["kept_phase"]
        scores = ", ".join(f"{k} {_number(v)}" for k, v in kept.items() if k != "phase")
        items.append(
            f"<b>kept phase {_e(kept.get('phase'))}</b> (best on validation: {_e(scores)})"
        )
    if "lr_finder" in summary:
        items.append(
            f"<b>learning rate {summary['lr_finder'].get('suggestion', 0):.3g}</b> from the range "
            "test (--lr auto)"
        )
    if "transfer" in metrics:
        transfer = metrics["transfer"]
        gains = "; ".join(
            f"{split}: pretrained {_number(row['pretrained'])}, scratch {_number(row['scratch'])}"
            for split, row in transfer.items()
            if isinstance(row, dict) and "pretrained" in row
        )
        items.append(f"<b>transfer: {_e(transfer.get('verdict'))}</b> ({_e(gains)})")
    if "adaptation" in metrics:
        adaptation = metrics["adaptation"]
        gap, free = adaptation["domain_gap"], adaptation["label_free"]
        target = metrics.get("target_test", {}).get("accuracy")
        items.append(
            f"<b>domain adaptation {_e(adaptation['method'])}</b> to {_e(adaptation['target'])}: "
            f"domain gap ({_e(gap['measure'])}) {gap['before']:.3f} before, {gap['after']:.3f} "
            f"after; information maximisation {free['im']:.4f}"
            + ("" if target is None else f"; target accuracy {target:.4f}")
        )
        items += [
            f"<b>source-risk guard</b> ({_e(decision['phase'])}): {_e(decision['reason'])}"
            for decision in adaptation.get("guard", [])
        ]
    if not items:
        return ""
    return "<h2>Decisions</h2><ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _metrics_table(metrics: dict, multitask: bool = False) -> str:
    rows = []
    for split in ("val", "test", "target_test"):
        if split not in metrics:
            continue
        parts = (
            [(f"{split}, task {t}", v) for t, v in metrics[split].items()]
            if multitask
            else [(split, metrics[split])]
        )
        for name, values in parts:
            shown = {
                k: v
                for k, v in values.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            if "calibration" in values:
                shown["expected calibration error"] = values["calibration"]["ece"]
            cells = ", ".join(f"{k} {_number(v)}" for k, v in shown.items())
            rows.append((name, cells))
    return "<h2>Metrics</h2>" + _rows(rows) if rows else ""


def _curves(history: list[dict]) -> str:
    if not history:
        return ""
    from matplotlib.ticker import MaxNLocator

    phases = list(dict.fromkeys(row["phase"] for row in history))
    tasks = list(dict.fromkeys(k for row in history for k in row if k.startswith("val_score_")))

    def draw(figure):
        losses, scores = figure.subplots(1, 2)
        for step, row in enumerate(history, start=1):
            row["_step"] = step
        for phase in phases:
            rows = [r for r in history if r["phase"] == phase]
            steps = [r["_step"] for r in rows]
            for key, style in (("train_loss", "-"), ("val_loss", "--")):
                values = [r.get(key) for r in rows]
                if any(v is not None for v in values):
                    losses.plot(steps, values, style, marker="o", label=f"{phase} {key}")
            values = [r.get("val_score") for r in rows]
            scores.plot(steps, values, marker="o", label=f"{phase} validation score")
            for key in tasks:  # a multi-task run's score of each task (val_score: their mean)
                values = [r.get(key) for r in rows]
                label = f"{phase} {key.removeprefix('val_score_')}"
                scores.plot(steps, values, ":", marker=".", label=label)
            kept = [r for r in rows if r.get("kept")]
            if kept:
                scores.scatter(
                    [r["_step"] for r in kept],
                    [r.get("val_score") for r in kept],
                    s=120,
                    facecolors="none",
                    edgecolors="black",
                    label="kept",
                )
        for axes in (losses, scores):
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        losses.set(xlabel="epoch (all phases)", ylabel="loss", title="losses")
        scores.set(xlabel="epoch (all phases)", ylabel="score", title="validation score")
        losses.legend(fontsize=7)
        scores.legend(fontsize=7)

    image = _figure(draw, 11, 3.8)
    for row in history:
        row.pop("_step", None)
    return f"<h2>Learning curves</h2><p class='muted'>phases: {_e(', '.join(phases))}</p>{image}"


def _confusion(values: dict, classes: list[str], split: str) -> str:
    import numpy as np

    matrix = np.asarray(values["confusion_matrix"])
    size = max(4.0, 0.5 * len(classes) + 2)

    def draw(figure):
        axes = figure.subplots()
        shown = axes.imshow(matrix, cmap="Blues")
        axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        axes.set_yticks(range(len(classes)), classes)
        axes.set(xlabel="predicted", ylabel="true")
        if len(classes) <= 20:
            for (i, j), count in np.ndenumerate(matrix):
                colour = "white" if count > matrix.max() / 2 else "black"
                axes.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=8)
        figure.colorbar(shown, ax=axes)

    return f"<h2>Confusion matrix ({_e(split)})</h2>{_figure(draw, size + 1, size)}"


def _per_class(values: dict, split: str) -> str:
    header = "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
    rows = "".join(
        f"<tr><td>{_e(name)}</td>"
        + "".join(f"<td class='n'>{_number(row[k])}</td>" for k in ("precision", "recall", "f1"))
        + f"<td class='n'>{row['support']}</td></tr>"
        for name, row in values["per_class"].items()
    )
    return f"<h2>Per class ({_e(split)})</h2><table>{header}{rows}</table>"


def _calibration(values: dict, split: str) -> str:
    if "calibration" not in values:
        return ""
    calibration = values["calibration"]
    filled = [b for b in calibration["bins"] if b["count"]]

    def draw(figure):
        axes = figure.subplots()
        axes.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
        centres = [(b["low"] + b["high"]) / 2 for b in filled]
        axes.bar(
            centres,
            [b["accuracy"] for b in filled],
            width=0.09,
            alpha=0.7,
            label="accuracy of the bin",
        )
        axes.plot(
            [b["confidence"] for b in filled],
            [b["accuracy"] for b in filled],
            "o-",
            color="darkred",
            label="mean confidence vs accuracy",
        )
        axes.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (top-class probability)",
            ylabel="accuracy",
            title=f"expected calibration error {calibration['ece']:.4f}",
        )
        axes.legend(fontsize=7, loc="upper left")

    return (
        f"<h2>Calibration ({_e(split)})</h2><p>Expected calibration error "
        f"<b>{calibration['ece']:.4f}</b> over {len(calibration['bins'])} equal-width bins "
        f"(0: the top-class probability is the accuracy).</p>{_figure(draw, 5, 4.2)}"
    )


def _errors(values: dict, split: str, modality: str | None) -> str:
    errors = values.get("confident_errors")
    if not errors:
        return ""
    cards = []
    for error in errors:
        shown = _thumbnail(error["item"]) if modality == "image" else ""
        text = Path(error["item"]).name if modality == "image" else error["item"]
        cards.append(
            f"<div class='card'>{shown}<div>{_e(text)}</div><div>true <b>{_e(error['label'])}"
            f"</b>, predicted <b>{_e(error['predicted'])}</b> ({error['probability']:.3f})</div>"
            "</div>"
        )
    return f"<h2>Most confidently wrong ({_e(split)})</h2><div class='grid'>{''.join(cards)}</div>"


def _thumbnail(path: str) -> str:
    """A small JPEG of the image at ``path`` as a data URI, or a note when it is gone."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
    except OSError:
        return "<div class='muted'>(image no longer readable)</div>"
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/jpeg;base64,{encoded}">'


def _settings(config: dict) -> str:
    settings = config.get("config", {})
    return "<h2>Settings</h2>" + _rows([(k, settings[k]) for k in sorted(settings)])
