"""The learning-rate range test, with Lightning's tuner.

Smith 2017 ("Cyclical Learning Rates for Training Neural Networks"), as fastai's ``lr_find``:
train for a few steps while the rate grows exponentially from ``min_lr`` to ``max_lr`` and
record the smoothed loss (Lightning's tuner), then suggest a rate with fastai's "valley" rule:
the longest stretch over which the loss keeps falling, a little past its middle. (Lightning's own
suggestion, the steepest point of the curve, is thrown off by the noise of small datasets and
by the warm-up of the loss smoothing.) graft runs it on the new
head over cached frozen features (the head is what ``--lr`` sets; the backbone trains at a fixed
fraction of it), so it costs the one feature extraction and about a hundred cheap steps.
"""

from __future__ import annotations

import copy
import logging
import math
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from graft.training.distributed import EngineOptions
from graft.training.module import TransferModule

log = logging.getLogger("graft")
warnings.filterwarnings("ignore", ".*but have no `val_dataloader`.*")  # none needed here

#: The rate used when the range test finds no clear slope (a loss that never falls).
FALLBACK_LR = 3e-3


@dataclass
class LRFinding:
    """The loss at each tried learning rate, and the suggested rate."""

    learning_rates: list[float]
    losses: list[float]
    suggestion: float
    fallback: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def plot(self, path: str | Path) -> Path:
        """Draw the loss against the learning rate (log scale), the suggestion marked, as PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from graft.runs.directory import atomic_write

        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot(self.learning_rates, self.losses)
        axes.axvline(self.suggestion, color="tab:red", linestyle="--")
        axes.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)")
        axes.set_title(f"suggested learning rate {self.suggestion:.2e}")
        figure.tight_layout()
        path = Path(path)
        atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=120))
        plt.close(figure)
        return path


def find_learning_rate(
    module: TransferModule,
    train_loader: DataLoader,
    options: EngineOptions,
    seed: int,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = 100,
) -> LRFinding:
    """Run the range test on a copy of ``module`` (the module itself is left untouched).
    Lightning's temporary checkpoint of the range test goes to a scratch folder, never the
    user's working directory (an interrupted test would leave it there)."""
    L.seed_everything(seed, workers=True, verbose=False)
    from lightning.pytorch.tuner import Tuner

    with tempfile.TemporaryDirectory(prefix="graft-lr-find-") as scratch:
        trainer = L.Trainer(
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=options.progress,
            enable_model_summary=False,
            default_root_dir=scratch,
            **options.trainer_arguments(distributed_phase=False),
        )
        finder = Tuner(trainer).lr_find(
            copy.deepcopy(module),
            train_dataloaders=train_loader,
            min_lr=min_lr,
            max_lr=max_lr,
            num_training=steps,
            update_attr=False,
        )
    rates = [float(v) for v in finder.results.get("lr", [])]
    losses = [float(v) for v in finder.results.get("loss", [])]
    suggestion = valley(rates, losses)
    if suggestion is None:
        log.warning("the learning-rate finder found no falling loss; using %g", FALLBACK_LR)
        return LRFinding(rates, losses, FALLBACK_LR, fallback=True)
    return LRFinding(rates, losses, float(suggestion))


def valley(rates: list[float], losses: list[float], skip_begin: int = 10) -> float | None:
    """fastai's ``valley``: the longest decreasing subsequence of the losses (after the first
    ``skip_begin``, where the smoothing warms up), and the rate about half-way along it."""
    rates, losses = rates[skip_begin:], losses[skip_begin:]
    finite = [i for i, loss in enumerate(losses) if math.isfinite(loss)]
    rates, losses = [rates[i] for i in finite], [losses[i] for i in finite]
    if len(losses) < 3:
        return None
    length = [1] * len(losses)  # length of the longest decreasing run ending at each point
    start, end = 0, 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and length[i] < length[j] + 1:
                length[i] = length[j] + 1
        if length[i] > length[end]:
            end, start = i, i - length[i]
    if end == 0:
        return None
    third = (end - start) / 3
    return rates[start + int(third) + int(third / 2)]
