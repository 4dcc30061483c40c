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

from pathlib import Path
from typing import Any

from graft.report.html import STYLE, figure, number, pair_table
from graft.report.html import escape as _e
from graft.runs.directory import atomic_write, read_json
from graft.tasks import task_class
from graft.tasks.capabilities import report_of

REPORT_FILE = "report.html"


def write_report(run_dir: str | Path) -> Path:
    """Build ``report.html`` in ``run_dir`` from its files (atomically) and return its path."""
    run_dir = Path(run_dir).expanduser()
    page = render(run_dir)
    path = run_dir / REPORT_FILE
    atomic_write(path, lambda temporary: temporary.write_text(page, encoding="utf-8"))
    return path


def _optional(path: Path, default: Any) -> Any:
    return read_json(path) if path.is_file() else default


def render(run_dir: Path) -> str:
    """The report of ``run_dir`` as one HTML string."""
    config = read_json(run_dir / "config.json")
    metrics = _optional(run_dir / "metrics.json", {})
    history = _optional(run_dir / "history.json", [])
    summary = _optional(run_dir / "summary.json", {})
    classes = _optional(run_dir / "labels.json", [])
    kind = task_class((config.get("task") or {}).get("kind", "multiclass"))
    sections = [
        _overview(run_dir, config, summary, kind),
        _decisions(summary, metrics),
        _metrics_table(metrics, kind),
        _curves(history, getattr(kind, "headline", "score")),
    ]
    sections += report_of(kind).comparison_sections(metrics.get("val") or {})
    split = "test" if "test" in metrics else "val"
    sections += report_of(kind).report_sections(
        metrics.get(split, {}), classes, split, summary.get("modality")
    )
    sections.append(_settings(config))
    title = f"graft run {run_dir.name}"
    body = "\n".join(section for section in sections if section)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{STYLE}</style></head><body>\n<h1>{_e(title)}</h1>\n{body}\n"
        "</body></html>\n"
    )


# Sections ------------------------------------------------------------------------------------


def _overview(run_dir: Path, config: dict, summary: dict, kind: type) -> str:
    settings = config.get("config", {})
    examples = summary.get("examples", {})
    seconds = summary.get("seconds", {}).get("total")
    pairs = [
        ("backbone", config.get("backbone")),
        ("strategy", settings.get("strategy")),
        ("task", (config.get("task") or {}).get("kind", summary.get("task"))),
        *report_of(kind).overview(config.get("task") or {}),
        ("examples", ", ".join(f"{k} {v}" for k, v in examples.items()) or "n/a"),
        ("data", ", ".join(f"{k}: {v}" for k, v in (config.get("data") or {}).items() if v)),
        ("training time", "n/a" if seconds is None else f"{seconds:.1f} s"),
        ("written by", ", ".join(f"{k} {v}" for k, v in config.get("versions", {}).items())),
        ("run directory", str(run_dir)),
    ]
    return "<h2>Run</h2>" + pair_table(pairs)


def _decisions(summary: dict, metrics: dict) -> str:
    items = []
    if "advice" in summary:
        advice = summary["advice"]
        items.append(
            f"<b>--strategy auto chose {_e(advice['strategy'])}</b>: {_e(advice['reason'])}"
        )
    if "kept_phase" in summary:
        kept = summary["kept_phase"]
        scores = ", ".join(f"{k} {number(v)}" for k, v in kept.items() if k != "phase")
        read = "validation"
        if "epoch_validation" in summary:  # each epoch read a sample of a large split
            sample = summary["epoch_validation"]
            read = f"a sample of {sample['examples']:,} of the {sample['of']:,} validation examples"
        items.append(f"<b>kept phase {_e(kept.get('phase'))}</b> (best on {read}: {_e(scores)})")
    if "lr_finder" in summary:
        items.append(
            f"<b>learning rate {summary['lr_finder'].get('suggestion', 0):.3g}</b> from the range "
            "test (--lr auto)"
        )
    if "transfer" in metrics:
        transfer = metrics["transfer"]
        gains = "; ".join(
            f"{split}: pretrained {number(row['pretrained'])}, scratch {number(row['scratch'])}"
            for split, row in transfer.items()
            if isinstance(row, dict) and "pretrained" in row
        )
        items.append(f"<b>transfer: {_e(transfer.get('verdict'))}</b> ({_e(gains)})")
    if "adaptation" in metrics:
        adaptation = metrics["adaptation"]
        gap, free = adaptation["domain_gap"], adaptation["label_free"]
        target = metrics.get("target_test", {}).get("accuracy")
        measured = (  # no gap without source data (graft adapt)
            "without source data"
            if gap is None
            else f"domain gap ({_e(gap['measure'])}) {gap['before']:.3f} before, "
            f"{gap['after']:.3f} after"
        )
        items.append(
            f"<b>domain adaptation {_e(adaptation['method'])}</b> to {_e(adaptation['target'])}: "
            f"{measured}; information maximisation {free['im']:.4f}"
            + ("" if target is None else f"; target accuracy {target:.4f}")
        )
        if "auto" in adaptation:
            items.append(f"<b>--adapt auto</b>: {_e(adaptation['auto']['reason'])}")
        items += [
            f"<b>source-risk guard</b> ({_e(decision['phase'])}): {_e(decision['reason'])}"
            for decision in adaptation.get("guard", [])
        ]
    items += _few_label_items(summary, metrics)
    if not items:
        return ""
    return "<h2>Decisions</h2><ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _metrics_table(metrics: dict, kind: type) -> str:
    rows = []
    for split in ("val", "test", "target_test"):
        if split not in metrics:
            continue
        for name, values in report_of(kind).metric_parts(split, metrics[split]):
            shown = {
                k: v
                for k, v in values.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            if "calibration" in values:
                shown["expected calibration error"] = values["calibration"]["ece"]
            cells = ", ".join(f"{k} {number(v)}" for k, v in shown.items())
            rows.append((name, cells))
    estimate = metrics.get("cross_validation")
    if estimate is not None:
        for arm, values in estimate["arms"].items():
            cells = ", ".join(
                f"{name} {number(v['mean'])} ± {number(v['std'])}" for name, v in values.items()
            )
            rows.append((f"{estimate['folds']}-fold cross-validation, {arm}", cells))
    return "<h2>Metrics</h2>" + pair_table(rows) if rows else ""


def _few_label_items(summary: dict, metrics: dict) -> list[str]:
    """The decisions of a fit with few labels (no split, the cross-validated estimate) and
    with unlabelled data (which model was kept)."""
    items = []
    if "few_labels" in summary:
        items.append(f"<b>no validation split</b>: {_e(summary['few_labels']['reason'])}")
    estimate = metrics.get("cross_validation")
    if estimate is not None:
        accuracy = estimate["metrics"]["accuracy"]
        folds = " ".join(f"{v:.3f}" for v in accuracy["per_fold"])
        items.append(
            f"<b>estimate: {estimate['folds']}-fold cross-validated accuracy "
            f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f}</b> of the {_e(estimate['model'])} "
            f"model (per fold: {folds})"
        )
    if "semi_supervised" in metrics:
        record = metrics["semi_supervised"]
        items.append(
            f"<b>unlabelled data {_e(record['unlabeled'])}</b> ({record['unlabeled_items']} "
            f"items, {_e(record['method'])}): {_e(record['reason'])}"
        )
    return items


def _curves(history: list[dict], headline: str = "score") -> str:
    """Losses and the validation score (the kind's ``headline`` metric) of every epoch."""
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
        scores.set(xlabel="epoch (all phases)", ylabel=headline, title="validation score")
        losses.legend(fontsize=7)
        scores.legend(fontsize=7)

    image = figure(draw, 11, 3.8)
    for row in history:
        row.pop("_step", None)
    shown = f"phases: {', '.join(phases)}; validation score: {headline}"
    return f"<h2>Learning curves</h2><p class='muted'>{_e(shown)}</p>{image}"


def _settings(config: dict) -> str:
    settings = config.get("config", {})
    return "<h2>Settings</h2>" + pair_table([(k, settings[k]) for k in sorted(settings)])
