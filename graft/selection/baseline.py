"""``--baseline scratch``: did pretraining help? The same network trained from random weights.

Transfer can hurt when the source domain is far from the target (negative transfer: Rosenstein
et al. 2005; Wang, Dai, Póczos and Carbonell, "Characterizing and Avoiding Negative Transfer",
CVPR 2019). The only direct measure is a control: the same architecture, initialised at random
(``scratch:MODEL``, :mod:`graft.backbones.registry`), trained on the same splits with the same
seed and the same number of epochs (and no domain adaptation). Every layer of it trains (there
are no pretrained features to protect, so the backbone learns at the head's rate). The transfer
gain is the pretrained model's score minus the scratch model's, on validation and test data; a
negative gain is reported as negative transfer.
"""

from __future__ import annotations

import logging
from typing import Any

from graft.data import DataSplits

log = logging.getLogger("graft")


def scratch_params(params: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The fit parameters of the from-scratch control of a fit with ``params``."""
    return {
        **params,
        "model": f"scratch:{params['model']}",
        "strategy": "full",
        "epochs": epochs,
        "backbone_lr_mult": 1.0,
        "layer_decay": 1.0,
        "views": 1,
        "lora_rank": None,
        "lora_alpha": None,
        "lora_targets": None,
        "baseline": None,
        "baseline_epochs": None,
        "adapt": "none",  # the control trains on the source data alone
        "progress": False,
    }


def transfer_gain(pretrained: dict, scratch: dict, metric: str) -> dict:
    """Pretrained minus scratch ``metric`` per split (``{"val": {...}, "test": {...}}``
    metrics; the task's headline metric)."""
    splits = {}
    for name in ("val", "test"):
        if name in pretrained and name in scratch:
            ours, theirs = pretrained[name][metric], scratch[name][metric]
            gain = None if ours is None or theirs is None else ours - theirs
            splits[name] = {"pretrained": ours, "scratch": theirs, "gain": gain}
    return {"metric": metric, **splits}


def verdict(gain: float | None) -> str:
    if gain is None:
        return "undetermined"
    return "negative transfer" if gain < 0 else "positive transfer"


def fit_scratch_baseline(model, splits: DataSplits, estimator: type) -> dict:
    """Train the scratch control of the fitted ``model`` on its ``splits`` with a new
    ``estimator`` (its class); the gain record.

    The budget is ``baseline_epochs``, or by default as many epochs as the pretrained fit ran
    in all its phases together.
    """
    config = model.config_
    epochs = config.baseline_epochs or len(model.history_)
    params = scratch_params(config.to_dict(), epochs)
    log.info("baseline: %s from scratch, %d epochs", config.model, epochs)
    scratch = estimator(**params).fit(splits.train, splits.val, splits.test)
    gain = transfer_gain(model.metrics_, scratch.metrics_, model.fitted_task_.headline)
    deciding = gain.get("test", gain.get("val", {})).get("gain")
    return {
        "baseline": params["model"],
        "epochs": epochs,
        "seconds": round(scratch.summary_["seconds"]["total"], 3),
        **gain,
        "verdict": verdict(deciding),
    }
