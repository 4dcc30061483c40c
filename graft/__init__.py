"""graft: adapt a pretrained image or text model to a small labelled dataset.

>>> import graft
>>> model = graft.fit("examples/flowers", strategy="feature-extract")  # doctest: +SKIP
>>> model.predict(["photo.jpg"])  # doctest: +SKIP

Importing graft is cheap: the names below are loaded when first used (PEP 562), so that
``graft --help`` answers before torch is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graft.errors import (
    ConfigError,
    DataError,
    GraftError,
    ModelUnavailableError,
    NotFittedError,
    RunError,
)
from graft.logs import install as _printable_logs
from graft.version import __version__

_printable_logs()

if TYPE_CHECKING:
    from graft.api import adapt, fit, load, resume, zero_shot
    from graft.config import FitConfig
    from graft.estimator import GraftClassifier, GraftEstimator
    from graft.multitask import MultiTaskClassifier
    from graft.pretraining import pretrain
    from graft.selection.ranking import rank
    from graft.tuning.study import tune

__all__ = [
    "ConfigError",
    "DataError",
    "FitConfig",
    "GraftClassifier",
    "GraftEstimator",
    "GraftError",
    "ModelUnavailableError",
    "MultiTaskClassifier",
    "NotFittedError",
    "RunError",
    "__version__",
    "adapt",
    "fit",
    "load",
    "pretrain",
    "rank",
    "resume",
    "tune",
    "zero_shot",
]


def __getattr__(name: str) -> Any:
    """The public names that need torch, imported on first use."""
    if name in ("adapt", "fit", "load", "resume", "zero_shot"):
        from graft import api

        return getattr(api, name)
    if name == "FitConfig":
        from graft.config import FitConfig

        return FitConfig
    if name in ("GraftEstimator", "GraftClassifier"):
        from graft import estimator

        return getattr(estimator, name)
    if name == "MultiTaskClassifier":
        from graft.multitask import MultiTaskClassifier

        return MultiTaskClassifier
    if name == "pretrain":
        from graft.pretraining import pretrain

        return pretrain
    if name == "tune":
        from graft.tuning.study import tune

        return tune
    if name == "rank":
        from graft.selection.ranking import rank

        return rank
    raise AttributeError(f"module 'graft' has no attribute {name!r}")
