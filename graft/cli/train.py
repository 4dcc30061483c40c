"""The commands that train or measure before training: ``fit``, ``pretrain``, ``rank`` and
``lr-find``. Their options come from the configurations (:mod:`graft.cli.options`); heavy
imports wait until a command runs."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from graft.cli.app import app, console
from graft.cli.options import config_options
from graft.cli.output import or_na, report_fit, report_pretrain
from graft.config import FitConfig
from graft.errors import GraftError
from graft.options import ADAPTATION, DATA, FEW_LABELS, OUTPUT
from graft.pretraining.config import PretrainConfig

TEXT_HELP = "Table column holding the texts."
IMAGE_HELP = "Table column holding image paths."
AUDIO_HELP = "Table column holding audio paths."
LABEL_HELP = "Table column holding the labels."
OVERWRITE_HELP = "Allow writing into a non-empty run directory."
UNLABELED_HELP = (
    "Unlabelled data of the same kind as DATA (a folder or table; labels, if any, ignored): "
    "self-training on confident, class-balanced pseudo-labels, kept only if it scores no lower "
    "than the labelled-only model."
)
TextColumn = Annotated[str | None, typer.Option(help=TEXT_HELP)]
ImageColumn = Annotated[str | None, typer.Option(help=IMAGE_HELP)]
AudioColumn = Annotated[str | None, typer.Option(help=AUDIO_HELP)]
LabelColumn = Annotated[str | None, typer.Option(help=LABEL_HELP)]
Overwrite = Annotated[bool, typer.Option(help=OVERWRITE_HELP)]
Unlabeled = Annotated[Path | None, typer.Option(help=UNLABELED_HELP)]


TARGET_HELP = (
    "Unlabelled data of the domain to serve (a folder or table): --adapt aligns the features "
    "with it; its domain gap and label-free scores are reported."
)
VAL_HELP = "Validation data (default: val/ beside train/, else a stratified split)."
TEST_HELP = "Test data, evaluated once at the end."
OUT_HELP = "Run directory (default: runs/fit-DATE-TIME)."
RESUME_HELP = "Finish an interrupted run from its last checkpoint (no DATA)."
TARGET_TEST_HELP = "Labelled target data: evaluated at the end, never used to choose."


class In:
    """``In[TYPE, PANEL, HELP]``: an optional ``graft fit`` option of ``TYPE`` (None when not
    given) in the ``--help`` panel ``PANEL``."""

    def __class_getitem__(cls, spec: tuple) -> Any:
        kind, panel, help_text = spec
        return Annotated[kind | None, typer.Option(help=help_text, rich_help_panel=panel)]


def _default_run_dir(kind: str = "fit") -> Path:
    return Path("runs") / datetime.now().strftime(f"{kind}-%Y%m%d-%H%M%S")


@app.command()
@config_options(FitConfig, kinds=True)
def fit(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Class folders, train/val/test folders, or a CSV/TSV/JSONL/Parquet table "
            "(not with --resume)."
        ),
    ] = None,
    val: In[Path, DATA, VAL_HELP] = None,
    test: In[Path, DATA, TEST_HELP] = None,
    target_unlabeled: In[Path, ADAPTATION, TARGET_HELP] = None,
    target_test: In[Path, ADAPTATION, TARGET_TEST_HELP] = None,
    unlabeled: In[Path, FEW_LABELS, UNLABELED_HELP] = None,
    text_column: In[str, DATA, TEXT_HELP] = None,
    image_column: In[str, DATA, IMAGE_HELP] = None,
    label_column: In[str, DATA, LABEL_HELP] = None,
    audio_column: In[str, DATA, AUDIO_HELP] = None,
    out: In[Path, OUTPUT, OUT_HELP] = None,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP, rich_help_panel=OUTPUT)] = False,
    resume: In[Path, OUTPUT, RESUME_HELP] = None,
    **options: Any,
) -> None:
    """Train a new head (and, with fine-tune, the backbone) on DATA and write a run directory."""
    from graft.api import fit as fit_model
    from graft.api import resume as resume_run
    from graft.training.distributed import is_global_zero

    if resume is not None:
        if data is not None:
            raise GraftError("--resume RUN continues a run with its own data: give no DATA")
        report_fit(resume_run(resume), resume)
        return
    if data is None:
        raise GraftError("missing DATA: a folder or table to train on (or --resume RUN)")
    # Lightning's DDP launcher runs this command once more per device, with this process's
    # environment: the extra processes find the run folder there.
    run_dir = out or Path(os.environ.get("GRAFT_RUN_DIR") or _default_run_dir())
    os.environ["GRAFT_RUN_DIR"] = str(run_dir)
    columns = dict(text_column=text_column, image_column=image_column, label_column=label_column)
    columns["audio_column"] = audio_column
    try:
        fitted = fit_model(
            data,
            val,
            test,
            out=run_dir,
            overwrite=overwrite,
            target=target_unlabeled,
            target_test=target_test,
            unlabeled=unlabeled,
            **columns,
            **options,
        )
    finally:
        os.environ.pop("GRAFT_RUN_DIR", None)
    if is_global_zero():
        report_fit(fitted, run_dir)


@app.command()
@config_options(PretrainConfig)
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
    text_column: TextColumn = None,
    image_column: ImageColumn = None,
    label_column: Annotated[
        str | None, typer.Option(help="Table column holding the labels (supervised).")
    ] = None,
    overwrite: Overwrite = False,
    resume: Annotated[
        Path | None,
        typer.Option(help="Finish an interrupted pretrain run from its last checkpoint (no DATA)."),
    ] = None,
    **options: Any,
) -> None:
    """Pre-train a backbone on a larger dataset you own, with its labels or without
    (SimCLR for images, masked-language-model training for text), from a pretrained model or
    from scratch; `graft fit DATA --model RUN` then starts from it."""
    from graft.pretraining import pretrain as run_pretraining
    from graft.pretraining import resume_pretrain

    if resume is not None:
        if data is not None:
            raise GraftError("--resume RUN continues a run with its own data: give no DATA")
        report_pretrain(resume_pretrain(resume))
        return
    if data is None:
        raise GraftError("missing DATA: images or texts to pre-train on (or --resume RUN)")
    result = run_pretraining(
        data,
        out=out or _default_run_dir("pretrain"),
        overwrite=overwrite,
        text_column=text_column,
        image_column=image_column,
        label_column=label_column,
        **options,
    )
    report_pretrain(result)


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
    text_column: TextColumn = None,
    image_column: ImageColumn = None,
    label_column: LabelColumn = None,
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
    console.print(_ranking_table(ranking, data, by))
    console.print(
        f"{ranking.examples['train']} training and {ranking.examples['val']} validation "
        f"examples, {len(ranking.classes)} classes; ranking took {ranking.seconds:.1f}s "
        "(* features from the cache). entropy: of the source classifier's predictions, "
        "0 = like its training domain, 1 = unlike any of its classes."
    )
    console.print(f"ranking written to [bold]{ranking.write(out, overwrite)}[/]")


def _ranking_table(ranking: Any, data: Path, by: str) -> Table:
    table = Table(title=f"backbones for {data}, best first by {by}", box=box.SIMPLE_HEAD)
    table.add_column("model", overflow="fold")
    for header in ("LogME", "LEEP", "H-score", "k-NN", "entropy", "feat. s"):
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header) + 1)
    for row in ranking.scores:
        seconds = f"{row.feature_seconds:.1f}" + ("" if row.features_computed else "*")
        table.add_row(
            row.model,
            f"{row.logme:.3f}",
            or_na(row.leep, 3),
            f"{row.h_score:.2f}",
            f"{row.knn_accuracy:.3f}",
            or_na(row.source_entropy, 2),
            seconds,
        )
    return table


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
    text_column: TextColumn = None,
    image_column: ImageColumn = None,
    label_column: LabelColumn = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Find a learning rate for DATA: the range test `--lr auto` runs, with its loss curve."""
    from graft.estimator import GraftEstimator

    columns = dict(text_column=text_column, image_column=image_column, label_column=label_column)
    estimator = GraftEstimator(model=model, batch_size=batch_size, seed=seed, progress=progress)
    finding = estimator.find_lr(data, **{k: v for k, v in columns.items() if v is not None})
    table = Table(title=f"learning-rate range test on {data} ({estimator.model_})")
    table.add_column("learning rate", justify="right")
    table.add_column("loss (smoothed)", justify="right")
    every = max(1, len(finding.losses) // 12)
    for rate, loss in list(zip(finding.learning_rates, finding.losses, strict=True))[::every]:
        table.add_row(f"{rate:.2e}", f"{loss:.4f}")
    console.print(table)
    note = " (no falling loss found: graft's default)" if finding.fallback else ""
    console.print(f"suggested learning rate: [bold]{finding.suggestion:.3g}[/]{note}")
    console.print(f"loss curve drawn to [bold]{finding.plot(plot)}[/]; use it with --lr")
