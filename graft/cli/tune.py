"""``graft tune DATA --out DIR``: search the options of a fit with Optuna, here or on Ray
(:mod:`graft.tuning`). Every option of ``graft fit`` is offered too: one given on the command
line is fixed for every trial; the others are searched when the space has them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from graft.cli.app import app, console
from graft.cli.options import config_options
from graft.config import FitConfig
from graft.options import DATA

TUNING = "Search"
VAL_HELP = "Validation data (default: val/ beside train/, else a stratified split)."


def _option(help_text: str) -> Any:
    return typer.Option(help=help_text, rich_help_panel=TUNING)


OUT_HELP = (
    "The study's folder: trials, study.db, trials.csv, best, search.html (default: "
    "runs/tune-DATE-TIME); run the command again to continue the study."
)
SPACE_HELP = (
    "The search space: a YAML file, or feature-extract / fine-tune (default: the data's "
    "kind's own)."
)


@app.command("tune")
@config_options(FitConfig, kinds=True)
def tune_command(
    context: typer.Context,
    data: Annotated[Path, typer.Argument(help="Labelled data, in any form `graft fit` accepts.")],
    val: Annotated[Path | None, typer.Option(help=VAL_HELP, rich_help_panel=DATA)] = None,
    test: Annotated[
        Path | None, typer.Option(help="Test data, evaluated by each trial.", rich_help_panel=DATA)
    ] = None,
    text_column: Annotated[str | None, typer.Option(rich_help_panel=DATA)] = None,
    image_column: Annotated[str | None, typer.Option(rich_help_panel=DATA)] = None,
    label_column: Annotated[str | None, typer.Option(rich_help_panel=DATA)] = None,
    audio_column: Annotated[str | None, typer.Option(rich_help_panel=DATA)] = None,
    out: Annotated[Path | None, _option(OUT_HELP)] = None,
    trials: Annotated[
        int, _option("How many trials the study holds when done (earlier ones count).")
    ] = 10,
    time_limit: Annotated[float | None, _option("Seconds after which no new trial starts.")] = None,
    space: Annotated[str | None, _option(SPACE_HELP)] = None,
    pruner: Annotated[str, _option("Stop poor trials early: median, asha or none.")] = "median",
    ray: Annotated[
        bool, _option("Run the trials on Ray (RAY_ADDRESS, else a Ray on this machine).")
    ] = False,
    ray_address: Annotated[
        str | None, _option("The Ray cluster to run on (implies --ray).")
    ] = None,
    trial_resources: Annotated[
        str | None, _option("With --ray: each trial's share, like cpu=2,gpu=1 (default cpu=1).")
    ] = None,
    **options: Any,
) -> None:
    """Search the options of a fit of DATA with Optuna (TPE, pruned on the validation score
    each epoch): every trial is a run directory in --out, the best is linked as --out/best,
    and the table of trials is printed and saved. With --ray, the trials run on Ray Tune."""
    from graft.tuning.study import tune

    fixed = {  # what the command line gave: the rest is searched where the space has it
        name: value
        for name, value in options.items()
        if getattr(context.get_parameter_source(name), "name", None) == "COMMANDLINE"
    }
    columns = dict(text_column=text_column, image_column=image_column, label_column=label_column)
    folder = out or Path("runs") / datetime.now().strftime("tune-%Y%m%d-%H%M%S")
    result = tune(
        data,
        val,
        test,
        out=folder,
        trials=trials,
        time_limit=time_limit,
        space=space,
        pruner=pruner,
        ray=ray_address or ("auto" if ray else None),
        trial_resources=trial_resources,
        audio_column=audio_column,
        **columns,
        **fixed,
    )
    print_trials(result)


def print_trials(result: Any) -> None:
    """The table of trials, and where the best one and the files are."""
    from graft.tuning.table import describe

    table = Table(title=f"{len(result.rows)} trials ({result.backend})")
    for column in ("trial", "state", "score", "seconds", "epochs", "options"):
        table.add_column(column)
    for row in result.rows:
        score = "" if row["score"] is None else f"{row['score']:.4f}"
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        state = {"COMPLETE": "complete", "PRUNED": "[yellow]pruned[/]", "FAIL": "[red]failed[/]"}
        table.add_row(row["run_dir"], state.get(row["state"], row["state"]), score, seconds,
                      str(row["epochs_trained"]), describe(row))  # fmt: skip
    console.print(table)
    if result.best is not None:
        console.print(
            f"best: [bold]{result.out / 'best'}[/] -> {result.best['run_dir']} (validation "
            f"score {result.best['score']:.4f})",
            highlight=False,
        )
    else:
        console.print("[red]no trial completed[/]: see the errors above")
    console.print(f"table: {result.out / 'trials.csv'}; search page: {result.out / 'search.html'}")
