"""``graft predict RUN INPUTS --out FILE --ray``: batch prediction on a Ray cluster.

The inputs are listed as the local ``predict --out`` lists them (:class:`graft.batch_prediction
.InputStream`: folders, tables, globs, lists of files on shared storage); Ray Data spreads them
over a pool of actors (``map_batches``), each of which loads the run once, with the engine the
driver chose (the run's ONNX export when it has a current one, else torch), and reads,
preprocesses and predicts its batches (:func:`graft.batch_prediction.answer_items`). The rows
come back in input order and are written by the local writers, so the file, its rows and its
resumption (``<out>.partial``) are those of :func:`graft.batch_prediction.predict_to_file`: a
prediction interrupted with or without ``--ray`` continues with or without it.

Workers: ``workers`` actors (default: one per GPU of the cluster, else one per CPU), each with
one GPU when the cluster has GPUs, else one CPU.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from graft.batch_prediction import BatchPrediction, InputStream, answer_items, predict_to_file
from graft.errors import ConfigError, RunError


class RayAnswers:
    """The ``answers`` of :func:`predict_to_file` computed by Ray Data actors."""

    def __init__(self, model: Any, workers: int | None, options: dict):
        run = getattr(model, "run_dir_", None)
        if run is None:
            raise RunError("--ray loads the model in each worker: give the run directory")
        self.run, self.workers, self.options = str(Path(run).resolve()), workers, options
        self.engine = getattr(model, "engine_name_", "torch")
        export = getattr(model, "export_dir_", None)
        self.export = None if export is None else str(Path(export).resolve())

    def __call__(
        self, model: Any, task: Any, stream: InputStream, skip: int, batch_size: int, top_k: int
    ) -> Iterator[tuple[list, list[dict]]]:
        import ray

        items = list(islice(iter(stream), skip, None))
        if not items:
            return
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        rows = [{"index": i, "item": pickle.dumps(item)} for i, item in enumerate(items)]
        answered = ray.data.from_items(rows).map_batches(
            _Predictor,
            fn_constructor_kwargs=dict(
                run=self.run,
                engine=self.engine,
                export=self.export,
                top_k=top_k,
                options=self.options,
            ),  # fmt: skip
            batch_size=batch_size,
            batch_format="numpy",
            **self._pool(),
        )
        done = 0
        for batch in answered.iter_batches(batch_size=None, batch_format="numpy"):
            indices = [int(i) for i in batch["index"]]
            if indices != list(range(done, done + len(indices))):
                raise RunError("Ray returned the answers out of input order")
            yield items[done : done + len(indices)], [json.loads(r) for r in batch["row"]]
            done += len(indices)

    def _pool(self) -> dict:
        """The actor pool: its size and each actor's share of the cluster."""
        import ray

        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        workers = self.workers or gpus or max(1, int(resources.get("CPU", 1)))
        share = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        return {"compute": ray.data.ActorPoolStrategy(size=workers), **share}


class _Predictor:
    """A Ray actor: the run loaded once, then each batch's rows as JSON text."""

    def __init__(self, run: str, engine: str, export: str | None, top_k: int, options: dict):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from graft.api import load
        from graft.tasks.capabilities import configured

        self.model = load(run, engine=engine, export=export)
        self.task = configured(self.model.fitted_task_, **options)
        self.top_k = top_k

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        items = [pickle.loads(item) for item in batch["item"]]
        rows = answer_items(self.model, self.task, items, self.top_k)
        encoded = np.array([json.dumps(row) for row in rows], dtype=object)
        return {"index": batch["index"], "row": encoded}


def predict_on_ray(
    model: Any,
    inputs: list,
    out: str | os.PathLike,
    *,
    address: str | None = "auto",
    workers: int | None = None,
    **arguments: Any,
) -> BatchPrediction:
    """:func:`graft.batch_prediction.predict_to_file` with the predictions made by Ray Data
    actors (``address``: ``auto`` for ``RAY_ADDRESS`` or a Ray on this machine; ``workers``:
    the number of actors). ``arguments``: those of ``predict_to_file`` and the kind's options."""
    from graft.tuning.ray_backend import connected, require_ray

    require_ray()
    if workers is not None and workers < 1:
        raise ConfigError(f"--ray-workers must be at least 1, got {workers}")
    kind_options = {
        k: v
        for k, v in arguments.items()
        if k not in ("column", "top_k", "batch_size", "overwrite", "progress")
    }
    with connected(address):
        answers = RayAnswers(model, workers, kind_options)
        return predict_to_file(model, inputs, out, answers=answers, **arguments)
