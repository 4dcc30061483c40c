"""Training an encoder on pairs: the one LightningModule, with a retrieval score.

:class:`SimilarityModule` is :class:`~graft.training.module.TransferModule` (phases, optimiser
groups, layer decay, frozen-backbone handling and the warm-up and cosine schedule are all its)
whose ``forward`` embeds texts (the backbone's mean-pooled features through the head, L2
normalised) and whose training step embeds a batch of pairs and computes the task's loss on them:
multiple-negatives ranking (in-batch negatives) or the cosine loss of scored pairs
(:mod:`graft.tasks.similarity.losses`). Validation embeds every query and document of the
validation retrieval set; at the end of the epoch :class:`RetrievalScore` ranks the documents
for each query and logs nDCG@10 as ``val_score``, by which each phase keeps its epoch.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from graft.tasks.similarity.batches import DOCUMENT, QUERY
from graft.tasks.similarity.metrics import rank, retrieval_metrics
from graft.training.module import TransferModule


class RetrievalScore(Metric):
    """nDCG@10 of the validation queries searching the validation documents (each a row of
    embeddings with the targets of :class:`graft.tasks.similarity.batches.Text`), as BEIR
    computes it: exact search, a document dropped from its own query's ranking."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        for name in ("embeddings", "role", "index", "twin", "relevant", "relevance"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, embeddings: torch.Tensor, targets: dict) -> None:
        self.embeddings.append(embeddings.detach().float())
        for name in ("role", "index", "twin", "relevant", "relevance"):
            getattr(self, name).append(targets[name])

    def compute(self) -> torch.Tensor:
        if not self.embeddings:
            return torch.tensor(0.0)
        vectors, role, index, twin, relevant, relevance = (
            torch.cat(state) if isinstance(state, list) else state
            for state in (
                self.embeddings,
                self.role,
                self.index,
                self.twin,
                self.relevant,
                self.relevance,
            )
        )
        queries, docs = role == QUERY, role == DOCUMENT
        query_order = torch.argsort(index[queries])
        doc_order = torch.argsort(index[docs])
        doc_twin = twin[docs][doc_order].tolist()
        found, _ = rank(
            vectors[queries][query_order].cpu().numpy(),
            vectors[docs][doc_order].cpu().numpy(),
            11,
        )
        ranked, qrels = {}, {}
        judged = relevant[queries][query_order].tolist()
        values = relevance[queries][query_order].tolist()
        for query, (row, docs_of, levels) in enumerate(zip(found, judged, values, strict=True)):
            ranked[query] = [int(d) for d in row if doc_twin[d] != query]
            pairs = zip(docs_of, levels, strict=True)
            qrels[query] = {d: int(level) for d, level in pairs if d >= 0}
        return torch.tensor(retrieval_metrics(ranked, qrels)["ndcg@10"])


class SimilarityModule(TransferModule):
    """A TransferModule whose outputs are normalised embeddings, trained on pairs (see the
    module docstring)."""

    def forward(self, inputs) -> torch.Tensor:
        """The embeddings of a batch: the backbone's input (tokens, pixels), or the frozen
        backbone's cached features (``{"features": ...}``, images' projection phase)."""
        if isinstance(inputs, dict) and "features" in inputs:
            return self.head(inputs["features"])
        return self.head(self.backbone(inputs))

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, scores = batch
        embedded = {name: self(tokens) for name, tokens in inputs.items()}
        loss = self.task.pair_loss(embedded, scores)
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(scores),
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        inputs, targets = batch
        self.val_score.update(self(inputs), targets)
        shown = dict(prog_bar=True, batch_size=len(targets["role"]), add_dataloader_idx=False)
        self.log("val_score", self.val_score, **shown)

    def optimizer_groups(self) -> list[dict]:
        """TransferModule's groups, less the head's when it has no parameters (an identity)."""
        return [group for group in super().optimizer_groups() if group["params"]]
