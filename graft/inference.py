"""The inference half of the estimator: answers for image paths, folders, tables or texts.

:class:`Predictor` runs the fitted backbone and head (or an exported model, ``engine_``) over
inputs in batches and hands the outputs to the fitted task (:mod:`graft.tasks`), which turns
them into predictions, probabilities and ranked answers. :class:`graft.GraftEstimator` is a
Predictor that can also fit; :func:`graft.load` restores one from a run.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from graft.data import LabelledData, load_inputs
from graft.data.transforms import longest_first as texts_longest_first
from graft.errors import ConfigError, NotFittedError
from graft.features import FeatureCache, to_device
from graft.tasks.capabilities import (
    JoinsOutputs,
    SeveralTasks,
    check_writes,
    configured,
    infer_exported,
    join,
    served,
)
from graft.training.sampling import loader_workers

#: Inputs whose outputs ``write_predictions`` holds at once (a mask per pixel is large).
WRITE_CHUNK = 32


class Prepared(NamedTuple):
    """One input already made the backbone's input, as the task's dataset makes it (an image
    decoded, resized and normalised): :meth:`Predictor.prepare` gives them, and the model
    batches them as they are."""

    sample: Any


class Predictor:
    """Predictions of a fitted model (see the module docstring).

    Needs the fitted ``backbone_``, ``head_`` and ``fitted_task_``, and ``config`` (its batch
    size and data-loading workers); ``engine_``, when set, answers instead of the modules.
    """

    engine_: Any = None

    # The task's state, as attributes ----------------------------------------------------------

    @property
    def task_(self) -> str:
        """The kind of task: ``multiclass``, ``multilabel``, ``regression`` or ``multitask``."""
        self._check_fitted()
        return self.fitted_task_.kind

    @property
    def classes_(self) -> Any:
        """Class (or label) names in the order of the outputs (for several tasks, per task)."""
        self._check_fitted()
        return self.fitted_task_.classes

    @property
    def thresholds_(self) -> Any:
        """Multi-label: each label's decision threshold (for several tasks, per task)."""
        return self._task_attribute("thresholds")

    @property
    def target_stats_(self) -> Any:
        """Regression: the training target's ``(mean, std)`` (for several tasks, per task)."""
        return self._task_attribute("target_stats")

    @property
    def label_delimiter_(self) -> str | None:
        return getattr(self.fitted_task_, "label_delimiter", None)

    @property
    def tasks_(self) -> dict[str, str]:
        """Several tasks: task (its column) -> its kind."""
        return self._several_tasks().kinds

    @property
    def task_weights_(self) -> dict[str, float]:
        """Several tasks: each task's loss weight at the end of training."""
        return self._several_tasks().weighting.weights()

    def _task_attribute(self, name: str) -> Any:
        self._check_fitted()
        task = self.fitted_task_
        if isinstance(task, SeveralTasks):  # the attribute of each task that has it
            return {n: getattr(t, name) for n, t in task.tasks.items() if hasattr(t, name)}
        return getattr(task, name, None)

    def _several_tasks(self):
        self._check_fitted()
        if not isinstance(self.fitted_task_, SeveralTasks):
            raise AttributeError(f"a {self.task_} model has one task")
        return self.fitted_task_

    def _check_fitted(self) -> None:
        if "head_" not in self.__dict__:
            raise NotFittedError("this model is not fitted yet: call fit() or graft.load()")

    # Outputs -----------------------------------------------------------------------------------

    @torch.inference_mode()
    def _outputs(self, data: Any, cache: FeatureCache | None = None):
        """The head's outputs for ``data`` (labelled data of the task, or a list of items),
        joined by the task (a tensor, or a dict of them by task), float32 on the CPU; from
        cached features when ``cache`` is given (a frozen backbone)."""
        self._check_fitted()
        task = self.fitted_task_
        items = data if isinstance(data, list) else task.items_of(data)
        # the batch size as given, or its fallback (the kind's own trains only)
        if cache is not None:
            data = LabelledData(items, None, [], self.backbone_.modality, "inputs")
            batch = self.config.with_defaults().batch_size
            return self.head_.eval()(cache.features(self.backbone_, data, batch))
        order = longest_first(items, task, self.backbone_.modality)
        if order is not None:
            items = [items[i] for i in order]
        batches = self.input_batches(items, self.config.with_defaults().batch_size * 2)
        if self.engine_ is not None:  # an exported model (--engine onnx)
            outputs = join(task, [infer_exported(task, self.engine_, x) for x in batches])
            return in_input_order(outputs, order)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        backbone, head = self.backbone_.to(device).eval(), self.head_.to(device).eval()
        chunks = [_float_cpu(task.infer(backbone, head, to_device(x, device))) for x in batches]
        backbone.cpu(), head.cpu()
        return in_input_order(join(task, chunks), order)

    def input_batches(self, items: list, batch_size: int):
        """``items`` (image paths, texts, or the task's own items; or all :class:`Prepared`)
        preprocessed for the backbone, batch by batch (a pixel tensor, the tokenizer's dict of
        tensors, ...)."""
        preprocessing, task = self.backbone_.preprocessing, self.fitted_task_
        if items and all(isinstance(item, Prepared) for item in items):
            collate, samples = task.collate(preprocessing), [item.sample for item in items]
            starts = range(0, len(samples), batch_size)
            return (collate(samples[at : at + batch_size])[0] for at in starts)
        loader = DataLoader(
            task.dataset(list(items), preprocessing),
            batch_size=batch_size,
            collate_fn=task.collate(preprocessing),
            num_workers=loader_workers(self.config.num_workers),
        )
        return (inputs for inputs, _ in loader)

    def _items(self, inputs) -> list[str]:
        """The items of ``inputs``: in-memory data's, or what :func:`graft.data.load_inputs`
        reads of a path, a list of them (or of texts, or of images held in memory), or a
        table held in memory (a DataFrame, Series or ``datasets.Dataset``: its input column)."""
        from graft.data.frames import is_frame, is_image_value

        if hasattr(inputs, "items") and hasattr(inputs, "labels"):  # labelled data of any kind
            return list(inputs.items)
        if isinstance(inputs, list) and inputs and all(isinstance(i, tuple) for i in inputs):
            return list(inputs)  # the task's own items (a question with its context)
        if isinstance(inputs, str | os.PathLike) or is_frame(inputs) or is_image_value(inputs):
            inputs = [inputs]
        return load_inputs(list(inputs), self.backbone_.modality)

    # Answers -----------------------------------------------------------------------------------

    def predict(self, inputs, **options):
        """The most probable class name of each input; multilabel: the list of labels at or
        above their threshold; regression: the predicted values (float64 ``[n]``); several
        tasks: each task's answers by task name; detection: each image's boxes. ``options``:
        what some kinds take (a detector's ``score_threshold``:
        :class:`~graft.tasks.capabilities.PredictOptions`)."""
        self._check_fitted()
        task = configured(self.fitted_task_, **options)
        return task.answers(self._outputs(self._items(inputs)))

    def search(self, queries, index, top_k: int = 10) -> list:
        """The ``top_k`` nearest documents of each query (one list for a single query string)
        in ``index``: an index folder written by ``graft index``, or a list of document texts;
        for a model whose kind searches (:class:`~graft.tasks.capabilities.Searches`)."""
        from graft.tasks.capabilities import searcher_of

        self._check_fitted()
        return searcher_of(self).search(queries, index, top_k)

    def recommend(self, user=None, liked=None, top_k: int = 10, similar_to=None) -> list:
        """The ``top_k`` items to recommend (``{"item", "score", "text"}``, best first): to a
        known ``user``, to a new user who ``liked`` some items, or like the item
        ``similar_to``; for a model whose kind recommends
        (:class:`~graft.tasks.capabilities.Recommends`)."""
        from graft.tasks.capabilities import recommender_of

        self._check_fitted()
        return recommender_of(self).recommend(user, liked, top_k, similar_to)

    def predict_proba(self, inputs):
        """Probabilities ``[n, len(classes_)]`` for image paths, folders, tables or texts:
        of each class (softmax), or for multilabel of each label on its own (sigmoid); for
        several tasks, each classification task's."""
        self._check_fitted()
        return self.fitted_task_.probabilities(self._outputs(self._items(inputs)))

    def predict_top_k(self, inputs, k: int = 5):
        """The ``k`` most probable ``(class, probability)`` pairs of each input (for several
        tasks, of each classification task)."""
        if k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {k}")
        chances = self.predict_proba(inputs)
        if isinstance(chances, dict):
            return {t: top_k(c, self.classes_[t], k) for t, c in chances.items()}
        return top_k(chances, self.classes_, k)

    def task_outputs(self, inputs) -> dict[str, np.ndarray]:
        """Several tasks: each task's probabilities, or values for a regression task, from one
        pass of the backbone."""
        return self._several_tasks().task_outputs(self._outputs(self._items(inputs)))

    def prediction_records(self, items: list[str], top_k: int = 1, **options) -> list[dict]:
        """Each input's answer as ``graft predict --json`` prints it (with the input);
        ``options`` as :meth:`predict` takes them."""
        if top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {top_k}")
        task = configured(self.fitted_task_, **options)
        records = task.prediction_records(self._outputs(items), top_k)
        return [{"input": item, **record} for item, record in zip(items, records, strict=True)]

    def write_predictions(
        self, items: list[str], folder: str | os.PathLike, overlay: bool = False, **options
    ) -> list[dict]:
        """Write each input's answer as files into ``folder`` (``graft predict --out``: a
        segmentation model's mask PNGs, and with ``overlay`` each image with its mask
        blended), :data:`WRITE_CHUNK` inputs at a time; each input's record with the files."""
        from pathlib import Path

        writer = check_writes(configured(self.fitted_task_, **options))
        records = []
        for start in range(0, len(items), WRITE_CHUNK):
            part = list(items[start : start + WRITE_CHUNK])
            found = writer.write_predictions(part, self._outputs(part), Path(folder), overlay)
            records += [{"input": item, **row} for item, row in zip(part, found, strict=True)]
        return records

    def prepare(self, items: list) -> list[Prepared]:
        """Each item made the backbone's input as the model's loader makes it, so that it can
        be answered later without that work: ``graft serve`` prepares each request's uploads
        as they arrive, beside the model answering the batch before (whose thread is the
        service's bottleneck), then batches the prepared inputs of several requests."""
        self._check_fitted()
        dataset = self.fitted_task_.dataset(list(items), self.backbone_.preprocessing)
        return [Prepared(dataset[i]) for i in range(len(items))]

    def served_answers(self, items: list, top_k: int) -> list:
        """Each input's answer as ``graft serve`` returns it (an image may be given decoded,
        a PIL image, and any input :class:`Prepared`)."""
        return served(self.fitted_task_).served_answers(self._outputs(items), top_k)


def top_k(chances: np.ndarray, classes: list[str], k: int) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable ``(class, probability)`` pairs of each row of ``chances``."""
    from graft.evaluation.metrics import top_k_pairs

    return top_k_pairs(chances, classes, k)


def longest_first(items: list, task: Any, modality: str) -> np.ndarray | None:
    """Texts in the order that pads least (:func:`graft.data.transforms.longest_first`); None
    for inputs that are not plain texts, or a task that joins its outputs its own way (token
    tagging)."""
    if modality != "text" or isinstance(task, JoinsOutputs):
        return None
    return texts_longest_first(items)


def in_input_order(outputs: Any, order: np.ndarray | None) -> Any:
    """Outputs computed in ``order`` (a tensor, or a dict of tensors by task) put back in the
    order of the inputs."""
    if order is None:
        return outputs
    inverse = torch.as_tensor(np.argsort(order))
    if isinstance(outputs, dict):
        return {name: value[inverse] for name, value in outputs.items()}
    return outputs[inverse]


def _float_cpu(outputs):
    """A head's outputs (a tensor, a dict or list of them) as float32 on the CPU."""
    if isinstance(outputs, dict):
        return {name: _float_cpu(value) for name, value in outputs.items()}
    if isinstance(outputs, list | tuple):
        return type(outputs)(_float_cpu(value) for value in outputs)
    if not isinstance(outputs, torch.Tensor):  # kept as they are (a mask's COCO RLE)
        return outputs
    if outputs.is_floating_point():
        return outputs.float().cpu()
    return outputs.cpu()
