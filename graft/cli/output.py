"""What the commands print: a fit's summary, metrics tables, transfer and adaptation figures,
predictions. Tables of metrics come from the fitted task (:meth:`Task.metrics_tables`), so
this module draws them without knowing the kind of task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from graft.cli.app import console
from graft.tasks.capabilities import SeveralTasks, prediction_text


def or_na(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def draw(spec: Any) -> Table:
    """A rich table of a :class:`graft.tasks.base.MetricsTable`."""
    table = Table(title=spec.title)
    for column in spec.columns:
        table.add_column(column, justify="left" if column in spec.left else "right")
    for row in spec.rows:
        table.add_row(*row)
    return table


def report_fit(fitted: Any, run_dir: Path) -> None:
    """A finished fit: what trained on what, its settings, decisions and metrics."""
    summary, task = fitted.summary_, fitted.fitted_task_
    examples = ", ".join(f"{n} {c}" for n, c in summary["examples"].items())
    console.print(
        f"\n[bold]{fitted.strategy_}[/] of [bold]{fitted.model_}[/] on {examples} "
        f"examples, {task.describe()}, in {summary['seconds']['total']:.1f}s"
    )
    if isinstance(task, SeveralTasks):
        print_tasks(fitted)
    else:
        inferred = " (inferred from the labels)" if fitted.config.task == "auto" else ""
        console.print(f"task: [bold]{task.kind}[/]{inferred}")
    if summary["skipped_count"]:
        console.print(
            f"[yellow]{summary['skipped_count']} unreadable input(s) skipped[/] "
            "(listed in summary.json)"
        )
    settings = fit_settings(fitted)
    console.print(
        "settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), highlight=False
    )
    cache = summary["feature_cache"]
    console.print(f"feature cache: {cache['hits']} hits, {cache['misses']} computed")
    if "advice" in summary:
        console.print(
            f"strategy auto chose [bold]{summary['advice']['strategy']}[/]: "
            f"{summary['advice']['reason']}",
            highlight=False,
        )
    print_few_labels(fitted.metrics_, summary)
    for split in ("val", "test"):
        if split in fitted.metrics_:
            print_task_metrics(task, fitted.metrics_[split], f"{split} metrics")
    if "transfer" in fitted.metrics_:
        print_transfer(fitted.metrics_["transfer"])
    if "adaptation" in fitted.metrics_:
        print_adaptation(fitted.metrics_)
    console.print(f"run saved to [bold]{run_dir}[/] (report: {run_dir / 'report.html'})")


def fit_settings(fitted: Any) -> dict[str, Any]:
    """The settings a fit used, as it prints them: the options every fit has and those of
    its kind of task (``config_.to_dict()``), less the progress bar, and the clip length for
    audio only."""
    settings = fitted.config_.to_dict()
    settings.pop("progress", None)
    if getattr(fitted.backbone_, "modality", None) != "audio":
        settings.pop("clip_seconds", None)
    return settings


def print_task_metrics(task: Any, metrics: dict, title: str) -> None:
    """One split's metrics of a fitted ``task`` (each task's, for several)."""
    if not isinstance(task, SeveralTasks):
        for spec in task.metrics_tables(metrics, task.classes, title):
            console.print(draw(spec))
        return
    for name, values in metrics.items():
        part = task.tasks[name]
        for spec in part.metrics_tables(values, part.classes, f"{title}, task {name}"):
            console.print(draw(spec))


def print_few_labels(metrics: dict, summary: dict) -> None:
    """With few labels, why no validation split was held out and the cross-validated
    estimate; with unlabelled data, which model the fit kept and why."""
    if "few_labels" in summary:
        console.print(summary["few_labels"]["reason"], highlight=False)
    estimate = metrics.get("cross_validation")
    if estimate is not None:
        table = Table(
            title=f"{estimate['folds']}-fold cross-validated estimate of the "
            f"{estimate['model']} model (mean ± std over folds)"
        )
        for column in ("model", "accuracy", "macro-F1", "per fold (accuracy)"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for arm, values in estimate["arms"].items():
            accuracy, f1 = values["accuracy"], values["macro_f1"]
            table.add_row(
                arm + (" (kept)" if arm == estimate["model"] else ""),
                f"{accuracy['mean']:.4f} ± {accuracy['std']:.4f}",
                f"{f1['mean']:.4f} ± {f1['std']:.4f}",
                " ".join(f"{v:.3f}" for v in accuracy["per_fold"]),
            )
        console.print(table)
    if "semi_supervised" in metrics:
        console.print(f"unlabelled data: {metrics['semi_supervised']['reason']}", highlight=False)


def print_tasks(fitted: Any) -> None:
    """The tasks of a multi-task fit, their labelled rows and the weights of their losses."""
    labelled, weighting = fitted.summary_["labelled"], fitted.summary_["task_weights"]
    mode = "learned by uncertainty" if weighting["mode"] == "uncertainty" else "fixed"
    table = Table(title=f"tasks (loss weights {mode})")
    for column in ("task", "kind", "", "labelled rows", "weight"):
        table.add_column(
            column, justify="right" if column in ("labelled rows", "weight") else "left"
        )
    for name, task in fitted.fitted_task_.tasks.items():
        rows = ", ".join(f"{split} {counts[name]}" for split, counts in labelled.items())
        weight = f"{weighting['weights'][name]:.3f}"
        table.add_row(name, task.kind, task.describe(), rows, weight)
    console.print(table)


def print_adaptation(metrics: dict) -> None:
    adaptation = metrics["adaptation"]
    gap, scores = adaptation["domain_gap"], adaptation["label_free"]
    table = Table(
        title=f"target domain {adaptation['target']} ({adaptation['target_items']} items), "
        f"adaptation: [bold]{adaptation['method']}[/]"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    if "auto" in adaptation:
        table.add_row("--adapt auto chose", adaptation["auto"]["reason"])
    if gap is not None:  # none without source data (graft adapt)
        table.add_row(f"domain gap ({gap['measure']}) before training", f"{gap['before']:.3f}")
        table.add_row("domain gap after training", f"{gap['after']:.3f}")
    table.add_row("target information maximisation (higher: better)", f"{scores['im']:.4f}")
    table.add_row("target soft neighbourhood density", f"{scores['snd']:.4f}")
    table.add_row("target prediction entropy", f"{scores['entropy']:.4f}")
    if "target_test" in metrics:
        table.add_row("target test accuracy", f"{metrics['target_test']['accuracy']:.4f}")
    for decision in adaptation.get("guard", []):
        table.add_row(f"source-risk guard ({decision['phase']})", decision["reason"])
    console.print(table)


def print_transfer(transfer: dict) -> None:
    table = Table(
        title=f"transfer gain over {transfer['baseline']} ({transfer['epochs']} epochs, "
        f"{transfer['seconds']:.0f}s): [bold]{transfer['verdict']}[/]"
    )
    for column in ("split", f"pretrained {transfer['metric']}", "scratch", "gain"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in ("val", "test"):
        if split in transfer:
            row = transfer[split]
            scores = [or_na(row["pretrained"]), or_na(row["scratch"])]
            gain = "n/a" if row["gain"] is None else f"{row['gain']:+.4f}"
            table.add_row(split, *scores, gain)
    console.print(table)


def print_predictions(records: list[dict], fitted_task: Any = None) -> None:
    """``graft predict``'s table: each input and its answer (every task's, for several; as
    ``fitted_task`` shows it, when it has a way of its own:
    :func:`~graft.tasks.capabilities.prediction_text`)."""
    table = Table()
    table.add_column("input", overflow="fold")
    first = records[0] if records else {}
    tasks = list(first["predictions"]) if isinstance(first.get("predictions"), dict) else []
    for task in tasks:
        table.add_column(task)
    if not tasks:
        table.add_column("prediction")
    for record in records:
        item = record["input"] if isinstance(record["input"], str) else str(record["input"])
        shown = item if len(item) < 120 else item[:117] + "..."
        own = prediction_text(fitted_task, record) if fitted_task is not None else None
        if own is not None:
            table.add_row(shown, own)
        elif tasks:
            table.add_row(shown, *(_answer_text(record["predictions"][t]) for t in tasks))
        else:
            table.add_row(shown, _answer_text(record.get("predictions", record.get("prediction"))))
    console.print(table)


def _answer_text(answer: Any) -> str:
    if isinstance(answer, int | float):
        return f"{answer:.4g}"
    return ", ".join(f"{a['label']} ({a['probability']:.3f})" for a in answer) or "-"


def report_pretrain(result: Any) -> None:
    record = result.record
    items = record["data"]["items"]
    start = "from scratch" if record["init"] == "scratch" else "from its pretrained weights"
    console.print(
        f"\n[bold]{record['objective']}[/] pre-training of [bold]{record['model']}[/] {start} "
        f"on {items['train']} {record['modality']} items ({items['val']} held out), "
        f"in {record['seconds']:.1f}s",
        highlight=False,
    )
    table = Table(
        title=f"loss (held-out loss before training: {record['initial_val_loss']:.4f})",
        box=box.SIMPLE_HEAD,
    )
    for column in ("epoch", "train loss", "held-out loss", "seconds", "kept"):
        table.add_column(column, justify="right")
    for row in record["history"]:
        table.add_row(
            str(row["epoch"]),
            or_na(row.get("train_loss")),
            or_na(row.get("val_loss")),
            f"{row['seconds']:.1f}",
            "yes" if row.get("kept") else "",
        )
    console.print(table)
    preprocessing = record["preprocessing"]
    size = preprocessing.get("input_size") or preprocessing.get("max_length")
    console.print(
        f"backbone saved to [bold]{result.path / record['backbone']}[/] "
        f"({record['feature_dim']} features, input {size}); use it with: "
        f"graft fit DATA --model {result.path}",
        highlight=False,
    )
