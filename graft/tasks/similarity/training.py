"""Training a sentence encoder on pairs, kept by validation nDCG@10.

Batches hold no two pairs of one query nor two of one document (a duplicate would be a false
in-batch negative); their order depends only on the seed and the epoch. The optimiser is AdamW
with a linear warm-up over the first tenth of the steps and a linear decay after it (as
sentence-transformers' trainer). After each epoch the encoder is scored on the validation
retrieval set (:func:`validation_score`); the best epoch is kept, and the pretrained encoder
(epoch 0) when no epoch beats it.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from graft.tasks.similarity.data import Retrieval, SimilarityData
from graft.tasks.similarity.encoder import SentenceEncoder
from graft.tasks.similarity.losses import cosine, multiple_negatives_ranking
from graft.tasks.similarity.metrics import rank, ranked_ids, retrieval_metrics

log = logging.getLogger("graft")

#: Documents a validation query is searched among at most: its relevant documents and a seeded
#: sample of the rest (embedding a whole large corpus every epoch would cost more than training).
VALIDATION_CORPUS = 500
WARMUP = 0.1


@dataclass
class Recipe:
    """How a similarity fit trains: ``loss`` (``mnrl`` or ``cosine``), epochs, batch size,
    learning rate, weight decay, seed, the in-batch ``scale``."""

    loss: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    scale: float = 20.0


@dataclass
class Outcome:
    """What training did: each epoch's validation nDCG@10 (epoch 0: the pretrained encoder),
    the epoch kept (0: the pretrained encoder, kept because no epoch beat it), its validation
    metrics, seconds."""

    history: list[dict] = field(default_factory=list)
    val_metrics: dict = field(default_factory=dict)
    kept_epoch: int = 0
    seconds: float = 0.0

    @property
    def kept_pretrained(self) -> bool:
        return self.kept_epoch == 0


def batches(data: SimilarityData, size: int, seed: int, epoch: int) -> list[list[int]]:
    """Pair indices in batches of ``size`` in an order of (seed, epoch), no query nor document
    twice in one batch (a pair that would repeat one waits for the next batch)."""
    order = np.random.default_rng([seed, epoch]).permutation(len(data)).tolist()
    out, pending = [], order
    while pending:
        batch, seen, later = [], set(), []
        for i in pending:
            keys = {("q", data.query_ids[i]), ("d", data.doc_ids[i])}
            if len(batch) < size and not keys & seen:
                batch.append(i)
                seen |= keys
            else:
                later.append(i)
        out.append(batch)
        pending = later
    return out


def validation_set(retrieval: Retrieval, seed: int) -> Retrieval:
    """``retrieval`` with its corpus cut to :data:`VALIDATION_CORPUS` documents: every relevant
    one and a seeded sample of the others."""
    corpus = retrieval.corpus
    if len(corpus) <= VALIDATION_CORPUS:
        return retrieval
    relevant = {d for docs in retrieval.qrels.values() for d in docs}
    others = sorted(set(corpus) - relevant)
    rng = np.random.default_rng(seed)
    count = max(VALIDATION_CORPUS - len(relevant), 0)
    sample = [others[i] for i in rng.choice(len(others), min(count, len(others)), replace=False)]
    kept = {d: corpus[d] for d in sorted(relevant) + sample}
    return Retrieval(kept, retrieval.queries, retrieval.qrels, retrieval.source)


def evaluate_encoder(encoder: SentenceEncoder, retrieval: Retrieval, batch_size: int = 64) -> dict:
    """BEIR's metrics of ``encoder`` searching ``retrieval``'s corpus exactly."""
    doc_ids = list(retrieval.corpus)
    query_ids = list(retrieval.queries)
    docs = encoder.embed([retrieval.corpus[d] for d in doc_ids], batch_size)
    queries = encoder.embed([retrieval.queries[q] for q in query_ids], batch_size)
    indices, _ = rank(queries, docs, 101)
    return retrieval_metrics(ranked_ids(query_ids, doc_ids, indices), retrieval.qrels)


def _step_loss(encoder, data: SimilarityData, batch: list[int], recipe: Recipe) -> torch.Tensor:
    anchors = encoder([data.anchors[i] for i in batch])
    positives = encoder([data.positives[i] for i in batch])
    if recipe.loss == "cosine":
        scores = torch.tensor([data.scores[i] for i in batch], device=anchors.device)
        return cosine(anchors, positives, scores)
    negatives = None
    if data.negatives is not None:
        negatives = encoder([data.negatives[i] for i in batch])
    return multiple_negatives_ranking(anchors, positives, negatives, recipe.scale)


def _optimiser(encoder: SentenceEncoder, recipe: Recipe, steps: int):
    trained = [p for p in encoder.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trained, lr=recipe.lr, weight_decay=recipe.weight_decay)
    warmup = max(1, int(steps * WARMUP))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def train(
    encoder: SentenceEncoder, train_data: SimilarityData, val: Retrieval, recipe: Recipe
) -> Outcome:
    """Train ``encoder`` in place by ``recipe``; it ends with the kept epoch's weights."""
    started = time.perf_counter()
    torch.manual_seed(recipe.seed)
    plans = [batches(train_data, recipe.batch_size, recipe.seed, e) for e in range(recipe.epochs)]
    optimiser, schedule = _optimiser(encoder, recipe, sum(map(len, plans)))
    outcome = Outcome()
    outcome.val_metrics = evaluate_encoder(encoder, val)
    best = outcome.val_metrics["ndcg@10"]
    outcome.history.append({"epoch": 0, "val_ndcg@10": best})
    log.info("pretrained encoder: validation nDCG@10 %.4f", best)
    kept = copy.deepcopy(encoder.state_dict())
    for epoch, plan in enumerate(plans, 1):
        encoder.train()
        losses = []
        for batch in plan:
            loss = _step_loss(encoder, train_data, batch, recipe)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        metrics = evaluate_encoder(encoder, val)
        score = metrics["ndcg@10"]
        outcome.history.append(
            {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_ndcg@10": score}
        )
        log.info("epoch %d: loss %.4f, validation nDCG@10 %.4f", epoch, np.mean(losses), score)
        if score > best:
            best, outcome.kept_epoch, outcome.val_metrics = score, epoch, metrics
            kept = copy.deepcopy(encoder.state_dict())
    encoder.load_state_dict(kept)
    encoder.eval()
    if outcome.kept_pretrained:
        log.warning(
            "no epoch beat the pretrained encoder on validation (nDCG@10 %.4f): the pretrained "
            "encoder is kept",
            best,
        )
    outcome.seconds = time.perf_counter() - started
    return outcome
