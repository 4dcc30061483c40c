"""graft's functions: ``fit``, ``resume``, ``load``, ``adapt`` and ``zero_shot``, the shortcuts
most users call.

>>> model = graft.fit("photos/", strategy="feature-extract", out="runs/photos")  # doctest: +SKIP
>>> graft.load("runs/photos").predict(["new.jpg"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from graft.config import FitConfig
from graft.errors import RunError
from graft.estimator import DataLike, GraftEstimator
from graft.multitask import MultiTaskClassifier
from graft.runs.directory import read_run_record
from graft.runs.persistence import (
    check_engine,
    fill_fitted,
    hyperparameters,
    read_record,
    restore_model,
)

#: The arguments of ``fit`` that name data, not hyperparameters.
DATA_ARGUMENTS = (
    "text_column",
    "image_column",
    "label_column",
    "audio_column",
    "target",
    "target_test",
    "unlabeled",
)


def estimator_class(tasks: Any) -> type[GraftEstimator]:
    """:class:`GraftEstimator`, or with ``tasks`` :class:`MultiTaskClassifier`."""
    return MultiTaskClassifier if tasks else GraftEstimator


def fit(
    data: DataLike,
    val: DataLike | None = None,
    test: DataLike | None = None,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    **params: Any,
) -> GraftEstimator:
    """Shortcut for ``GraftEstimator(**params).fit(data, val, test, out=out)``; with
    ``tasks=[...]`` (several label columns), for :class:`MultiTaskClassifier`'s."""
    arguments = {k: params.pop(k) for k in DATA_ARGUMENTS if k in params}
    estimator = estimator_class(params.get("tasks"))(**params)
    return estimator.fit(data, val, test, out=out, overwrite=overwrite, **arguments)


def resume(run_dir: str | os.PathLike) -> GraftEstimator:
    """Finish a fit that was interrupted (killed, out of time), from its last checkpoint.

    Phases that had finished are loaded, the interrupted one continues from its last epoch
    with its optimiser, scheduler, early-stopping state and data order; the result equals
    that of an uninterrupted fit with the same seed.
    """
    record = read_run_record(Path(run_dir).expanduser())
    arguments = record.get("arguments")
    if arguments is None:
        raise RunError(
            f"{run_dir}: this run was fitted on in-memory data, which it cannot read back; "
            "resume it from Python: GraftEstimator(...).fit(data, out=RUN, resume=True)"
        )
    config = FitConfig.from_dict(record["config"])
    model = estimator_class(config.tasks)(**config.to_dict())
    return model.fit(
        arguments["data"],
        arguments["val"],
        arguments["test"],
        out=run_dir,
        resume=True,
        target=arguments.get("target"),
        target_test=arguments.get("target_test"),
        unlabeled=arguments.get("unlabeled"),
        **arguments["columns"],
    )


def load(
    path: str | os.PathLike, engine: str = "auto", export: str | os.PathLike | None = None
) -> GraftEstimator:
    """Restore a model saved by ``fit(out=...)`` or ``save``; predictions equal the original's.

    ``engine="onnx"`` or ``"torchscript"``: predict with the model exported by ``graft export``
    (``export``, by default the run's ``export/`` folder) instead of the PyTorch modules.
    ``"auto"`` (the default): with that export when the run has one made from its current
    weights (its logits equal the PyTorch model's within the export's parity tolerance; an
    int8 export is the one ``graft export --quantize`` checked for accuracy) and no GPU is
    visible, else with the PyTorch modules: silently when there is no export, with a warning
    when it is stale or cannot run here. ``"torch"``: always the PyTorch modules. The model's
    ``engine_name_`` (``torch``, ``onnx``, ``torchscript``) and ``export_dir_`` say which.
    """
    check_engine(engine)
    path = Path(path).expanduser()
    record = read_record(path)
    params = FitConfig.from_dict(hyperparameters(record)).to_dict()
    model = estimator_class(params.get("tasks"))(**params)
    return restore_model(model, path, record, engine, export)


def zero_shot(
    labels: Any, model: str | None = None, *, label_template: str | None = None
) -> GraftEstimator:
    """A text classifier from class names alone, with no labelled example: each class is its
    name (or description) in ``label_template`` (default ``"This text is about {label}."``),
    embedded by ``model`` (a text backbone, default MiniLM), and a text goes to the class
    whose sentence it comes nearest (:mod:`graft.label_prompts`). ``labels``: a list of names, a
    mapping of names to descriptions, comma-separated names, or a text file with one class a
    line (``name`` or ``name: description``). The model predicts and evaluates as a fitted
    multiclass model does; ``save`` writes it as a run.

    >>> model = graft.zero_shot("sport,politics,business")  # doctest: +SKIP
    >>> model.predict(["The striker scored twice."])  # doctest: +SKIP
    """
    import torch

    from graft.backbones.registry import create_backbone
    from graft.config import DEFAULT_MODELS
    from graft.label_prompts import (
        DEFAULT_TEMPLATE,
        check_template,
        check_text_backbone,
        read_label_names,
        start_from_names,
    )
    from graft.tasks import task_class

    names = read_label_names(labels)
    spec = model or DEFAULT_MODELS["text"]
    template = check_template(label_template or DEFAULT_TEMPLATE)
    estimator = GraftEstimator(model=spec, strategy="feature-extract")
    task = task_class("multiclass")(names.classes)
    config = estimator.config.for_kind(task.kind).resolved(model=spec)
    config = task.defaults(config).with_defaults()
    backbone = create_backbone(spec)
    check_text_backbone(backbone, spec)
    torch.manual_seed(config.seed)
    head = task.new_head(backbone)
    start_from_names(head, backbone, names, template)
    return fill_fitted(estimator, task, backbone, head, config, spec)  # a frozen backbone


def adapt(
    run: str | os.PathLike,
    target: DataLike,
    *,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    method: str = "self-training",
    target_test: DataLike | None = None,
    column: str | None = None,
    **options: Any,
) -> GraftEstimator:
    """Adapt the model of the finished run ``run`` to unlabelled ``target`` data without its
    source data (SHOT: the head frozen, the backbone trained by information maximisation and
    self-training; :mod:`graft.adaptation.source_free`) and write it as a new run.

    ``out``: the new run directory (default: ``RUN-adapted`` beside the run); it never
    replaces an existing run, the adapted one included, without ``overwrite``. ``method``:
    ``self-training``, ``mcc`` or ``mcc+self-training``. ``target_test``: labelled target data,
    evaluated at the end. ``column``: the input column of target tables. ``options``:
    ``epochs``, ``weight``, ``seed``, ``batch_size``, ``num_workers``, ``progress``. The new
    run loads with :func:`load` like any other.
    """
    from graft.adaptation.source_free import SourceFreeAdaptation
    from graft.runs.directory import check_run_dir

    adaptation = SourceFreeAdaptation(method=method, **options)
    run = Path(run).expanduser()
    out = Path(out).expanduser() if out is not None else run.with_name(f"{run.name}-adapted")
    check_run_dir(out, overwrite)
    model = adaptation.adapt(load(run, engine="torch"), target, target_test, column)
    model.save(out, overwrite=True)
    _report(out)
    return model


def _report(run_dir: Path) -> None:
    """The run's ``report.html``, when it can be drawn (the saved model stands without it)."""
    from graft.fitting.results import write_report

    write_report(run_dir)
