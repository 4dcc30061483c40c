"""graft: adapt a pretrained image or text model to a small labelled dataset.

>>> import graft
>>> model = graft.fit("examples/flowers", strategy="feature-extract")  # doctest: +SKIP
>>> model.predict(["photo.jpg"])  # doctest: +SKIP
"""

__version__ = "0.1.0"

from graft.config import FitConfig  # noqa: E402
from graft.errors import ConfigError, DataError, GraftError, ModelUnavailableError, RunError  # noqa: E402
from graft.model import GraftClassifier, fit, resume  # noqa: E402
from graft.multitask import MultiTaskClassifier  # noqa: E402
from graft.persistence import load  # noqa: E402
from graft.pretraining import pretrain  # noqa: E402
from graft.selection.ranking import rank  # noqa: E402

__all__ = [
    "ConfigError",
    "DataError",
    "FitConfig",
    "GraftClassifier",
    "GraftError",
    "ModelUnavailableError",
    "MultiTaskClassifier",
    "RunError",
    "__version__",
    "fit",
    "load",
    "pretrain",
    "rank",
    "resume",
]
