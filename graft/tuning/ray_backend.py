"""``graft tune --ray``: the study's trials as Ray Tune trials, on a cluster or a local Ray.

The same Optuna search drives them (Ray's :class:`~ray.tune.search.optuna.OptunaSearch`, its
study kept in ``DIR/study.db`` as a local study's is), the same per-epoch validation score
reaches Ray's scheduler (ASHA, or the median stopping rule), and each trial is the same
:func:`graft.tuning.trial.run_trial` writing its run directory ``DIR/trial-<ray id>``, so the
table and the ``best`` link are built as for a local study. ``DIR`` must be storage every node
reaches (NFS, a mounted bucket): the trials write their run directories and the shared
feature cache there, and Ray keeps its experiment state in ``DIR/ray-*``.

Connecting: ``address="auto"`` joins the cluster in ``RAY_ADDRESS`` or starts a Ray on this
machine; another address joins that cluster. A Ray already started in this process is used as
it is (and left running).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graft.errors import ConfigError
from graft.tuning.trial import TrialData, read_trial, run_trial, write_trial


def require_ray() -> None:
    """Refuse in one line when Ray (with Tune and Data) is not installed."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
        import ray.tune  # noqa: F401
    except ImportError:
        raise ConfigError('--ray needs Ray: pip install "graft[ray]"') from None


def parse_resources(text: str | dict | None) -> dict[str, float]:
    """``cpu=2,gpu=1`` as Ray's resources of one trial (default: one CPU)."""
    if text is None:
        return {"cpu": 1.0}
    if isinstance(text, dict):
        pairs = list(text.items())
    else:
        pairs = [part.partition("=")[::2] for part in str(text).split(",") if part.strip()]
    resources = {}
    for key, value in pairs:
        key = str(key).strip().lower()
        try:
            amount = float(value)
        except (TypeError, ValueError):
            amount = -1.0
        if key not in ("cpu", "gpu") or amount < 0:
            raise ConfigError(
                f"--trial-resources {text}: give cpu=N and/or gpu=N, like cpu=2,gpu=1"
            )
        resources[key] = amount
    return resources


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[None]:
    """Ray, joined or started for the block (left as it was when this process had one)."""
    import ray

    if ray.is_initialized():
        yield
        return
    target = None if address in (None, "", "auto") else address  # None: RAY_ADDRESS or local
    try:
        ray.init(address=target, include_dashboard=False, log_to_driver=False)
    except ConnectionError as error:
        raise ConfigError(f"--ray-address {address}: no Ray cluster there ({error})") from None
    try:
        yield
    finally:
        ray.shutdown()


def _scheduler(pruner: str) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    # Epochs, not seconds, and trials stopped rather than paused (a paused function trial
    # would start again from scratch).
    score = {"metric": "val_score", "mode": "max", "time_attr": "training_iteration"}
    if pruner == "asha":
        return ASHAScheduler(max_t=10_000, grace_period=2, reduction_factor=3, **score)
    if pruner == "median":
        return MedianStoppingRule(
            grace_period=2, min_samples_required=2, hard_stop=True, min_time_slice=1e12, **score
        )
    return FIFOScheduler()


#: The key of a Ray trial's configuration that holds its Optuna trial number (its order).
NUMBER = "graft_trial"


class _Numbered:
    """The space's define-by-run function, adding the Optuna trial number to the options."""

    def __init__(self, space: Any):
        self.space = space

    def __call__(self, trial: Any) -> dict:
        return {**self.space.suggest(trial), NUMBER: trial.number}


def _trainable(data: TrialData, out: str, config: dict) -> None:
    """One Ray trial: a graft fit reporting each epoch's validation score to Tune."""
    from ray import tune

    folder = Path(out) / f"trial-{tune.get_context().get_trial_id()}"
    if folder.exists():  # this very trial, started again by Ray (a lost node): from scratch
        shutil.rmtree(folder)

    def report(step: int, score: float) -> None:
        tune.report({"val_score": score, "epoch": step})

    options = {k: v for k, v in config.items() if k != NUMBER}
    outcome = run_trial(data, options, folder, report, number=config.get(NUMBER))
    tune.report({"val_score": outcome.score, "epoch": outcome.epochs + 1, "final": True})


def _ended_callback(out: Path) -> Any:
    """A Tune callback that records how each trial ended in its ``trial.json``: one Ray
    stopped while running was pruned; one that errored failed (a crashed worker too)."""
    from ray.tune import Callback

    class Ended(Callback):
        def _mark(self, trial: Any, state: str) -> None:
            folder = out / f"trial-{trial.trial_id}"
            record = read_trial(folder)
            if record is None:
                folder.mkdir(parents=True, exist_ok=True)
                config = dict(trial.config)
                number = config.pop(NUMBER, None)
                record = {"params": config, "number": number, "scores": [], "started": time.time()}
            elif record.get("state") == "COMPLETE" or (
                state == "FAIL" and record.get("state") != "RUNNING"
            ):
                return  # complete, or failed with its own error
            record["state"] = state
            if state == "PRUNED":
                record["error"] = None  # what stopping it raised in the trial, if anything
            else:
                record["error"] = record.get("error") or "the Ray worker running it crashed"
            write_trial(folder, record)

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self._mark(trial, "PRUNED")

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            self._mark(trial, "FAIL")

    return Ended()


def trial_names(out: Path) -> list[str]:
    """The trial folders of ``out``, in the order of their Optuna trial numbers."""
    folders = [p for p in out.glob("trial-*") if p.is_dir()]
    records = {p.name: read_trial(p) or {} for p in folders}

    def order(name: str) -> tuple:
        record = records[name]
        number = record.get("number")
        return (number is None, number or 0, record.get("started", 0.0), name)

    return sorted(records, key=order)


def run_ray(
    data: TrialData,
    space: Any,
    out: Path,
    trials: int,
    time_limit: float | None,
    pruner: str,
    address: str | None,
    resources: str | dict | None,
) -> tuple[list[str], dict[str, str]]:
    """Run the study's remaining trials on Ray; every trial's folder (states: in the records)."""
    require_ray()
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from graft.tuning.storage import STUDY_NAME, sampler_seed, storage_url

    share = parse_resources(resources)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 is then silent
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*reported value is ignored.*")  # Tune's last report
    remaining = trials - len(trial_names(out))
    if remaining > 0:
        with connected(address):
            search = OptunaSearch(
                space=_Numbered(space),
                storage=optuna.storages.RDBStorage(storage_url(out)),
                study_name=STUDY_NAME,
                metric="val_score",
                mode="max",
                seed=sampler_seed(space, trials - remaining),
            )
            tuner = tune.Tuner(
                tune.with_resources(functools.partial(_trainable, data, str(out)), share),
                tune_config=tune.TuneConfig(
                    search_alg=search,
                    scheduler=_scheduler(pruner),
                    num_samples=remaining,
                    time_budget_s=time_limit,
                ),
                run_config=tune.RunConfig(
                    name=time.strftime("ray-%Y%m%d-%H%M%S"),
                    storage_path=str(out),
                    verbose=0,
                    callbacks=[_ended_callback(out)],
                ),
            )
            tuner.fit()
    return trial_names(out), {}
