"""Learning from a few labelled examples and from unlabelled data of the same kind.

- :mod:`.pairs`: balanced positive and negative pairs of labelled examples (SetFit's recipes);
- :mod:`.losses`: the cosine pair loss (SetFit) and the supervised contrastive loss (SupCon);
- :mod:`.contrastive`: a LightningModule that fine-tunes a backbone by either loss through
  graft's engine, with its loaders (the phase of ``--strategy contrastive``);
- :mod:`.cross_validation`: stratified k-fold indices and a summary of fold scores;
- :mod:`.few_labels`: no validation split below a size, the fixed recipe, the k-fold estimate;
- :mod:`.semi_supervised`: ``--unlabeled``, self-training on class-balanced pseudo-labels
  (the selection is domain adaptation's: :mod:`graft.adaptation.self_training`), guarded.
"""

from graft.fewshot.cross_validation import stratified_folds, summarise_folds
from graft.fewshot.losses import CosinePairLoss, SupConLoss, cosine_pair_loss, supcon_loss
from graft.fewshot.pairs import PAIR_STRATEGIES, contrastive_pairs, pair_counts

__all__ = [
    "PAIR_STRATEGIES",
    "CosinePairLoss",
    "SupConLoss",
    "contrastive_pairs",
    "cosine_pair_loss",
    "pair_counts",
    "stratified_folds",
    "summarise_folds",
    "supcon_loss",
]
