"""The loss of several tasks trained at once: each task's loss over the rows labelled for it,
weighted and summed.

A batch of a multi-task fit holds rows that miss the label of some task (NaN, see
:mod:`graft.tasks.classification.multitask_data`). Each task's loss (its
:meth:`graft.tasks.capabilities.HeadLoss.loss`) is
the mean over the rows that carry its label (:func:`masked_task_losses`), so a row without a
sentiment label still trains the topic head, and the shared backbone through it. The task
losses then add up with fixed weights or with weights learned by homoscedastic uncertainty
(:class:`TaskWeighting`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def labelled_rows(targets: Tensor) -> Tensor:
    """bool ``[n]``: the rows of a task's targets ``[n, width]`` that carry a label (a missing
    label is NaN)."""
    return ~torch.isnan(targets.reshape(len(targets), -1)).any(dim=1)


def masked_task_losses(
    outputs: dict[str, Tensor],
    targets: dict[str, Tensor],
    tasks: dict[str, Any],
    label_smoothing: float = 0.0,
) -> tuple[dict[str, Tensor], dict[str, int]]:
    """Each task's mean loss over its labelled rows, and how many rows that is.

    Args:
        outputs: task -> its head's outputs ``[n, outputs]``.
        targets: task -> ``[n, width]``: the class index as a float (multiclass), 0/1 per
            label (multilabel) or the standardised value (regression); NaN where missing.
        tasks: task name -> its single-label task (:mod:`graft.tasks`: multiclass,
            multi-label or regression), whose ``loss`` it takes.
        label_smoothing: of the multiclass tasks' cross-entropy.

    Returns:
        ``(losses, counts)``. A task with no labelled row in the batch has count 0 and a loss
        of zero that still depends on its head (so every parameter gets a gradient, as
        distributed training requires).

    Example:
        >>> outputs = {"a": torch.randn(3, 2), "b": torch.randn(3, 1)}
        >>> targets = {"a": torch.tensor([[0.0], [float("nan")], [1.0]]),
        ...            "b": torch.tensor([[0.5], [1.0], [float("nan")]])}
        >>> from graft.tasks.classification.multiclass import MulticlassTask
        >>> from graft.tasks.classification.regression import RegressionTask
        >>> tasks = {"a": MulticlassTask(["x", "y"]), "b": RegressionTask(["b"])}
        >>> losses, counts = masked_task_losses(outputs, targets, tasks)
        >>> counts
        {'a': 2, 'b': 2}
    """
    losses, counts = {}, {}
    for name, task in tasks.items():
        kind = task.kind
        output, target = outputs[name], targets[name]
        rows = labelled_rows(target)
        counts[name] = int(rows.sum())
        if counts[name] == 0:
            losses[name] = output.sum() * 0.0
            continue
        target = target[rows]
        if kind == "multiclass":
            target = target[:, 0].long()
        elif kind == "regression":
            target = target[:, 0]
        smoothing = label_smoothing if kind == "multiclass" else 0.0
        losses[name] = task.loss(output[rows], target, label_smoothing=smoothing)
    return losses, counts


class TaskWeighting(nn.Module):
    """How the tasks' losses L_i add up into the one loss that trains the network.

    Fixed weights w_i (all 1 by default)::

        L = sum_i w_i L_i

    Learned weights by homoscedastic uncertainty (Kendall, Gal and Cipolla, "Multi-Task
    Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR 2018):
    each task has a trained log-variance s_i = log sigma_i^2, starting at 0 (weight 1), and::

        L = sum_i exp(-s_i) L_i + s_i

    A task whose loss stays high (noisy or hard) learns a large s_i, hence a small weight
    exp(-s_i); the + s_i term keeps the weights from collapsing to zero. For fixed network
    weights the optimum is exp(s_i) = L_i.

    The factor 1/2: Kendall et al. derive, from a Gaussian likelihood, 1/2 exp(-s) L + 1/2 s
    for a regression task (L the squared error), and from a scaled softmax, approximately
    exp(-s) L + 1/2 s for a classification task. graft uses exp(-s) L + s for every kind, as
    most implementations do: for regression this is Kendall's term times 2 (the same optimum
    exp(s) = L), and for classification the regulariser has weight 1 rather than 1/2 (optimum
    exp(s) = L rather than 2 L). Each task's term thus has the same form whatever its kind.

    Only the tasks labelled in the batch count: a task with no labelled row adds nothing,
    not even its s_i (which would otherwise drift down with no loss to hold it up).

    Args:
        tasks: the task names, in order.
        weights: task -> fixed weight (None: 1 each); ignored with ``uncertainty``.
        uncertainty: learn the weights (one parameter per task, ``log_variances``).

    Example:
        >>> weighting = TaskWeighting(["a", "b"], uncertainty=True)
        >>> loss = weighting({"a": torch.tensor(0.7), "b": torch.tensor(2.0)})
        >>> round(float(loss), 4)  # exp(-0) 0.7 + 0 + exp(-0) 2.0 + 0
        2.7
    """

    def __init__(
        self,
        tasks: list[str],
        weights: dict[str, float] | None = None,
        uncertainty: bool = False,
    ):
        super().__init__()
        self.tasks = list(tasks)
        fixed = [1.0 if weights is None else float(weights[name]) for name in self.tasks]
        self.register_buffer("fixed", torch.tensor(fixed), persistent=False)
        self.log_variances = nn.Parameter(torch.zeros(len(self.tasks))) if uncertainty else None

    @property
    def uncertainty(self) -> bool:
        return self.log_variances is not None

    def forward(self, losses: dict[str, Tensor], counts: dict[str, int] | None = None) -> Tensor:
        """The weighted sum of ``losses`` (task -> scalar); ``counts`` (task -> labelled rows
        in the batch) leaves out the tasks with none."""
        total = torch.zeros((), device=self.fixed.device)
        for index, name in enumerate(self.tasks):
            if self.log_variances is None:
                term = self.fixed[index] * losses[name]
            else:
                log_variance = self.log_variances[index]
                term = torch.exp(-log_variance) * losses[name] + log_variance
            labelled = counts is None or counts[name] > 0
            total = total + (term if labelled else term * 0.0)
        return total

    def weights(self) -> dict[str, float]:
        """Each task's weight now: the fixed one, or exp(-s_i)."""
        with torch.no_grad():
            values = self.fixed if self.log_variances is None else torch.exp(-self.log_variances)
            return {name: float(v) for name, v in zip(self.tasks, values.cpu(), strict=True)}
