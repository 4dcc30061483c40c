"""Training a tagging head: the one LightningModule, scoring words instead of whole inputs.

:class:`TaggingModule` is :class:`~graft.training.module.TransferModule` (phases, optimiser
groups, layer decay, frozen-backbone handling and the warm-up and cosine schedule are all
its) with a ``forward`` that returns one row of tag logits per word: the encoder reads the
batch's windows, each word takes the hidden state of its first sub-token
(:func:`graft.tasks.tagging.batches.at_words`) and the head classifies it. A head-only phase
reads words' cached features instead (:mod:`graft.tasks.tagging.word_features`), so the encoder
runs once for the whole phase rather than once per epoch.

The loss is the token cross-entropy of Devlin et al. 2019's CoNLL-2003 setup,
``-mean_w log p(tag_w | word_w)`` over the scored words, and the validation score the entity
F1 of the constrained decoding (:class:`graft.tasks.tagging.entity_f1.EntityF1`), by which every
phase, the head's included, keeps its epoch (:meth:`graft.tasks.tagging.task.TaggingTask.plan`).
"""

from __future__ import annotations

import torch

from graft.tasks.tagging.batches import at_words
from graft.training.module import TransferModule

#: The batch key of cached word features (head-only phases).
WORD_FEATURES = "word_features"


class TaggingModule(TransferModule):
    """A TransferModule whose outputs are word-level tag logits ``[sentences, words, tags]``."""

    def __init__(self, head, phase, backbone=None, **options):
        # a head-only phase reads cached word features: the frozen encoder stays out of the
        # module (and out of its checkpoints)
        backbone = backbone if phase.train_backbone else None
        super().__init__(head, phase, backbone, **options)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if WORD_FEATURES in inputs:
            return self.head(inputs[WORD_FEATURES])
        hidden = self.backbone(inputs)
        return self.head(at_words(hidden, inputs["word_position"]))
