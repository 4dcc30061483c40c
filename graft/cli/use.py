"""The commands that use what exists: ``models`` lists the backbones; ``evaluate``,
``predict``, ``export``, ``report`` and ``serve`` work on a run directory. Each asks the run's
task how to print or answer (:mod:`graft.tasks`); heavy imports wait until a command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from graft.cli.app import app, console
from graft.cli.output import print_predictions, print_task_metrics
from graft.errors import ConfigError, RunError

Run = Annotated[Path, typer.Argument(help="A run directory written by `graft fit`.")]


@app.command()
def models() -> None:
    """List the registered backbones, their size and whether they are available offline."""
    from graft.backbones.catalogue import list_backbones

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
            f"{entry.parameters / 1e6:.1f}M",
            "[green]yes[/]" if available else "[red]no[/]",
            entry.description,
        )
    console.print(table)


@app.command()
def evaluate(
    run: Run,
    data: Annotated[Path, typer.Argument(help="Labelled data, in any form `graft fit` accepts.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    text_column: Annotated[str | None, typer.Option()] = None,
    image_column: Annotated[str | None, typer.Option()] = None,
    label_column: Annotated[str | None, typer.Option()] = None,
    audio_column: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Evaluate a trained model on labelled DATA."""
    from graft.api import load

    model = load(run)
    columns = dict(text_column=text_column, image_column=image_column, audio_column=audio_column)
    metrics = model.evaluate(data, label_column=label_column, **columns)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        print_task_metrics(model.fitted_task_, metrics, str(data))


@app.command()
def predict(
    run: Run,
    inputs: Annotated[
        list[str],
        typer.Argument(help="Image or audio files or folders, a CSV/TSV/JSONL table, or texts."),
    ],
    top_k: Annotated[
        int, typer.Option(help="How many classes to show per input (multiclass models).")
    ] = 1,
    column: Annotated[str | None, typer.Option(help="Table column holding the inputs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    engine: Annotated[
        str,
        typer.Option(help="torch, or onnx / torchscript: the model `graft export` wrote."),
    ] = "torch",
    export: Annotated[
        Path | None, typer.Option(help="The exported model's folder (default: RUN/export).")
    ] = None,
    score_threshold: Annotated[
        float | None,
        typer.Option(help="Detection: the score a box must reach to be shown (default 0.5)."),
    ] = None,
    draw: Annotated[
        Path | None,
        typer.Option(help="Detection: write each image with its boxes drawn into this folder."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Segmentation: write each image's mask (a palette PNG) to this folder."),
    ] = None,
    overlay: Annotated[
        bool, typer.Option(help="Segmentation, with --out: also each image with its mask blended.")
    ] = False,
) -> None:
    """Predict the labels of INPUTS with a trained model: the top classes, every label above
    its threshold (multilabel), the value (regression), the boxes (detection), or the class of
    every pixel (segmentation: --out writes the masks)."""
    from graft.api import load

    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    if overlay and out is None:
        raise ConfigError("--overlay writes beside the masks: give --out FOLDER too")
    model = load(run, engine=engine, export=export)
    items = model.fitted_task_.read_inputs(inputs, model.backbone_.modality, column=column)
    options = {"score_threshold": score_threshold, "draw": draw}  # kinds that take them
    if out is not None:  # the task writes its answers as files (segmentation masks)
        records = model.write_predictions(items, out, overlay, **options)
    else:
        records = model.prediction_records(items, top_k, **options)
    drawn = None if draw is None else model.fitted_task_.draw_predictions(items, records, draw)
    if as_json:
        for record in records:
            print(json.dumps(record))
    else:
        print_predictions(records, model.fitted_task_)
        if drawn is not None:
            console.print(f"{len(drawn)} image(s) drawn into [bold]{draw}[/]")
        if out is not None:
            console.print(f"{len(records)} mask(s) written into [bold]{out}[/]")


@app.command("export")
def export_command(
    run: Run,
    format: Annotated[str, typer.Option(help="onnx or torchscript.")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="Folder to write (default: RUN/export).")] = None,
    check: Annotated[
        str | None,
        typer.Option(help="Real inputs for the parity check (default: the run's own data)."),
    ] = None,
    column: Annotated[str | None, typer.Option(help="Table column of --check's inputs.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing export folder.")] = False,
) -> None:
    """Export a trained model as ONNX or TorchScript with its preprocessing, after checking
    that it gives the PyTorch model's logits on real inputs."""
    from graft.api import load
    from graft.export.exporter import export_model, parity_items

    model = load(run)
    items = parity_items(model, run, check, column)
    folder = out or run / "export"
    if folder.expanduser().resolve() == run.expanduser().resolve():
        raise RunError(
            f"{run}: --out is the run directory itself: choose a folder inside or beside it"
        )
    record = export_model(model, items, folder, format, overwrite)
    parity = record["parity"]
    size = (folder / record["file"]).stat().st_size / 2**20
    console.print(
        f"{format} model written to [bold]{folder / record['file']}[/] ({size:.1f} MiB); "
        f"parity on {parity['inputs']} real inputs: max |logit difference| "
        f"{parity['max_abs_logit_difference']:.2e} (tolerance {parity['tolerance']:g})",
        highlight=False,
    )


@app.command()
def report(run: Run) -> None:
    """Rebuild RUN/report.html: learning curves, metrics, confusion matrix, calibration, the
    most confidently wrong examples, the settings and the decisions graft made."""
    from graft.report.page import write_report

    if not (run / "config.json").is_file():
        raise RunError(f"{run}: not a graft run (config.json is missing)")
    console.print(f"report written to [bold]{write_report(run)}[/]")


@app.command("serve")
def serve_command(
    run: Run,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    top_k: Annotated[int, typer.Option(help="Classes per answer unless a request asks.")] = 5,
    max_batch: Annotated[int, typer.Option(help="Most inputs batched into one forward.")] = 32,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body, in MiB.")] = 10.0,
) -> None:
    """Serve RUN over HTTP: POST /predict, GET /health, and a web page at /."""
    try:
        from graft.serve import serve
    except ImportError as error:
        raise ConfigError(f"graft serve needs {error.name}: pip install 'graft[serve]'") from None
    for name, value in (("--top-k", top_k), ("--max-batch", max_batch), ("--port", port)):
        if value < (0 if name == "--port" else 1):
            raise ConfigError(f"{name} must be positive, got {value}")
    if not max_upload_mb > 0:
        raise ConfigError(f"--max-upload-mb must be positive, got {max_upload_mb}")
    serve(
        run,
        host=host,
        port=port,
        top_k=top_k,
        max_batch=max_batch,
        max_upload_bytes=int(max_upload_mb * 2**20),
    )
