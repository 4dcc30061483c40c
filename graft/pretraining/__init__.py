"""Pre-training a backbone on a larger dataset you own, labelled or not.

One module per objective: :mod:`.supervised` (the data's labels), :mod:`.simclr` (contrastive
learning on augmented views of images) and :mod:`.mlm` (masked-language-model training on
text); each is a LightningModule trained by graft's one engine
(:func:`graft.training.run_phase`). :func:`pretrain` writes a run whose backbone ``graft fit
--model RUN`` loads like any other (:mod:`.run`).
"""

from graft.pretraining.config import OBJECTIVES, PretrainConfig
from graft.pretraining.run import PretrainResult, pretrain, resume_pretrain
from graft.pretraining.simclr import NTXentLoss, nt_xent_loss

__all__ = [
    "NTXentLoss",
    "OBJECTIVES",
    "PretrainConfig",
    "PretrainResult",
    "nt_xent_loss",
    "pretrain",
    "resume_pretrain",
]
