"""Pre-training a backbone on a larger dataset you own, labelled or not.

One module per objective: :mod:`.supervised` (the data's labels), :mod:`.simclr` (contrastive
learning on augmented views of images) and :mod:`.mlm` (masked-language-model training on
text); each is a LightningModule trained by graft's one engine
(:func:`graft.training.engine.run_phase`). :func:`pretrain` writes a run whose backbone
``graft fit --model RUN`` loads like any other (:mod:`.run`). The names below are imported on
first use, so reading the configuration (:mod:`.config`) costs no torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graft.pretraining.run import PretrainResult, pretrain, resume_pretrain

__all__ = ["PretrainResult", "pretrain", "resume_pretrain"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from graft.pretraining import run

        return getattr(run, name)
    raise AttributeError(f"module 'graft.pretraining' has no attribute {name!r}")
