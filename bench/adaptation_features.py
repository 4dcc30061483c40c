"""Feature-level domain adaptation for ``bench/adaptation.py --level features``.

Full fine-tuning of efficientnet_lite0 with an adaptation objective costs minutes a run on one
CPU thread; a benchmark of ten methods, three seeds and two directions does not fit. At the
feature level the pretrained backbone is frozen and run once per image (at ``--image-size``,
through graft's feature cache); a new bottleneck (a linear layer and a ReLU to 256 dimensions,
as the Transfer-Learning-Library's image models have) and graft's classification head train
on the features. The bottleneck plays the backbone's part: each method's objective is the one
``graft fit --adapt`` builds (:func:`graft.adaptation.catalogue.create_objective`), trained by
graft's :class:`~graft.adaptation.module.AdaptationModule` through the one engine
(:class:`~graft.training.runner.PhaseRunner`, :func:`~graft.training.engine.run_phase`) with
the same batches of source and target in step and the same choice of the kept epoch (source
validation score for source-only, label-free target score for the methods). Source-free
adaptation is SHOT's recipe of ``graft adapt``: the source-only bottleneck trains on the target
alone with the head frozen and clustered pseudo-labels refreshed each epoch, and the original
weights stay unless an epoch beats their label-free score.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from graft.adaptation.auto import choose_method, measure
from graft.adaptation.catalogue import create_objective
from graft.adaptation.gap import proxy_a_distance
from graft.adaptation.guard import kept_score
from graft.adaptation.module import TARGET_MONITOR, AdaptationModule
from graft.adaptation.pseudo_labels import EpochPseudoLabels
from graft.adaptation.target import TARGET_SAMPLE, sample_indices
from graft.adaptation.validation import (
    information_maximization,
    prediction_entropy,
    soft_neighborhood_density,
)
from graft.features import FeatureCache
from graft.heads import ClassificationHead
from graft.tasks.classification.multiclass import MulticlassTask
from graft.training.distributed import EngineOptions
from graft.training.phase import Phase
from graft.training.runner import ModuleFactory, PhaseRunner
from graft.training.sampling import EpochSampler

BOTTLENECK = 256
BATCH = 32


class Bottleneck(nn.Module):
    """The trainable feature layer on frozen backbone features: linear, then ReLU."""

    def __init__(self, in_dim: int, out_dim: int = BOTTLENECK) -> None:
        super().__init__()
        self.feature_dim = out_dim
        self.layer = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layer(features)

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        return [list(self.parameters())]


@dataclass
class PairFeatures:
    """Frozen backbone features of one pair: source train and validation, the target."""

    modality: str
    pair: str
    classes: list[str]
    train: torch.Tensor
    train_labels: torch.Tensor
    val: torch.Tensor
    val_labels: torch.Tensor
    target: torch.Tensor
    target_labels: torch.Tensor
    gap_before: float


def pair_features(pair: str, data: tuple, args) -> PairFeatures:
    """The pretrained backbone's features of ``data`` (train, val, target): efficientnet_lite0
    at ``--image-size`` or minilm at ``--max-length``, through graft's feature cache, and the
    proxy A-distance between them."""
    from graft.config import FitConfig
    from graft.tasks import task_class

    train, val, target = data
    image = train.modality == "image"
    config = FitConfig(
        model="efficientnet_lite0" if image else "minilm",
        image_size=args.image_size if image else None,
        max_length=None if image else args.max_length,
    ).validate()
    backbone = task_class("multiclass").build_backbone(config, train)
    cache = FeatureCache(args.cache_dir / "features")
    tensors = [cache.features(backbone, part, 64) for part in (train, val, target)]
    labels = [torch.as_tensor(np.asarray(part.labels)).long() for part in (train, val, target)]
    gap = gap_of(tensors[0], tensors[2], seed=0)
    return PairFeatures(
        train.modality,
        pair,
        list(train.classes),
        tensors[0],
        labels[0],
        tensors[1],
        labels[1],
        tensors[2],
        labels[2],
        gap,
    )


def gap_of(source: torch.Tensor, target: torch.Tensor, seed: int) -> float:
    """The proxy A-distance on seeded samples of each domain, as a fit measures it."""
    s = source[sample_indices(len(source), TARGET_SAMPLE, seed)]
    t = target[sample_indices(len(target), TARGET_SAMPLE, seed)]
    return float(proxy_a_distance(s.float(), t.float(), seed=seed))


def _phase(args, name: str, monitor: str, head_lr: float) -> Phase:
    return Phase(
        name=name,
        epochs=args.feature_epochs,
        backbone_groups=None,
        head_lr=head_lr,
        backbone_lr=args.feature_lr,
        patience=args.feature_epochs,  # every epoch trains; the monitor keeps the best
        monitor=monitor,
    )


def _val_loaders(data: PairFeatures, source: bool) -> list[DataLoader]:
    """Source validation (unless source-free), the unlabelled target sample, the target test."""
    sample = data.target[sample_indices(len(data.target), TARGET_SAMPLE, 0)]
    loaders = [
        DataLoader(TensorDataset(sample, torch.full((len(sample),), -1)), batch_size=256),
        DataLoader(TensorDataset(data.target, data.target_labels), batch_size=256),
    ]
    if source:
        loaders.insert(0, DataLoader(TensorDataset(data.val, data.val_labels), batch_size=256))
    return loaders


def _train_loaders(data: PairFeatures, seed: int) -> CombinedLoader:
    """Seeded source batches in step with as many seeded target batches of (features, index)."""
    generator = torch.Generator().manual_seed(seed)
    source = DataLoader(
        TensorDataset(data.train, data.train_labels),
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        generator=generator,
    )
    target = DataLoader(
        TensorDataset(data.target, torch.arange(len(data.target))),
        batch_size=BATCH,
        sampler=EpochSampler(len(data.target), seed + 1, length=len(data.train)),
        drop_last=True,
    )
    return CombinedLoader({"source": source, "target": target}, mode="min_size")


def _networks(data: PairFeatures, seed: int) -> tuple[Bottleneck, ClassificationHead]:
    torch.manual_seed(seed)
    bottleneck = Bottleneck(data.train.shape[1])
    return bottleneck, ClassificationHead(BOTTLENECK, len(data.classes))


def _runner(networks: dict, task, scratch: Path, seed: int) -> PhaseRunner:
    factory = ModuleFactory(task, networks["head"], networks["backbone"])
    return PhaseRunner(networks, factory, None, EngineOptions(progress=False), seed, scratch)


def train_method(data: PairFeatures, method: str, seed: int, args, scratch: Path) -> dict:
    """Source cross-entropy plus ``method``'s objective (``none``: source alone) on the
    bottleneck and head; the record of ``bench/adaptation.py``."""
    start = time.perf_counter()
    task = MulticlassTask(data.classes)
    bottleneck, head = _networks(data, seed)
    networks = {"backbone": bottleneck, "head": head}
    adapted = method != "none"
    phase = _phase(args, method, TARGET_MONITOR if adapted else "val_score", args.feature_lr)
    torch.manual_seed(seed)  # the discriminator's initialisation, as in a fit
    # source-only is the same module with the objective's weight 0, so that it trains on the
    # same batches and logs the same target scores (MCC: no parameters, no random numbers)
    objective = create_objective(method if adapted else "mcc", BOTTLENECK, len(data.classes))
    module = AdaptationModule(
        head, phase, bottleneck, objective=objective, adapt_weight=float(adapted), task=task
    )
    val = _val_loaders(data, source=True)
    rows = _runner(networks, task, scratch / f"{method}-{seed}", seed).train(
        phase, (_train_loaders(data, seed), val), module
    )
    record = evaluate(data, bottleneck, head, method, seed, rows, start)
    record["networks"] = networks
    return record


def train_source_free(
    data: PairFeatures, source_record: dict, seed: int, args, scratch: Path
) -> dict:
    """SHOT on the source-only bottleneck and head: target features only, the head frozen."""
    start = time.perf_counter()
    task = MulticlassTask(data.classes)
    bottleneck, head = _networks(data, seed)
    trained = source_record["networks"]
    bottleneck.load_state_dict(trained["backbone"].state_dict())
    head.load_state_dict(trained["head"].state_dict())
    networks = {"backbone": bottleneck, "head": head}
    before = information_maximization(_probabilities(data, bottleneck, head))
    phase = dataclasses.replace(
        _phase(args, "source-free", TARGET_MONITOR, 0.0), epochs=args.source_free_epochs
    )
    every = DataLoader(TensorDataset(data.target, torch.arange(len(data.target))), batch_size=256)
    torch.manual_seed(seed)
    module = AdaptationModule(
        head,
        phase,
        bottleneck,
        objective=create_objective(args.source_free_method, BOTTLENECK, len(data.classes)),
        adapt_weight=1.0,
        source_free=True,
        pseudo_labels=EpochPseudoLabels(every),
        task=task,
    )
    target = DataLoader(
        TensorDataset(data.target, torch.arange(len(data.target))),
        batch_size=BATCH,
        sampler=EpochSampler(len(data.target), seed + 1, length=len(data.target)),
        drop_last=True,
    )
    rows = _runner(networks, task, scratch / f"source-free-{seed}", seed).train(
        phase, (target, _val_loaders(data, source=False)), module
    )
    kept = "adapted"
    if kept_score(rows, TARGET_MONITOR) < before:  # as graft adapt: keep the original
        bottleneck.load_state_dict(trained["backbone"].state_dict())
        kept = "original"
    record = evaluate(data, bottleneck, head, "source-free", seed, rows, start)
    return {
        **record,
        "train": 0,
        "source_val_accuracy": None,
        "kept": kept,
        "label_free_before": {"im": round(before, 6)},
    }


def auto_choice(data: PairFeatures, seed: int) -> dict:
    """What ``--adapt auto`` measures and chooses on these pretrained features, with the fit's
    samples (:meth:`graft.adaptation.component.DomainAdaptation.choose`)."""
    start = time.perf_counter()
    source_rows = sample_indices(len(data.train), TARGET_SAMPLE, seed)
    target_rows = sample_indices(len(data.target), TARGET_SAMPLE, seed)
    gap = gap_of(data.train, data.target, seed)
    measured = measure(
        data.train[source_rows],
        data.train_labels.numpy()[source_rows],
        data.target[target_rows],
        gap,
        data.modality,
        "multiclass",
        len(data.classes),
    )
    chosen, reason = choose_method(measured)
    return {
        "chosen": chosen,
        "reason": reason,
        **measured.to_dict(),
        "seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def _probabilities(
    data: PairFeatures, bottleneck: nn.Module, head: nn.Module, inputs: torch.Tensor | None = None
) -> torch.Tensor:
    bottleneck.eval(), head.eval()
    features = data.target if inputs is None else inputs
    return torch.softmax(head(bottleneck(features)), dim=1)


def evaluate(
    data: PairFeatures,
    bottleneck: nn.Module,
    head: nn.Module,
    method: str,
    seed: int,
    rows: list[dict],
    start: float,
) -> dict:
    """The record of one trained pair of networks (the kept epoch's weights)."""
    from adaptation import EPOCH_KEYS

    target = _probabilities(data, bottleneck, head)
    source_val = _probabilities(data, bottleneck, head, data.val)
    with torch.no_grad():
        after = gap_of(bottleneck(data.train), bottleneck(data.target), seed=0)
    return {
        "pair": data.pair,
        "method": method,
        "seed": seed,
        "train": len(data.train),
        "val": len(data.val),
        "target_accuracy": float((target.argmax(1) == data.target_labels).float().mean()),
        "source_val_accuracy": float((source_val.argmax(1) == data.val_labels).float().mean()),
        "gap_before": data.gap_before,
        "gap_after": after,
        "label_free": {
            "im": round(information_maximization(target), 6),
            "snd": round(soft_neighborhood_density(target), 6),
            "entropy": round(prediction_entropy(target), 6),
        },
        "epochs": [{k: r.get(k) for k in EPOCH_KEYS} for r in rows],
        "kept_epoch": next((r["epoch"] for r in rows if r.get("kept")), None),
        "seconds": time.perf_counter() - start,
    }


def run_features(args, pairs: list[str], load_pair, records: list[dict]) -> None:
    """Every (pair, seed, method) at the feature level, written to ``--out`` after each."""
    import json

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        for pair in pairs:
            data = pair_features(pair, load_pair(pair), args)
            for seed in (int(s) for s in args.seeds.split(",")):
                source_only = None
                for method in args.methods.split(","):
                    if method == "auto":
                        choice = auto_choice(data, seed)
                        record = replay_or_train(data, choice, seed, records, args, scratch)
                    elif method == "source-free":
                        record = train_source_free(data, source_only, seed, args, scratch)
                    else:
                        record = train_method(data, method, seed, args, scratch)
                        networks = record.pop("networks")
                        if method == "none":
                            source_only = {"networks": networks}
                    records.append(record)
                    print({k: v for k, v in record.items() if k != "epochs"}, flush=True)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(records, indent=2))


def replay_or_train(
    data: PairFeatures, choice: dict, seed: int, records: list[dict], args, scratch: Path
) -> dict:
    """The run of the method ``auto`` chose, as ``auto`` (trained when it was not run)."""
    chosen = next(
        (
            r
            for r in records
            if (r["pair"], r["method"], r["seed"]) == (data.pair, choice["chosen"], seed)
        ),
        None,
    )
    if chosen is None:
        chosen = train_method(data, choice["chosen"], seed, args, scratch)
        chosen.pop("networks")
    return {
        **chosen,
        "method": "auto",
        "auto": choice,
        "replayed_from": choice["chosen"],
        "seconds": chosen["seconds"] + choice["seconds"],
    }
