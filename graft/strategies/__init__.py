"""Transfer strategies: each turns a configuration into the phases the engine runs."""

from graft.strategies.base import Strategy
from graft.strategies.contrastive import Contrastive
from graft.strategies.feature_extract import FeatureExtract
from graft.strategies.fine_tune import FineTune
from graft.strategies.full import Full
from graft.strategies.gradual import Gradual
from graft.strategies.lora import Lora
from graft.strategies.partial import Partial

STRATEGIES: dict[str, type[Strategy]] = {
    strategy.name: strategy
    for strategy in (FeatureExtract, FineTune, Full, Partial, Gradual, Lora, Contrastive)
}

__all__ = [
    "STRATEGIES",
    "Contrastive",
    "FeatureExtract",
    "FineTune",
    "Full",
    "Gradual",
    "Lora",
    "Partial",
    "Strategy",
]
