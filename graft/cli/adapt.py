"""``graft adapt RUN --target-unlabeled TARGET``: adapt a finished run to new unlabelled data
without its source data (:mod:`graft.adaptation.source_free`), writing a new run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from graft.cli.app import app, console


@app.command()
def adapt(
    run: Annotated[Path, typer.Argument(help="A run directory written by `graft fit`.")],
    target_unlabeled: Annotated[
        Path,
        typer.Option(help="Unlabelled data of the domain to serve (a folder or table)."),
    ],
    out: Annotated[
        Path | None, typer.Option(help="The new run directory (default: RUN-adapted).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Allow writing into a non-empty run directory.")
    ] = False,
    method: Annotated[
        str,
        typer.Option(
            "--adapt", help="self-training (SHOT), mcc or mcc+self-training: target data only."
        ),
    ] = "self-training",
    epochs: Annotated[int, typer.Option(help="Passes over the target data.")] = 3,
    adapt_weight: Annotated[float, typer.Option(help="Weight of the objective.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the run's).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Examples per step (default: the run's).")
    ] = None,
    target_test: Annotated[
        Path | None,
        typer.Option(help="Labelled target data: evaluated at the end, never used to choose."),
    ] = None,
    column: Annotated[
        str | None, typer.Option(help="Table column holding the target inputs.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Adapt RUN's model to unlabelled TARGET data without the source data it was trained on
    (SHOT: the head kept, the backbone trained on the target alone); writes a new run."""
    from graft.api import adapt as adapt_run

    out = out or run.with_name(f"{run.name}-adapted")
    model = adapt_run(
        run,
        target_unlabeled,
        out=out,
        overwrite=overwrite,
        method=method,
        target_test=target_test,
        column=column,
        epochs=epochs,
        weight=adapt_weight,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
    )
    console.print(source_free_table(model.metrics_, run))
    console.print(f"adapted run written to [bold]{out}[/]")


def source_free_table(metrics: dict, run: Path) -> Table:
    """The label-free scores before and after, what was kept, and the target test accuracy."""
    record = metrics["adaptation"]
    table = Table(
        title=f"{run} adapted to {record['target']} ({record['target_items']} items) without "
        f"source data: [bold]{record['method']}[/]"
    )
    table.add_column("measure")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    before, after = record["label_free_before"], record["label_free"]
    table.add_row("target information maximisation (higher: better)", *_pair(before, after, "im"))
    table.add_row("target prediction entropy", *_pair(before, after, "entropy"))
    table.add_row("kept", "", record["kept"])
    if "target_test" in metrics:
        table.add_row("target test accuracy", "", f"{metrics['target_test']['accuracy']:.4f}")
    return table


def _pair(before: dict, after: dict, key: str) -> tuple[str, str]:
    return f"{before[key]:.4f}", f"{after[key]:.4f}"
