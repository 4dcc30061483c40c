"""The ``graft`` command line: models, fit, evaluate, predict."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from graft.errors import GraftError

app = typer.Typer(
    help="Adapt a pretrained image or text model to your labelled data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=errors, show_time=False, show_path=False)],
    )
    try:
        app()
    except GraftError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False)
        raise SystemExit(2) from None


@app.command()
def models() -> None:
    """List the registered backbones, their size and whether they are available offline."""
    from graft.backbones import list_backbones
    from graft.backbones.registry import count_parameters

    table = Table(
        title="Registered backbones (any timm name, hf:ORG/NAME or a local folder also work)"
    )
    for column in ("name", "modality", "parameters", "offline", "weights"):
        table.add_column(column)
    for entry in list_backbones():
        available = entry.is_available()
        table.add_row(
            entry.name,
            entry.modality,
            f"{count_parameters(entry) / 1e6:.1f}M",
            "[green]yes[/]" if available else "[red]no[/]",
            entry.description,
        )
    console.print(table)


def _default_run_dir() -> Path:
    return Path("runs") / datetime.now().strftime("fit-%Y%m%d-%H%M%S")


@app.command()
def fit(
    data: Annotated[
        Path,
        typer.Argument(help="Class folders, train/val/test folders, or a CSV/TSV/JSONL table."),
    ],
    val: Annotated[
        Path | None,
        typer.Option(
            help="Validation data (default: val/ beside train/, else a stratified split)."
        ),
    ] = None,
    test: Annotated[Path | None, typer.Option(help="Test data, evaluated once at the end.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Backbone: a name from `graft models`, timm:NAME, hf:ORG/NAME or a folder."
        ),
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="fine-tune, feature-extract, full, partial or gradual.")
    ] = "fine-tune",
    epochs: Annotated[
        int | None,
        typer.Option(help="Epochs of the main phase (fine-tune: 3, feature-extract: 30)."),
    ] = None,
    head_epochs: Annotated[int, typer.Option(help="Epochs of fine-tune's head-only phase.")] = 30,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Learning rate of the head.")] = 3e-3,
    backbone_lr_mult: Annotated[
        float | None, typer.Option(help="Backbone learning rate as a fraction of --lr.")
    ] = None,
    layer_decay: Annotated[
        float,
        typer.Option(
            help="Each backbone group down from the top trains at this times the rate above."
        ),
    ] = 1.0,
    unfreeze: Annotated[
        int, typer.Option(help="Backbone groups trained by --strategy partial.")
    ] = 2,
    unfreeze_every: Annotated[
        int, typer.Option(help="Epochs between unfreezing steps of --strategy gradual.")
    ] = 1,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the loss.")] = 0.1,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.01,
    grad_clip: Annotated[float | None, typer.Option(help="Clip the gradient norm.")] = None,
    class_weights: Annotated[
        str | None, typer.Option(help="auto: weigh the loss by inverse class frequency.")
    ] = None,
    sampler: Annotated[
        str | None, typer.Option(help="balanced: draw every class equally often.")
    ] = None,
    augment: Annotated[
        str, typer.Option(help="Image augmentation while the backbone trains: none, light, strong.")
    ] = "light",
    views: Annotated[
        int,
        typer.Option(help="Cached views per training image for the head (1 plain + augmented)."),
    ] = 1,
    seed: Annotated[
        int, typer.Option(help="Seed of the split, initialisation and data order.")
    ] = 0,
    val_fraction: Annotated[
        float, typer.Option(help="Share of each class held out when no validation data is given.")
    ] = 0.2,
    text_column: Annotated[str | None, typer.Option(help="Table column holding the texts.")] = None,
    image_column: Annotated[
        str | None, typer.Option(help="Table column holding image paths.")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Table column holding the labels.")
    ] = None,
    num_workers: Annotated[int | None, typer.Option(help="Data-loading processes.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/fit-DATE-TIME).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Allow writing into a non-empty run directory.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Train a new head (and, with fine-tune, the backbone) on DATA and write a run directory."""
    import graft

    run_dir = out or _default_run_dir()
    fitted = graft.fit(
        data,
        val,
        test,
        out=run_dir,
        overwrite=overwrite,
        model=model,
        strategy=strategy,
        epochs=epochs,
        head_epochs=head_epochs,
        batch_size=batch_size,
        lr=lr,
        backbone_lr_mult=backbone_lr_mult,
        layer_decay=layer_decay,
        label_smoothing=label_smoothing,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        class_weights=class_weights,
        sampler=sampler,
        augment=augment,
        views=views,
        unfreeze=unfreeze,
        unfreeze_every=unfreeze_every,
        seed=seed,
        val_fraction=val_fraction,
        num_workers=num_workers,
        progress=progress,
        text_column=text_column,
        image_column=image_column,
        label_column=label_column,
    )
    summary = fitted.summary_
    examples = ", ".join(f"{n} {c}" for n, c in summary["examples"].items())
    console.print(
        f"\n[bold]{fitted.config.strategy}[/] of [bold]{fitted.config.model}[/] on {examples} "
        f"examples, {len(fitted.classes_)} classes, in {summary['seconds']['total']:.1f}s"
    )
    if summary["skipped_count"]:
        console.print(
            f"[yellow]{summary['skipped_count']} unreadable input(s) skipped[/] "
            "(listed in summary.json)"
        )
    settings = {k: v for k, v in fitted.config.to_dict().items() if k not in ("progress",)}
    console.print(
        "settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), highlight=False
    )
    cache = summary["feature_cache"]
    console.print(f"feature cache: {cache['hits']} hits, {cache['misses']} computed")
    for split, metrics in fitted.metrics_.items():
        _print_metrics(metrics, f"{split} metrics", fitted.classes_)
    console.print(f"run saved to [bold]{run_dir}[/]")


def _print_metrics(metrics: dict, title: str, classes: list[str]) -> None:
    table = Table(
        title=f"{title}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
        f"({metrics['num_examples']} examples)"
    )
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name in classes:
        row = metrics["per_class"][name]
        table.add_row(
            name,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    console.print(table)


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory written by `graft fit`.")],
    data: Annotated[Path, typer.Argument(help="Labelled data, in any form `graft fit` accepts.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    text_column: Annotated[str | None, typer.Option()] = None,
    image_column: Annotated[str | None, typer.Option()] = None,
    label_column: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Evaluate a trained model on labelled DATA."""
    import graft

    model = graft.load(run)
    metrics = model.evaluate(
        data, text_column=text_column, image_column=image_column, label_column=label_column
    )
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        _print_metrics(metrics, str(data), model.classes_)


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run directory written by `graft fit`.")],
    inputs: Annotated[
        list[str], typer.Argument(help="Image files or folders, a CSV/TSV/JSONL table, or texts.")
    ],
    top_k: Annotated[int, typer.Option(help="How many labels to show per input.")] = 1,
    column: Annotated[str | None, typer.Option(help="Table column holding the inputs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Predict the labels of INPUTS with a trained model."""
    import graft
    from graft.data import load_inputs

    model = graft.load(run)
    items = load_inputs(inputs, model.backbone_.modality, column=column)
    answers = model.predict_top_k(items, k=min(top_k, len(model.classes_)))
    if as_json:
        for item, pairs in zip(items, answers, strict=True):
            print(
                json.dumps(
                    {
                        "input": item,
                        "predictions": [
                            {"label": lab, "probability": round(p, 6)} for lab, p in pairs
                        ],
                    }
                )
            )
        return
    table = Table()
    table.add_column("input", overflow="fold")
    table.add_column("prediction")
    for item, pairs in zip(items, answers, strict=True):
        table.add_row(
            item if len(item) < 120 else item[:117] + "...",
            ", ".join(f"{lab} ({p:.3f})" for lab, p in pairs),
        )
    console.print(table)
