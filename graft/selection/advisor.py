"""``--strategy auto``: choose feature extraction, partial or full fine-tuning from measurements.

Two things decide how a backbone should be adapted (Yosinski et al. 2014; Kornblith, Shlens and
Le, "Do Better ImageNet Models Transfer Better?", CVPR 2019): how much labelled data there is
per class (little data cannot move millions of weights without overfitting, and gains from
fine-tuning grow with data), and how well the frozen features already separate the classes
(near-perfect frozen features leave little for fine-tuning to add). graft measures both before
training, from the same cached forward pass the head needs anyway:

- examples per class (the median over classes of the training split);
- the modality: text encoders gain most from contrastive fine-tuning on a few examples;
- the k-NN accuracy of the frozen features on the validation split (cross-validated on the
  training examples when a fit with few labels has no validation split), with LogME beside it;
- for backbones with a source classifier, how unlike the source domain the inputs look
  (:func:`graft.selection.ranking.source_entropy`), reported for the user to check.

The thresholds below come from ``bench/advisor.py``, which runs every strategy on the shared
datasets at 10, 50 and all examples per class; its table is in ``bench/RESULTS.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from graft.backbones import Backbone
from graft.data import LabelledData
from graft.errors import ConfigError
from graft.features import FeatureCache
from graft.selection import scores
from graft.selection.ranking import frozen_features, source_entropy

#: Below this median of training examples per class, a head on frozen features is the choice:
#: in ``bench/advisor.py`` at 10 and 50 per class (flowers, sst2, digits) feature extraction was
#: the best strategy or within 2 accuracy points of it in every case, at a fraction of the cost.
FEW_PER_CLASS = 100
#: From this median on, every layer trains (``full``): with all the data (digits 140, flowers
#: 547, sst2 1,000 per class) full fine-tuning was best in every case, 3 to 7 points above
#: feature extraction and 1.5 to 3.5 above partial. Between the two, ``partial`` adapts the top
#: of the backbone: a narrow band no benchmark case falls in (the cautious middle, not a
#: measured optimum; partial was never best by more than 2 points).
MANY_PER_CLASS = 120
#: At or above this k-NN accuracy, the frozen features already separate the classes.
SEPARATED_KNN = 0.95
#: Up to this median of examples per class, by modality, contrastive fine-tuning then a head
#: (:mod:`graft.strategies.contrastive`) is the choice, whatever the k-NN accuracy. Text: on
#: sst2 with MiniLM at 8 and 64 sentences per class it beat a head on the frozen encoder by 3.9
#: and 3.5 points (3 seeds, bench/fewshot_prototype.py). The k-NN gate is not applied: on the
#: amazon product-domain case at 8 reviews a class (bench/fewshot.py), seed 2's frozen
#: features scored a cross-validated k-NN of at least 0.95 on its 32 reviews, the head on them
#: 0.860 on the test reviews and the contrastive fit 0.921 (bench/RESULTS.md, "Few labels on a
#: second text case"). A k-NN estimate on a few dozen examples cannot tell "separated" apart,
#: and the contrastive phase now costs seconds to a minute. Images: SupCon was no better than
#: the frozen head on flowers at 5-20 a class, so it is not chosen.
CONTRASTIVE_PER_CLASS = {"text": 64}
#: Folds of the cross-validated k-NN accuracy when there is no validation split.
KNN_FOLDS = 5

#: The strategies auto chooses among, cheapest first.
CHOICES = ("feature-extract", "contrastive", "partial", "full")
#: Those it chooses among when the backbone must adapt to a target domain (``--adapt``): frozen
#: features cannot move towards the target.
ADAPTING_CHOICES = ("partial", "full")


@dataclass
class Measurements:
    """What the advice is based on, all measured on the user's data."""

    examples: int
    classes: int
    median_per_class: float
    min_per_class: int
    knn_accuracy: float
    logme: float
    source_entropy: float | None
    feature_seconds: float
    modality: str = "image"


@dataclass
class Advice:
    """The chosen strategy, the measurements and the reason, in words a user can check."""

    strategy: str
    reason: str
    measurements: Measurements

    def to_dict(self) -> dict:
        rule = {
            "few_per_class": FEW_PER_CLASS,
            "many_per_class": MANY_PER_CLASS,
            "separated_knn": SEPARATED_KNN,
            "contrastive_per_class": CONTRASTIVE_PER_CLASS,
        }
        return {
            "strategy": self.strategy,
            "reason": self.reason,
            "measurements": asdict(self.measurements),
            "rule": rule,
        }


def decide(measured: Measurements, adapting: bool = False) -> tuple[str, str]:
    """The strategy for ``measured`` data and why (pure: the benchmark replays it).

    With ``adapting`` (domain adaptation asked for), a choice of feature extraction becomes
    partial fine-tuning: the features must move towards the target domain, and the top of the
    backbone is where they are domain-specific, the layers DAN adapts while it keeps the general
    lower ones fixed (Long et al., "Learning Transferable Features with Deep Adaptation
    Networks", ICML 2015).
    """
    strategy, reason = _decide_unadapted(measured)
    if adapting and strategy not in ADAPTING_CHOICES:
        return "partial", (
            f"{reason}; but domain adaptation needs features that can move towards the target, "
            "so the top of the backbone trains (partial fine-tuning), as in DAN"
        )
    return strategy, reason


def _decide_unadapted(measured: Measurements) -> tuple[str, str]:
    per_class = measured.median_per_class
    knn = measured.knn_accuracy
    facts = (
        f"{measured.examples:,} training examples, {measured.classes} classes "
        f"(median {per_class:g} per class), k-NN accuracy on frozen features {knn:.2f}"
    )
    if measured.source_entropy is not None:
        facts += f", source-domain entropy {measured.source_entropy:.2f}"
    contrastive = CONTRASTIVE_PER_CLASS.get(measured.modality)
    if contrastive is not None and per_class <= contrastive:
        return "contrastive", (
            f"{facts}: with at most {contrastive} {measured.modality} examples per class, "
            "fine-tuning the encoder on pairs of them before the head beat a head on the frozen "
            "encoder in graft's benchmarks (sst2 at 8 and 64 per class; amazon reviews at 8, "
            "even where the frozen features' k-NN on the few examples was above "
            f"{SEPARATED_KNN:g})"
        )
    if per_class < FEW_PER_CLASS:
        return "feature-extract", (
            f"{facts}: with fewer than {FEW_PER_CLASS} examples per class a head on the frozen "
            "features is likely enough; fine-tuning is expected to add little or nothing (in "
            "graft's benchmark at 10-50 per class it was never more than 2 points better)"
        )
    if knn >= SEPARATED_KNN:
        return "feature-extract", (
            f"{facts}: the frozen features already separate the classes (k-NN at least "
            f"{SEPARATED_KNN:g}); feature extraction is likely enough"
        )
    if per_class >= MANY_PER_CLASS:
        return "full", (
            f"{facts}: with {MANY_PER_CLASS}+ examples per class and room above the frozen "
            "features, training every layer is expected to add the most (3-7 points over "
            "feature extraction in graft's benchmark with 140-1,000 per class)"
        )
    return "partial", (
        f"{facts}: enough data to adapt the top of the backbone, too little to retrain all "
        "of it; partial fine-tuning of the top groups"
    )


def measure(
    train: LabelledData,
    val: LabelledData,
    backbone: Backbone,
    cache: FeatureCache,
    batch_size: int = 64,
    num_workers: int = 0,
) -> Measurements:
    """The measurements :func:`decide` needs: one (cached) forward pass over the data.
    Without validation data (``val`` None: few labels), the k-NN accuracy is cross-validated
    over the training examples."""
    features = frozen_features(backbone, train, val or train, cache, batch_size, num_workers)
    counts = np.bincount(train.labels, minlength=len(train.classes))
    train_x = features.train.double().numpy()
    if val is None:
        knn = cross_validated_knn(train_x, train.labels)
    else:
        knn = scores.knn_accuracy(train_x, train.labels, features.val.double().numpy(), val.labels)
    return Measurements(
        examples=len(train),
        classes=len(train.classes),
        median_per_class=float(np.median(counts)),
        min_per_class=int(counts.min()),
        knn_accuracy=knn,
        logme=scores.logme(train_x, train.labels),
        source_entropy=source_entropy(backbone, features.train),
        feature_seconds=round(features.seconds, 3),
        modality=train.modality,
    )


def cross_validated_knn(features: np.ndarray, labels: np.ndarray) -> float:
    """The k-NN accuracy of ``features`` over stratified folds of the training examples
    (each scored by the others), weighted by fold size."""
    from graft.fewshot.cross_validation import stratified_folds

    folds = stratified_folds(labels, min(KNN_FOLDS, len(labels)), seed=0)
    correct = sum(
        scores.knn_accuracy(features[fit], labels[fit], features[held], labels[held]) * len(held)
        for fit, held in folds
    )
    return float(correct / len(labels))


def advise_strategy(
    train: LabelledData,
    val: LabelledData | None,
    backbone: Backbone,
    cache: FeatureCache,
    batch_size: int = 64,
    num_workers: int = 0,
    adapting: bool = False,
) -> Advice:
    """Measure the data and the frozen ``backbone`` and choose a strategy (see module doc);
    ``adapting``: among those that train the backbone (see :func:`decide`)."""
    if train.task != "multiclass":
        raise ConfigError(
            f"--strategy auto measures how frozen features separate classes; {train.source} "
            f"holds {train.task} targets: choose --strategy feature-extract, partial or full"
        )
    measured = measure(train, val, backbone, cache, batch_size, num_workers)
    strategy, reason = decide(measured, adapting)
    return Advice(strategy, reason, measured)
