"""The commands that use what exists: ``models`` lists the backbones; ``evaluate``,
``predict``, ``export`` and ``report`` work on a run directory (``serve``: :mod:`.serve`).
Each asks the run's task how to print or answer (:mod:`graft.tasks`); heavy imports wait until
a command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from graft.cli.app import app, console
from graft.cli.output import print_predictions, print_task_metrics
from graft.errors import ConfigError, RunError
from graft.tasks.capabilities import draw_predictions

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


Labels = Annotated[
    str | None,
    typer.Option(
        help="Zero-shot classification: RUN is a text model's name (minilm, hf:...) and these "
        "are the classes, comma-separated or a file with one 'class: description' a line."
    ),
]
LabelTemplate = Annotated[
    str | None,
    typer.Option(
        help="With --labels: the sentence each class is put in (default 'This text is about "
        "{label}.')."
    ),
]


def _open_model(run: Path, engine: str, export: Path | None, labels, label_template):
    """The run's model (:func:`graft.load`), or with ``labels`` the zero-shot classifier of
    those classes on the text model ``run`` names (:func:`graft.zero_shot`)."""
    from graft.api import load, zero_shot

    if labels is None:
        if label_template is not None:
            raise ConfigError("--label-template goes with --labels (zero-shot classification)")
        return load(run, engine=engine, export=export)
    if (run / "config.json").is_file():
        raise ConfigError(
            f"{run} is a run: with --labels, name a pretrained text model (minilm, hf:...)"
        )
    if engine not in ("auto", "torch") or export is not None:
        raise ConfigError("a zero-shot classifier predicts with torch: leave out --engine/--export")
    return zero_shot(labels, str(run), label_template=label_template)


@app.command()
def evaluate(
    run: Run,
    data: Annotated[Path, typer.Argument(help="Labelled data, in any form `graft fit` accepts.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    text_column: Annotated[str | None, typer.Option()] = None,
    image_column: Annotated[str | None, typer.Option()] = None,
    label_column: Annotated[str | None, typer.Option()] = None,
    audio_column: Annotated[str | None, typer.Option()] = None,
    engine: Annotated[
        str, typer.Option(help="auto (the run's current export if any), torch, onnx, torchscript.")
    ] = "auto",
    task: Annotated[
        str | None,
        typer.Option(
            help="similarity, transcription: evaluate a pretrained model (RUN is its name)."
        ),
    ] = None,
    labels: Labels = None,
    label_template: LabelTemplate = None,
) -> None:
    """Evaluate a trained model on labelled DATA (a similarity run or model: on BEIR qrels;
    with --labels, a text model as a zero-shot classifier of those classes)."""
    from graft.cli.search import evaluate_retrieval

    if evaluate_retrieval(str(run), data, task, as_json):
        return
    if _evaluate_pretrained(str(run), data, task, as_json):
        return
    model = _open_model(run, engine, None, labels, label_template)
    columns = dict(text_column=text_column, image_column=image_column, audio_column=audio_column)
    metrics = model.evaluate(data, label_column=label_column, **columns)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        _print_engine(model)
        print_task_metrics(model.fitted_task_, metrics, str(data))


def _evaluate_pretrained(run: str, data: Path, task: str | None, as_json: bool) -> bool:
    """``graft evaluate MODEL DATA --task KIND`` of a kind that scores a pretrained model as
    it is (:class:`~graft.tasks.capabilities.EvaluatesPretrained`): printed, True; False for
    a run directory or another kind."""
    if task is None or (Path(run).expanduser() / "config.json").is_file():
        return False
    from graft.tasks import task_class
    from graft.tasks.capabilities import EvaluatesPretrained

    kind = task_class(task)
    if not issubclass(kind, EvaluatesPretrained):
        return False
    fitted, metrics = kind.evaluate_pretrained(run, data)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        print_task_metrics(fitted, metrics, f"{run} (pretrained) on {data}")
    return True


Inputs = Annotated[
    list[str] | None,
    typer.Argument(help="Image or audio files or folders, a CSV/TSV/JSONL table, or texts."),
]
Question = Annotated[
    str | None, typer.Option(help="Question answering: a question about --context.")
]
Context = Annotated[
    str | None, typer.Option(help="Question answering: the passage --question is about.")
]


TopK = Annotated[int, typer.Option(help="How many classes to show per input (multiclass models).")]
Overlay = Annotated[
    bool, typer.Option(help="Segmentation, with --out: also each image with its mask blended.")
]
BatchSize = Annotated[
    int | None, typer.Option(help="With --out FILE: inputs per batch (default: twice the fit's).")
]
OverwriteFile = Annotated[
    bool, typer.Option(help="With --out FILE: replace a file that is not this prediction's.")
]
RayFlag = Annotated[
    bool, typer.Option(help="With --out FILE: predict on Ray Data actors (RAY_ADDRESS, else here).")
]
RayAddress = Annotated[
    str | None, typer.Option(help="With --out FILE: the Ray cluster to predict on (implies --ray).")
]
RayWorkers = Annotated[
    int | None, typer.Option(help="With --ray: model actors (default: one per GPU, else per CPU).")
]


def _on_ray(ray: bool, address: str | None, workers: int | None, out: Path | None) -> tuple | None:
    """``predict --ray``'s (address, workers), or None without --ray."""
    from graft.batch_prediction import is_table_output

    if not (ray or address):
        return None
    if out is None or not is_table_output(out):
        raise ConfigError("--ray writes a predictions table: give --out FILE.csv|.jsonl|.parquet")
    return address or "auto", workers


def _with_question(inputs: list | None, question: str | None, context: str | None) -> list:
    """``graft predict``'s inputs, with ``--question`` about ``--context`` as one more."""
    if (question is None) != (context is None):
        raise ConfigError("give --question and --context together")
    inputs = [*(inputs or []), *([(question, context)] if question is not None else [])]
    if not inputs:
        raise ConfigError("nothing to predict: give INPUTS (or --question and --context)")
    return inputs


@app.command()
def predict(
    run: Run,
    inputs: Inputs = None,
    question: Question = None,
    context: Context = None,
    top_k: TopK = 1,
    column: Annotated[str | None, typer.Option(help="Table column holding the inputs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="auto (the run's export when it has a current one, else torch), torch, or "
            "onnx / torchscript: the model `graft export` wrote."
        ),
    ] = "auto",
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
        typer.Option(
            help="A .csv, .jsonl or .parquet file: stream every answer into it (resumable); "
            "segmentation: a folder for each image's mask (a palette PNG)."
        ),
    ] = None,
    overlay: Overlay = False,
    batch_size: BatchSize = None,
    overwrite: OverwriteFile = False,
    ray: RayFlag = False,
    ray_address: RayAddress = None,
    ray_workers: RayWorkers = None,
    labels: Labels = None,
    label_template: LabelTemplate = None,
) -> None:
    """Predict the labels of INPUTS with a trained model: the top classes, every label above
    its threshold (multilabel), the value (regression), the boxes (detection), or the class of
    every pixel (segmentation: --out writes the masks). --out predictions.csv|.jsonl|.parquet
    streams any number of inputs to a file and resumes an interrupted run where it stopped.
    With --labels, RUN is a text model's name and the classes come from their names alone."""
    from graft.batch_prediction import is_table_output

    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    if overlay and out is None:
        raise ConfigError("--overlay writes beside the masks: give --out FOLDER too")
    inputs = _with_question(inputs, question, context)
    model = _open_model(run, engine, export, labels, label_template)
    options = {"score_threshold": score_threshold, "draw": draw}  # kinds that take them
    on_ray = _on_ray(ray, ray_address, ray_workers, out)
    if out is not None and is_table_output(out):
        _predict_to_file(model, inputs, out, column, top_k, batch_size, overwrite, options, on_ray)
        return
    items = model.fitted_task_.read_inputs(inputs, model.backbone_.modality, column=column)
    if out is not None:  # the task writes its answers as files (segmentation masks)
        records = model.write_predictions(items, out, overlay, **options)
    else:
        records = model.prediction_records(items, top_k, **options)
    drawn = None if draw is None else draw_predictions(model.fitted_task_, items, records, draw)
    if as_json:
        for record in records:
            print(json.dumps(record))
        return
    _print_engine(model)
    print_predictions(records, model.fitted_task_)
    if drawn is not None:
        console.print(f"{len(drawn)} image(s) drawn into [bold]{draw}[/]")
    if out is not None:
        console.print(f"{len(records)} mask(s) written into [bold]{out}[/]")


def _print_engine(model) -> None:
    from graft.runs.persistence import describe_engine

    console.print(f"engine: {describe_engine(model)}", highlight=False, soft_wrap=True)


def _predict_to_file(
    model, inputs, out, column, top_k, batch_size, overwrite, options, ray=None
) -> None:
    """``graft predict --out FILE``: every answer streamed into a table, resumable; with
    ``ray`` (address, workers), predicted by Ray Data actors."""
    import functools

    from graft.batch_prediction import predict_to_file

    _print_engine(model)
    if options["draw"] is not None:
        raise ConfigError("--draw draws on the terminal's answers: leave out --out FILE")
    if ray is not None:
        from graft.ray_prediction import predict_on_ray

        predict_to_file = functools.partial(predict_on_ray, address=ray[0], workers=ray[1])
    result = predict_to_file(
        model,
        inputs,
        out,
        column=column,
        top_k=top_k,
        batch_size=batch_size,
        overwrite=overwrite,
        progress=console.is_terminal,
        **options,
    )
    resumed = f", {result.resumed} were there from an interrupted run" if result.resumed else ""
    console.print(
        f"{result.rows} predictions in [bold]{out}[/]{resumed}; {result.predicted} predicted "
        f"in {result.seconds:.1f}s ({result.throughput:.1f} inputs/s)",
        highlight=False,
    )


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
    quantize: Annotated[
        str | None,
        typer.Option(help="int8: quantize the ONNX model, kept if accurate within --tolerance."),
    ] = None,
    calibration: Annotated[
        str,
        typer.Option(
            help="auto (dynamic for text, static for images and audio), dynamic, or static: "
            "calibrated on the run's training inputs."
        ),
    ] = "auto",
    tolerance: Annotated[
        float,
        typer.Option(help="Validation accuracy points int8 may lose against float (default 1)."),
    ] = 1.0,
) -> None:
    """Export a trained model as ONNX or TorchScript with its preprocessing, after checking
    that it gives the PyTorch model's logits on real inputs; with --quantize int8, quantized
    and refused when it loses more than --tolerance points of validation accuracy."""
    from graft.api import load
    from graft.export.exporter import export_model, parity_items

    model = load(run, engine="torch")
    finish = None
    if quantize is not None:
        finish = _quantizer(model, run, quantize, calibration, format, tolerance)
    items = parity_items(model, run, check, column)
    folder = out or run / "export"
    if folder.expanduser().resolve() == run.expanduser().resolve():
        raise RunError(
            f"{run}: --out is the run directory itself: choose a folder inside or beside it"
        )
    record = export_model(model, items, folder, format, overwrite, finish)
    parity = record["parity"]
    size = (folder / record["file"]).stat().st_size / 2**20
    console.print(
        f"{format} model written to [bold]{folder / record['file']}[/] ({size:.1f} MiB); "
        f"parity on {parity['inputs']} real inputs: max |logit difference| "
        f"{parity['max_abs_logit_difference']:.2e} (tolerance {parity['tolerance']:g})",
        highlight=False,
    )
    if "quantization" in record:
        from graft.export.quantize import describe

        console.print(
            f"{describe(record['quantization'])}; it answers from [bold]{folder}[/]",
            highlight=False,
        )


def _quantizer(model, run: Path, dtype: str, calibration: str, format: str, tolerance: float):
    """The step that quantizes an export before it is published (options checked first)."""
    from graft.export.quantize import check_quantization, quantize_export, validation_data

    calibration = check_quantization(model, dtype, calibration, format, tolerance)
    data = validation_data(model, run)
    return lambda folder, record: quantize_export(
        model, folder, record, data, calibration, tolerance
    )


@app.command()
def report(run: Run) -> None:
    """Rebuild RUN/report.html: learning curves, metrics, confusion matrix, calibration, the
    most confidently wrong examples, the settings and the decisions graft made."""
    from graft.report.page import write_report

    if not (run / "config.json").is_file():
        raise RunError(f"{run}: not a graft run (config.json is missing)")
    console.print(f"report written to [bold]{write_report(run)}[/]")
