"""``graft tune``: an Optuna study whose trials are graft fits, run here or on Ray.

:func:`tune` reads the data once to learn its kind (hence its default space,
:mod:`graft.tuning.space`), then runs trials until the study holds ``trials`` of them or
``time_limit`` seconds have passed (no trial starts after that): here one after the other
(:func:`run_local`: Optuna's TPE sampler, median or ASHA pruning on the validation score each
epoch reports), or as Ray Tune trials (:mod:`graft.tuning.ray_backend`). Each trial is a run
directory ``DIR/trial-NNN`` that ``graft load``, ``predict`` and ``report`` read as any other.

Resuming: the study lives in ``DIR/study.db`` (Optuna's SQLite storage, ``load_if_exists``),
so the same command again continues it: trials already there count towards ``trials``, a
trial that was running when the process was killed is marked failed, and new trials get new
numbers, so no trial directory is ever written twice. One process runs a study at a time
(``DIR`` is locked while it does).

Shared feature cache: unless ``cache_dir`` is given, every trial caches frozen-backbone
features in ``DIR/cache``, so in a feature-extract search only the first trial runs the
backbone over the data; the others read its features.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft.errors import ConfigError, RunError
from graft.tuning.space import SearchSpace, build_space
from graft.tuning.storage import STUDY_NAME, sampler_seed, storage_url
from graft.tuning.table import trial_rows, write_search_page, write_table
from graft.tuning.trial import TrialData, run_trial

log = logging.getLogger("graft")

PRUNERS = ("median", "asha", "none")
#: Arguments of :func:`tune` that name data columns, passed to every fit as they are.
COLUMN_ARGUMENTS = ("text_column", "image_column", "label_column", "audio_column")


@dataclass
class TuneResult:
    """What :func:`tune` did: every trial's row (``rows``), the ``best`` one (None when no
    trial completed), the space searched and where it all is (``out``)."""

    out: Path
    rows: list[dict]
    best: dict | None
    space: SearchSpace
    backend: str

    @property
    def best_dir(self) -> Path | None:
        return None if self.best is None else self.out / self.best["run_dir"]

    def load_best(self) -> Any:
        """The best trial's model (:func:`graft.load`)."""
        from graft.api import load

        if self.best_dir is None:
            raise RunError(f"{self.out}: no trial completed, so there is no best model")
        return load(self.best_dir)


def require_optuna() -> None:
    """Refuse in one line when Optuna is not installed."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError('graft tune needs Optuna: pip install "graft[tune]"') from None


def tune(
    data: Any,
    val: Any = None,
    test: Any = None,
    *,
    out: str | os.PathLike,
    trials: int = 10,
    time_limit: float | None = None,
    space: str | os.PathLike | dict | None = None,
    pruner: str = "median",
    ray: str | None = None,
    trial_resources: str | dict | None = None,
    **options: Any,
) -> TuneResult:
    """Search the options of a fit of ``data`` (see the module docstring).

    Args:
        out: the study's folder (trials, ``study.db``, ``trials.csv``, ``best``, ``search.html``);
            with ``ray``, storage every worker reaches.
        trials: how many trials the study holds when done (those of an earlier run count).
        time_limit: seconds after which no trial starts.
        space: None (the data's kind's default), ``"feature-extract"``, ``"fine-tune"``, a
            YAML file or a mapping (:mod:`graft.tuning.space`).
        pruner: ``median``, ``asha`` or ``none``.
        ray: run the trials on Ray: ``"auto"`` (``RAY_ADDRESS``, else a local Ray) or a
            cluster's address.
        trial_resources: with ``ray``, each trial's share: ``"cpu=2,gpu=1"``.
        **options: the data's columns (``label_column``, ...) and options of :func:`graft.fit`:
            a value fixes it, a tuple ``(low, high)`` searches a range, a list the choices.
    """
    require_optuna()
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    if pruner not in PRUNERS:
        raise ConfigError(f"--pruner {pruner}: choose one of {', '.join(PRUNERS)}")
    out = Path(out).expanduser().resolve()
    columns = {k: options.pop(k, None) for k in COLUMN_ARGUMENTS}
    columns = {k: v for k, v in columns.items() if v is not None}
    trial_data = TrialData(_absolute(data), _absolute(val), _absolute(test), columns)
    fixed = {k: v for k, v in options.items() if not isinstance(v, tuple | list)}
    from graft.runs.directory import run_lock

    with run_lock(out):
        _check_same_study(out, trial_data)
        searched = build_space(space, *_kind(trial_data, fixed), options, _known_options())
        searched.fixed.setdefault("cache_dir", str(out / "cache"))
        searched.fixed.setdefault("progress", False)
        _record_study(out, trial_data, searched)
        if ray is not None:
            from graft.tuning.ray_backend import run_ray

            names, states = run_ray(
                trial_data, searched, out, trials, time_limit, pruner, ray, trial_resources
            )
        else:
            names, states = run_local(trial_data, searched, out, trials, time_limit, pruner)
        rows = trial_rows(out, names, states, searched.fixed)
        best = write_table(out, rows, searched.names())
        write_search_page(out, rows, importance(out))
    return TuneResult(out, rows, best, searched, "ray" if ray is not None else "local")


def _absolute(value: Any) -> Any:
    """A path as an absolute string (trials may run in other processes); anything else as is."""
    if isinstance(value, str | os.PathLike) and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def _known_options() -> set[str]:
    from graft.config import FitConfig, kind_option_owners

    names = {f.name for f in dataclasses.fields(FitConfig)} - {"task_options"}
    return names | set(kind_option_owners())


def _kind(data: TrialData, fixed: dict[str, Any]) -> tuple[str, str]:
    """The data's kind of task and modality, as a fit with the ``fixed`` options reads them."""
    from graft.config import FitConfig
    from graft.tasks import read_task_data

    config = FitConfig.from_params(fixed)
    task_class, splits = read_task_data(config, data.data, data.val, data.test, data.columns)
    return task_class.kind, splits.train.modality


def _data_record(data: TrialData) -> dict:
    return {
        "data": [str(v) if v is not None else None for v in (data.data, data.val, data.test)],
        "columns": data.columns,
    }


def _check_same_study(out: Path, data: TrialData) -> None:
    """Refuse to continue the study in ``DIR/tune.json`` with other data."""
    path, record = out / "tune.json", _data_record(data)
    if path.is_file():
        before = json.loads(path.read_text())
        if {k: before.get(k) for k in record} != record:
            raise RunError(
                f"{out} holds a study of other data ({before.get('data')}): choose another --out"
            )


def _record_study(out: Path, data: TrialData, space: SearchSpace) -> None:
    """``DIR/tune.json``: the study's data, space and fixed options."""
    record = {**_data_record(data), "space": space.describe(), "fixed": space.fixed}
    (out / "tune.json").write_text(json.dumps(record, default=str))


def optuna_pruner(name: str) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def run_local(
    data: TrialData,
    space: SearchSpace,
    out: Path,
    trials: int,
    time_limit: float | None,
    pruner: str,
) -> tuple[list[str], dict[str, str]]:
    """Run the study's remaining trials in this process; every trial's folder and state."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage_url(out),
        direction="maximize",
        pruner=optuna_pruner(pruner),
        load_if_exists=True,
    )
    # Seeded, and continued (not replayed) when the study resumes: seed + trials so far.
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(space, len(study.trials)))
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # killed while running
        log.warning("trial %d was interrupted: recorded as failed", stale.number)

    def objective(trial: Any) -> float:
        name = f"trial-{trial.number:03d}"
        trial.set_user_attr("run_dir", name)

        def report(step: int, score: float) -> None:
            trial.report(score, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {step}")

        return run_trial(data, space.suggest(trial), out / name, report, trial.number).score

    remaining = trials - len(study.trials)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=time_limit, catch=(Exception,))
    names = [f"trial-{t.number:03d}" for t in study.trials]
    return names, {f"trial-{t.number:03d}": t.state.name for t in study.trials}


def importance(out: Path) -> dict[str, float] | None:
    """Each searched option's importance to the score over the complete trials that drew it
    (fANOVA), or None when there are too few to tell."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(out))
        complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        drawn = [t for t in complete if t.params and t.value is not None]
        if len(drawn) < 2:
            return None
        copy = optuna.create_study(direction="maximize")
        copy.add_trials(drawn)
        return dict(optuna.importance.get_param_importances(copy))
    except Exception as error:  # importance is a nicety: never fail a study over it
        log.info("option importance not measured: %s", error)
        return None
