"""Transfer strategies: each turns a configuration into the phases the engine runs."""

from graft.strategies.base import Strategy
from graft.strategies.feature_extract import FeatureExtract
from graft.strategies.fine_tune import FineTune

STRATEGIES: dict[str, type[Strategy]] = {
    FeatureExtract.name: FeatureExtract,
    FineTune.name: FineTune,
}

__all__ = ["STRATEGIES", "FeatureExtract", "FineTune", "Strategy"]
