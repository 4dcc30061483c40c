"""One trial of ``graft tune``: a normal ``graft fit`` into a run directory of its own, which
reports its validation score after every epoch so that the search can stop it early.

The score is heard through :func:`graft.training.engine.training_callbacks` (a Lightning
callback added to each phase's Trainer, no option of the fit). Epochs are counted across the
phases (fine-tune's head phase, then its backbone phase), so step ``k`` is the k-th epoch the
trial trained. A pruned trial stops where it was (its run directory keeps its logs and
checkpoints, without a model); ``trial.json`` in the run directory says what happened in every
case, written by the process that ran the trial (a Ray worker, or this one).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from graft.errors import RunError
from graft.tuning.space import DEFAULTS_FLAG

#: The file in a trial's run directory that records it.
TRIAL_FILE = "trial.json"


@dataclass(frozen=True)
class TrialData:
    """What every trial fits: the data and its companions, as :func:`graft.fit` takes them."""

    data: Any
    val: Any = None
    test: Any = None
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrialOutcome:
    """A finished trial: its validation ``score``, seconds, epochs trained and the feature
    cache's hits and misses (misses: inputs the backbone ran on)."""

    score: float
    seconds: float
    epochs: int
    cache_hits: int
    cache_misses: int


class ScoreReporter(L.Callback):
    """Calls ``report(step, score)`` after every epoch that has a validation score; ``report``
    may raise to stop the trial (Optuna's ``TrialPruned``)."""

    def __init__(self, report: Callable[[int, float], None]):
        self.report = report
        self.step = 0

    def on_train_epoch_end(self, trainer, module) -> None:
        value = trainer.callback_metrics.get("val_score")
        if value is None or trainer.sanity_checking:
            return
        self.step += 1
        self.report(self.step, float(value))


def fit_options(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's options as :func:`graft.fit` takes them."""
    return {k: v for k, v in params.items() if k != DEFAULTS_FLAG}


def run_trial(
    data: TrialData,
    params: dict[str, Any],
    run_dir: Path,
    report: Callable[[int, float], None],
    number: int | None = None,
) -> TrialOutcome:
    """Fit ``data`` with ``params`` into ``run_dir``, reporting each epoch's validation score;
    records the trial in ``run_dir/trial.json`` (running, then complete, pruned or failed)."""
    from graft.api import fit
    from graft.training.engine import training_callbacks

    started = time.perf_counter()
    record = {"params": params, "number": number, "state": "RUNNING", "scores": []}

    def heard(step: int, score: float) -> None:
        record["scores"].append(score)
        record["seconds"] = round(time.perf_counter() - started, 3)
        write_trial(run_dir, record)
        report(step, score)

    if run_dir.is_dir() and any(run_dir.iterdir()):  # a trial's folder is never reused
        raise RunError(f"{run_dir} already holds a trial: choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    record["started"] = time.time()
    write_trial(run_dir, record)
    try:
        with training_callbacks(ScoreReporter(heard)):
            model = fit(data.data, data.val, data.test, out=run_dir, overwrite=True,
                        **data.columns, **fit_options(params))  # fmt: skip
        outcome = _outcome(model, started, len(record["scores"]))
    except BaseException as error:
        # Optuna's pruning, or Ray stopping the trial's thread (its scheduler's pruning)
        pruned = type(error).__name__ == "TrialPruned" or isinstance(error, SystemExit)
        record["state"] = "PRUNED" if pruned else "FAIL"
        record["error"] = None if pruned else one_line(error)
        record["seconds"] = round(time.perf_counter() - started, 3)
        write_trial(run_dir, record)
        raise
    record.update(vars(outcome), state="COMPLETE")
    write_trial(run_dir, record)
    return outcome


def _outcome(model: Any, started: float, epochs: int) -> TrialOutcome:
    """A fitted trial's score (the kept phase's validation score), time and cache counts."""
    kept = model.kept_phase_.get("val_score")
    score = float(kept if kept is not None else model.fitted_task_.score(model.metrics_["val"]))
    cache = model.summary_.get("feature_cache", {})
    seconds = round(time.perf_counter() - started, 3)
    hits, misses = int(cache.get("hits", 0)), int(cache.get("misses", 0))
    return TrialOutcome(score, seconds, epochs, hits, misses)


def one_line(error: BaseException) -> str:
    """An error as one line: its type and first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


def write_trial(run_dir: Path, record: dict) -> None:
    """``trial.json``, replaced whole."""
    temporary = run_dir / f".{TRIAL_FILE}.tmp"
    temporary.write_text(json.dumps(record, default=str))
    os.replace(temporary, run_dir / TRIAL_FILE)


def read_trial(run_dir: Path) -> dict | None:
    """A trial's record, or None when it has none (yet)."""
    try:
        return json.loads((run_dir / TRIAL_FILE).read_text())
    except (OSError, ValueError):
        return None
