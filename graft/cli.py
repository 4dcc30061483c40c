"""The ``graft`` command line: models, fit, pretrain, evaluate, predict, report, export, serve."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
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
    from graft.training.engine import allow_script_relaunch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    allow_script_relaunch()
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
        Path | None,
        typer.Argument(
            help="Class folders, train/val/test folders, or a CSV/TSV/JSONL table "
            "(not with --resume)."
        ),
    ] = None,
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
            help="Backbone: a name from `graft models`, timm:NAME, hf:ORG/NAME, a folder, or "
            "a `graft pretrain` run."
        ),
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            help="fine-tune, feature-extract, full, partial, gradual, lora, or auto (chosen "
            "from measurements of the data and the frozen backbone)."
        ),
    ] = "fine-tune",
    epochs: Annotated[
        int | None,
        typer.Option(help="Epochs of the main phase (fine-tune: 3, feature-extract: 30)."),
    ] = None,
    head_epochs: Annotated[int, typer.Option(help="Epochs of fine-tune's head-only phase.")] = 30,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 32,
    lr: Annotated[
        str, typer.Option(help="Learning rate of the head, or auto (a range test picks it).")
    ] = "3e-3",
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
    logger: Annotated[
        str, typer.Option(help="csv (always kept), or also tensorboard or mlflow.")
    ] = "csv",
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
    lora_rank: Annotated[
        int | None, typer.Option(help="Rank of --strategy lora's adapters (default 8).")
    ] = None,
    lora_alpha: Annotated[
        float | None,
        typer.Option(help="LoRA scale numerator: updates scaled by alpha/rank (default 2 x rank)."),
    ] = None,
    lora_targets: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated module names LoRA adapts, like query,value "
            "(default: the backbone's own)."
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="scratch: also train the architecture from random weights and report the "
            "transfer gain (negative transfer when pretraining hurt)."
        ),
    ] = None,
    baseline_epochs: Annotated[
        int | None,
        typer.Option(help="Epochs of the scratch baseline (default: as many as the fit ran)."),
    ] = None,
    target_unlabeled: Annotated[
        Path | None,
        typer.Option(
            help="Unlabelled data of the domain to serve (a folder or table): --adapt aligns "
            "the features with it; its domain gap and label-free scores are reported."
        ),
    ] = None,
    target_test: Annotated[
        Path | None,
        typer.Option(help="Labelled target data: evaluated at the end, never used to choose."),
    ] = None,
    adapt: Annotated[
        str,
        typer.Option(
            help="Domain adaptation to --target-unlabeled: dann, coral, mmd, or none (source-only)."
        ),
    ] = "none",
    adapt_weight: Annotated[
        float, typer.Option(help="Weight of the adaptation loss against the task loss.")
    ] = 1.0,
    adapt_guard: Annotated[
        bool,
        typer.Option(
            help="Also train source-only and keep the adapted model only if it scores no "
            "worse on the source validation data (doubles the adapted phases' time)."
        ),
    ] = True,
    image_size: Annotated[
        int | None,
        typer.Option(help="Resize images to this side in pixels (default: the weights' size)."),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(help="Cut texts to this many tokens (default: the model's own length)."),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the split, initialisation and data order.")
    ] = 0,
    val_fraction: Annotated[
        float, typer.Option(help="Share of each class held out when no validation data is given.")
    ] = 0.2,
    task: Annotated[
        str,
        typer.Option(
            help="auto, multiclass, multilabel (a row's labels joined by ; or |) or regression."
        ),
    ] = "auto",
    label_delimiter: Annotated[
        str | None,
        typer.Option(help="What separates a multilabel row's labels (default: ; or |)."),
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Train several label columns of a table at once, one head each on the shared "
            "backbone: sentiment,topic,rating (each kind inferred; COLUMN:KIND sets it, like "
            "rating:regression). A row missing a task's label still trains the others."
        ),
    ] = None,
    task_weights: Annotated[
        str | None,
        typer.Option(
            help="How the --tasks losses add up: weights in --tasks order (1,0.5), by name "
            "(sentiment=1,topic=0.5), or uncertainty (learned; Kendall et al. 2018). "
            "Default: 1 each."
        ),
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="Table column holding the texts.")] = None,
    image_column: Annotated[
        str | None, typer.Option(help="Table column holding image paths.")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Table column holding the labels.")
    ] = None,
    precision: Annotated[
        str, typer.Option(help="32, 16-mixed (CUDA) or bf16-mixed, as Lightning takes it.")
    ] = "32",
    devices: Annotated[int, typer.Option(help="Processes (GPUs, or CPU processes) per node.")] = 1,
    num_nodes: Annotated[int, typer.Option(help="Nodes of a multi-node run.")] = 1,
    distributed: Annotated[
        str | None,
        typer.Option(help="ddp or fsdp across devices and nodes (default: ddp above 1 device)."),
    ] = None,
    num_workers: Annotated[int | None, typer.Option(help="Data-loading processes.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/fit-DATE-TIME).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Allow writing into a non-empty run directory.")
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(help="Finish an interrupted run from its last checkpoint (no DATA)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Train a new head (and, with fine-tune, the backbone) on DATA and write a run directory."""
    import graft
    from graft.training.engine import is_global_zero

    if resume is not None:
        if data is not None:
            raise GraftError("--resume RUN continues a run with its own data: give no DATA")
        _report_fit(graft.resume(resume), resume)
        return
    if data is None:
        raise GraftError("missing DATA: a folder or table to train on (or --resume RUN)")
    # Lightning's DDP launcher runs this command once more per device, with this process's
    # environment: the extra processes find the run folder there.
    run_dir = out or Path(os.environ.get("GRAFT_RUN_DIR") or _default_run_dir())
    os.environ["GRAFT_RUN_DIR"] = str(run_dir)
    try:
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
            logger=logger,
            class_weights=class_weights,
            sampler=sampler,
            augment=augment,
            views=views,
            unfreeze=unfreeze,
            unfreeze_every=unfreeze_every,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            lora_targets=lora_targets,
            baseline=baseline,
            baseline_epochs=baseline_epochs,
            adapt=adapt,
            adapt_weight=adapt_weight,
            adapt_guard=adapt_guard,
            image_size=image_size,
            max_length=max_length,
            seed=seed,
            val_fraction=val_fraction,
            precision=precision,
            devices=devices,
            num_nodes=num_nodes,
            distributed=distributed,
            num_workers=num_workers,
            progress=progress,
            task=task,
            label_delimiter=label_delimiter,
            tasks=tasks,
            task_weights=task_weights,
            text_column=text_column,
            image_column=image_column,
            label_column=label_column,
            target=target_unlabeled,
            target_test=target_test,
        )
    finally:
        os.environ.pop("GRAFT_RUN_DIR", None)
    if is_global_zero():
        _report_fit(fitted, run_dir)


def _task_text(task: str, classes: list[str]) -> str:
    return {
        "multiclass": f"{len(classes)} classes",
        "multilabel": f"{len(classes)} labels",
        "regression": f"target {classes[0]!r}",
    }[task]


def _report_fit(fitted, run_dir: Path) -> None:
    summary = fitted.summary_
    examples = ", ".join(f"{n} {c}" for n, c in summary["examples"].items())
    multitask = fitted.task_ == "multitask"
    if multitask:
        kind = f"{len(fitted.tasks_)} tasks"
    else:
        kind = _task_text(fitted.task_, fitted.classes_)
    console.print(
        f"\n[bold]{fitted.config.strategy}[/] of [bold]{fitted.config.model}[/] on {examples} "
        f"examples, {kind}, in {summary['seconds']['total']:.1f}s"
    )
    if multitask:
        _print_tasks(fitted)
    else:
        inferred = " (inferred from the labels)" if fitted.config.task == "auto" else ""
        console.print(f"task: [bold]{fitted.task_}[/]{inferred}")
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
    if "advice" in summary:
        console.print(
            f"strategy auto chose [bold]{summary['advice']['strategy']}[/]: "
            f"{summary['advice']['reason']}",
            highlight=False,
        )
    for split in ("val", "test"):
        if split not in fitted.metrics_:
            continue
        metrics = fitted.metrics_[split]
        if not multitask:
            _print_metrics(metrics, f"{split} metrics", fitted.classes_, fitted.task_)
            continue
        for task, values in metrics.items():
            title = f"{split} metrics, task {task}"
            _print_metrics(values, title, fitted.classes_[task], fitted.tasks_[task])
    if "transfer" in fitted.metrics_:
        _print_transfer(fitted.metrics_["transfer"])
    if "adaptation" in fitted.metrics_:
        _print_adaptation(fitted.metrics_)
    console.print(f"run saved to [bold]{run_dir}[/] (report: {run_dir / 'report.html'})")


def _print_tasks(fitted) -> None:
    """The tasks of a multi-task fit, their labelled rows and the weights of their losses."""
    labelled, weighting = fitted.summary_["labelled"], fitted.summary_["task_weights"]
    mode = "learned by uncertainty" if weighting["mode"] == "uncertainty" else "fixed"
    table = Table(title=f"tasks (loss weights {mode})")
    for column in ("task", "kind", "", "labelled rows", "weight"):
        table.add_column(
            column, justify="right" if column in ("labelled rows", "weight") else "left"
        )
    for task, kind in fitted.tasks_.items():
        rows = ", ".join(f"{split} {counts[task]}" for split, counts in labelled.items())
        weight = f"{weighting['weights'][task]:.3f}"
        table.add_row(task, kind, _task_text(kind, fitted.classes_[task]), rows, weight)
    console.print(table)


def _print_adaptation(metrics: dict) -> None:
    adaptation = metrics["adaptation"]
    gap, scores = adaptation["domain_gap"], adaptation["label_free"]
    table = Table(
        title=f"target domain {adaptation['target']} ({adaptation['target_items']} items), "
        f"adaptation: [bold]{adaptation['method']}[/]"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
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


def _print_transfer(transfer: dict) -> None:
    table = Table(
        title=f"transfer gain over {transfer['baseline']} ({transfer['epochs']} epochs, "
        f"{transfer['seconds']:.0f}s): [bold]{transfer['verdict']}[/]"
    )
    for column in ("split", f"pretrained {transfer['metric']}", "scratch", "gain"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in ("val", "test"):
        if split in transfer:
            row = transfer[split]
            scores = [_or_na(row["pretrained"]), _or_na(row["scratch"])]
            gain = "n/a" if row["gain"] is None else f"{row['gain']:+.4f}"
            table.add_row(split, *scores, gain)
    console.print(table)


def _print_metrics(metrics: dict, title: str, classes: list[str], task: str = "multiclass") -> None:
    count = f"({metrics['num_examples']} examples)"
    if task == "regression":
        r2 = "n/a" if metrics["r2"] is None else f"{metrics['r2']:.4f}"
        table = Table(title=f"{title}: R² {r2} {count}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name in ("mse", "rmse", "mae"):
            table.add_row(name.upper(), f"{metrics[name]:.4f}")
        table.add_row("R²", r2)
        console.print(table)
        return
    if task == "multilabel":
        summary = (
            f"micro-F1 {metrics['micro_f1']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
            f"subset accuracy {metrics['subset_accuracy']:.4f}"
        )
        columns = ("label", "threshold", "precision", "recall", "F1", "support")
    else:
        summary = f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"
        columns = ("class", "precision", "recall", "F1", "support")
    table = Table(title=f"{title}: {summary} {count}")
    for column in columns:
        table.add_column(column, justify="left" if column in ("class", "label") else "right")
    for name in classes:
        row = metrics["per_class"][name]
        threshold = [f"{row['threshold']:.2f}"] if task == "multilabel" else []
        table.add_row(
            name,
            *threshold,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    console.print(table)


@app.command()
def pretrain(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="What to pre-train on: a folder of images (class folders optional), a "
            "folder of .txt files, a CSV/TSV/JSONL table (texts or image paths, labels "
            "optional), or a .txt file with one text per line (not with --resume)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Run directory (default: runs/pretrain-DATE-TIME); then `graft fit DATA "
            "--model RUN` uses the backbone it holds."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Backbone to start from: a name from `graft models`, timm:NAME, hf:ORG/NAME, "
            "a folder or an earlier pretrain run (default: efficientnet_lite0 or minilm)."
        ),
    ] = None,
    objective: Annotated[
        str,
        typer.Option(
            help="supervised (the data's labels), simclr (contrastive, unlabelled images), "
            "mlm (masked words, unlabelled text), or auto: supervised when the data have "
            "labels, else simclr for images and mlm for text."
        ),
    ] = "auto",
    init: Annotated[
        str,
        typer.Option(
            help="pretrained: continue from the model's weights (domain-adaptive); scratch: "
            "its architecture from random weights."
        ),
    ] = "pretrained",
    epochs: Annotated[
        int | None, typer.Option(help="Most epochs (supervised 10, simclr 20, mlm 3).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Examples per step (simclr 64 images, else 32).")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="Peak learning rate of the backbone (pretrained: 3e-4, mlm 5e-5; scratch: "
            "1e-3, mlm 5e-4); the objective's head learns 10x faster on a pretrained one."
        ),
    ] = None,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.01,
    patience: Annotated[
        int, typer.Option(help="Epochs without a lower held-out loss before stopping.")
    ] = 5,
    temperature: Annotated[float, typer.Option(help="simclr: NT-Xent temperature.")] = 0.5,
    flip: Annotated[
        bool, typer.Option(help="simclr: horizontal flips among the augmentations.")
    ] = True,
    mask_probability: Annotated[
        float, typer.Option(help="mlm: share of the tokens masked and predicted.")
    ] = 0.15,
    augment: Annotated[
        str, typer.Option(help="supervised, images: augmentation preset none, light, strong.")
    ] = "light",
    image_size: Annotated[
        int | None,
        typer.Option(help="Resize images to this side in pixels (fit then uses it too)."),
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(help="Cut texts to this many tokens (fit then uses it too)."),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Share of the data held out to measure the loss.")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the split, heads, order, augmentation.")] = 0,
    text_column: Annotated[str | None, typer.Option(help="Table column holding the texts.")] = None,
    image_column: Annotated[
        str | None, typer.Option(help="Table column holding image paths.")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Table column holding the labels (supervised).")
    ] = None,
    precision: Annotated[
        str, typer.Option(help="32, 16-mixed (CUDA) or bf16-mixed, as Lightning takes it.")
    ] = "32",
    num_workers: Annotated[int | None, typer.Option(help="Data-loading processes.")] = None,
    logger: Annotated[
        str, typer.Option(help="csv (always kept), or also tensorboard or mlflow.")
    ] = "csv",
    overwrite: Annotated[
        bool, typer.Option(help="Allow writing into a non-empty run directory.")
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(help="Finish an interrupted pretrain run from its last checkpoint (no DATA)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Pre-train a backbone on a larger dataset you own, with its labels or without
    (SimCLR for images, masked-language-model training for text), from a pretrained model or
    from scratch; `graft fit DATA --model RUN` then starts from it."""
    from graft.pretraining import pretrain as run_pretraining
    from graft.pretraining import resume_pretrain

    if resume is not None:
        if data is not None:
            raise GraftError("--resume RUN continues a run with its own data: give no DATA")
        _report_pretrain(resume_pretrain(resume))
        return
    if data is None:
        raise GraftError("missing DATA: images or texts to pre-train on (or --resume RUN)")
    result = run_pretraining(
        data,
        out=out or Path("runs") / datetime.now().strftime("pretrain-%Y%m%d-%H%M%S"),
        overwrite=overwrite,
        model=model,
        objective=objective,
        init=init,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        temperature=temperature,
        flip=flip,
        mask_probability=mask_probability,
        augment=augment,
        image_size=image_size,
        max_length=max_length,
        val_fraction=val_fraction,
        seed=seed,
        precision=precision,
        num_workers=num_workers,
        logger=logger,
        progress=progress,
        text_column=text_column,
        image_column=image_column,
        label_column=label_column,
    )
    _report_pretrain(result)


def _report_pretrain(result) -> None:
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
            _or_na(row.get("train_loss")),
            _or_na(row.get("val_loss")),
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


@app.command()
def rank(
    data: Annotated[Path, typer.Argument(help="Labelled data, in any form `graft fit` accepts.")],
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated backbones to compare (names, timm:NAME, hf:ORG/NAME, folders)."
        ),
    ],
    val: Annotated[
        Path | None, typer.Option(help="Validation data (default: as `graft fit` splits).")
    ] = None,
    by: Annotated[str, typer.Option(help="logme, leep, h_score or knn_accuracy.")] = "logme",
    out: Annotated[Path, typer.Option(help="Where to write the ranking as JSON.")] = Path(
        "rank.json"
    ),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the validation split.")] = 0,
    val_fraction: Annotated[
        float, typer.Option(help="Share of each class held out when no validation data is given.")
    ] = 0.2,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Root of the feature cache (default ~/.cache/graft).")
    ] = None,
    text_column: Annotated[str | None, typer.Option()] = None,
    image_column: Annotated[str | None, typer.Option()] = None,
    label_column: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Rank backbones for DATA by transferability, from one forward pass each (no training)."""
    from graft.selection.ranking import rank as rank_models

    columns = dict(text_column=text_column, image_column=image_column, label_column=label_column)
    names = [m.strip() for m in models.split(",") if m.strip()]
    ranking = rank_models(
        data,
        names,
        val=val,
        by=by,
        seed=seed,
        val_fraction=val_fraction,
        batch_size=batch_size,
        cache_dir=cache_dir,
        **{k: v for k, v in columns.items() if v is not None},
    )
    table = Table(title=f"backbones for {data}, best first by {by}", box=box.SIMPLE_HEAD)
    table.add_column("model", overflow="fold")
    for header in ("LogME", "LEEP", "H-score", "k-NN", "entropy", "feat. s"):
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header) + 1)
    for row in ranking.scores:
        seconds = f"{row.feature_seconds:.1f}" + ("" if row.features_computed else "*")
        table.add_row(
            row.model,
            f"{row.logme:.3f}",
            _or_na(row.leep, 3),
            f"{row.h_score:.2f}",
            f"{row.knn_accuracy:.3f}",
            _or_na(row.source_entropy, 2),
            seconds,
        )
    console.print(table)
    console.print(
        f"{ranking.examples['train']} training and {ranking.examples['val']} validation "
        f"examples, {len(ranking.classes)} classes; ranking took {ranking.seconds:.1f}s "
        "(* features from the cache). entropy: of the source classifier's predictions, "
        "0 = like its training domain, 1 = unlike any of its classes."
    )
    console.print(f"ranking written to [bold]{ranking.write(out, overwrite)}[/]")


def _or_na(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


@app.command("lr-find")
def lr_find(
    data: Annotated[Path, typer.Argument(help="Training data, in any form `graft fit` accepts.")],
    model: Annotated[
        str | None, typer.Option(help="Backbone (default: efficientnet_lite0 or minilm).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the split and the head.")] = 0,
    plot: Annotated[Path, typer.Option(help="Where to draw the loss curve (PNG).")] = Path(
        "lr-find.png"
    ),
    text_column: Annotated[str | None, typer.Option()] = None,
    image_column: Annotated[str | None, typer.Option()] = None,
    label_column: Annotated[str | None, typer.Option()] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Find a learning rate for DATA: the range test `--lr auto` runs, with its loss curve."""
    from graft.model import GraftClassifier

    columns = dict(text_column=text_column, image_column=image_column, label_column=label_column)
    estimator = GraftClassifier(model=model, batch_size=batch_size, seed=seed, progress=progress)
    finding = estimator.find_lr(data, **{k: v for k, v in columns.items() if v is not None})
    table = Table(title=f"learning-rate range test on {data} ({estimator.config.model})")
    table.add_column("learning rate", justify="right")
    table.add_column("loss (smoothed)", justify="right")
    every = max(1, len(finding.losses) // 12)
    for rate, loss in list(zip(finding.learning_rates, finding.losses, strict=True))[::every]:
        table.add_row(f"{rate:.2e}", f"{loss:.4f}")
    console.print(table)
    note = " (no falling loss found: graft's default)" if finding.fallback else ""
    console.print(f"suggested learning rate: [bold]{finding.suggestion:.3g}[/]{note}")
    console.print(f"loss curve drawn to [bold]{finding.plot(plot)}[/]; use it with --lr")


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
    elif model.task_ == "multitask":
        for task, values in metrics.items():
            title = f"{data}, task {task}"
            _print_metrics(values, title, model.classes_[task], model.tasks_[task])
    else:
        _print_metrics(metrics, str(data), model.classes_, model.task_)


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run directory written by `graft fit`.")],
    inputs: Annotated[
        list[str], typer.Argument(help="Image files or folders, a CSV/TSV/JSONL table, or texts.")
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
) -> None:
    """Predict the labels of INPUTS with a trained model: the top classes, every label above
    its threshold (multilabel), or the value (regression)."""
    import graft
    from graft.data import load_inputs
    from graft.errors import ConfigError

    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    model = graft.load(run, engine=engine, export=export)
    items = load_inputs(inputs, model.backbone_.modality, column=column)
    if model.task_ == "multitask":
        _predict_tasks(model, items, top_k, as_json)
        return
    if model.task_ == "regression":
        values = model.predict(items)
        if as_json:
            for item, value in zip(items, values, strict=True):
                print(json.dumps({"input": item, "prediction": float(value)}))
            return
        answers = [[(f"{value:.4g}", None)] for value in values]
    else:
        scores = model.predict_proba(items)
        answers = _answers(model.task_, scores, model.classes_, model.thresholds_, top_k)
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
            ", ".join(lab if p is None else f"{lab} ({p:.3f})" for lab, p in pairs) or "-",
        )
    console.print(table)


def _answers(task: str, scores, classes: list[str], thresholds, top_k: int) -> list[list]:
    """A classification task's answers as ``(label, probability)`` pairs for each input: the
    ``top_k`` classes (multiclass) or every label at or above its threshold (multilabel)."""
    from graft.model import top_k as most_probable

    if task == "multiclass":
        return most_probable(scores, classes, min(top_k, len(classes)))
    pairs = [
        sorted(((classes[j], float(p)) for j, p in enumerate(row)), key=lambda pair: -pair[1])
        for row in scores
    ]
    threshold = dict(zip(classes, thresholds, strict=True))
    return [[(label, p) for label, p in row if p >= threshold[label]] for row in pairs]


def _predict_tasks(model, items: list[str], top_k: int, as_json: bool) -> None:
    """``graft predict`` of a multi-task model: every task's answer for each input."""
    scores = model.task_outputs(items)
    answers = {}
    for task, kind in model.tasks_.items():
        if kind == "regression":
            answers[task] = [float(value) for value in scores[task]]
        else:
            thresholds = model.thresholds_.get(task)
            answers[task] = _answers(kind, scores[task], model.classes_[task], thresholds, top_k)
    if as_json:
        for index, item in enumerate(items):
            predictions = {
                task: values[index]
                if model.tasks_[task] == "regression"
                else [{"label": lab, "probability": round(p, 6)} for lab, p in values[index]]
                for task, values in answers.items()
            }
            print(json.dumps({"input": item, "predictions": predictions}))
        return
    table = Table()
    table.add_column("input", overflow="fold")
    for task in model.tasks_:
        table.add_column(task)
    for index, item in enumerate(items):
        cells = [
            f"{values[index]:.4g}"
            if model.tasks_[task] == "regression"
            else ", ".join(f"{lab} ({p:.3f})" for lab, p in values[index]) or "-"
            for task, values in answers.items()
        ]
        table.add_row(item if len(item) < 120 else item[:117] + "...", *cells)
    console.print(table)


@app.command("export")
def export_command(
    run: Annotated[Path, typer.Argument(help="A run directory written by `graft fit`.")],
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
    import graft
    from graft.export import export_model, parity_items

    model = graft.load(run)
    items = parity_items(model, run, check, column)
    folder = out or run / "export"
    if folder.expanduser().resolve() == run.expanduser().resolve():
        raise _run_error(
            run, "--out is the run directory itself: choose a folder inside or beside it"
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
def report(
    run: Annotated[Path, typer.Argument(help="A run directory written by `graft fit`.")],
) -> None:
    """Rebuild RUN/report.html: learning curves, metrics, confusion matrix, calibration, the
    most confidently wrong examples, the settings and the decisions graft made."""
    from graft.report import write_report

    if not (run / "config.json").is_file():
        raise _run_error(run)
    console.print(f"report written to [bold]{write_report(run)}[/]")


def _run_error(run: Path, reason: str = "not a graft run (config.json is missing)"):
    from graft.errors import RunError

    return RunError(f"{run}: {reason}")


@app.command("serve")
def serve_command(
    run: Annotated[Path, typer.Argument(help="A run directory written by `graft fit`.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    top_k: Annotated[int, typer.Option(help="Classes per answer unless a request asks.")] = 5,
    max_batch: Annotated[int, typer.Option(help="Most inputs batched into one forward.")] = 32,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body, in MiB.")] = 10.0,
) -> None:
    """Serve RUN over HTTP: POST /predict, GET /health, and a web page at /."""
    from graft.errors import ConfigError

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
