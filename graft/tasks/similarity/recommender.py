"""The recommender's networks and its training on graft's engine.

:class:`RecommendationHead` is a two-tower model over the catalogue's content:

- an item is ``normalise(P c_i + r_i)``: ``c_i`` its text embedded by the pretrained encoder
  (graft's mean-pooled text backbone, as :mod:`graft.tasks.similarity.encoder` embeds), ``P`` a
  trained square layer started at the identity, ``r_i`` a learned residual of the item's id
  started at zero (an item nobody interacted with keeps ``r_i = 0``: it is recommended from
  its content alone);
- a user is ``normalise(U mean_w(c_h) + mean_w(q_h))`` over the items ``h`` of their history
  (the last ``--history-length``), weighted by rating or count: ``U`` a trained square layer
  started at the identity, ``q_h`` a learned residual of each history item started at zero;
- a score is the scaled cosine similarity of user and item plus a learned bias of the item.

Untrained, it is the pretrained encoder itself: a user is the mean of the embeddings of what
they liked, an item its embedding. :class:`RecommendationModule` trains it with in-batch
negatives (:func:`graft.tasks.similarity.losses.in_batch_with_repeats`: each (history, next
item) pair's next item against the batch's other next items, whose logits are corrected by the
log of how often each is a next item (logQ), a repeated item masked), and scores each epoch
by validation nDCG@10 of each user's held-out item among every catalogue item the user has not
interacted with (:class:`HeldOutScore`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from graft.tasks.similarity.losses import in_batch_with_repeats
from graft.tasks.similarity.metrics import ndcg_at
from graft.training.module import TransferModule


class History(NamedTuple):
    """A user as the recommender reads them: ``items`` (catalogue indices, oldest first) and
    their ``weights``; ``targets``: the items to find (a next item, held-out items; empty to
    recommend); ``seen``: every item the user interacted with (left out of their ranking)."""

    items: tuple
    weights: tuple
    targets: tuple = ()
    seen: tuple = ()


def _padded(rows: list, fill, dtype) -> torch.Tensor:
    width = max((len(r) for r in rows), default=0) or 1
    out = torch.full((len(rows), width), fill, dtype=dtype)
    for i, row in enumerate(rows):
        if len(row):
            out[i, : len(row)] = torch.as_tensor(np.asarray(row), dtype=dtype)
    return out


class HistoryCollate:
    """Histories as ``(inputs, targets)``: ``{"history", "weights"}`` padded with -1 and 0, and
    ``{"target", "targets", "seen"}`` (the first target, all targets and the seen items, padded
    with -1)."""

    def __init__(self, preprocessing=None):
        self.preprocessing = preprocessing

    def __call__(self, batch: list):
        batch = [b if isinstance(b, History) else History(*b) for b in batch]
        inputs = {
            "history": _padded([b.items for b in batch], -1, torch.long),
            "weights": _padded([b.weights for b in batch], 0.0, torch.float32),
        }
        targets = {
            "target": torch.tensor([b.targets[0] if b.targets else -1 for b in batch]),
            "targets": _padded([b.targets for b in batch], -1, torch.long),
            "seen": _padded([b.seen for b in batch], -1, torch.long),
        }
        return inputs, targets


class RecommendationHead(nn.Module):
    """Items from their content and id, users from their history (see the module docstring).

    Args:
        content: the catalogue's pretrained embeddings, ``float[items, width]`` (normalised).
    """

    def __init__(self, content: torch.Tensor, scale: float = 20.0, frequency=None):
        super().__init__()
        count, width = content.shape
        self.scale = float(scale)
        self.register_buffer("content", content.float().contiguous())
        counts = torch.zeros(count) if frequency is None else torch.as_tensor(frequency).float()
        self.register_buffer("log_frequency", torch.log((counts + 1.0) / (counts.sum() + count)))
        self.item_bias = nn.Embedding(count, 1)
        self.item_linear = nn.Linear(width, width)
        self.user_linear = nn.Linear(width, width)
        self.item_residual = nn.Embedding(count, width)
        self.history_residual = nn.Embedding(count, width)
        with torch.no_grad():
            for layer in (self.item_linear, self.user_linear):
                layer.weight.copy_(torch.eye(width))
                layer.bias.zero_()
            self.item_residual.weight.zero_()
            self.history_residual.weight.zero_()
            self.item_bias.weight.zero_()

    def item_vectors(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """The normalised vectors of the items at ``index`` (all items for None)."""
        if index is None:
            content, residual = self.content, self.item_residual.weight
        else:
            content, residual = self.content[index], self.item_residual(index)
        return F.normalize(self.item_linear(content) + residual, dim=-1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Normalised user vectors ``[batch, width]`` of padded histories."""
        history = inputs["history"]
        valid = history >= 0
        index = history.clamp(min=0)
        weights = inputs["weights"].float() * valid
        weights = (weights / weights.sum(1, keepdim=True).clamp(min=1e-9)).unsqueeze(-1)
        content = (self.content[index] * weights).sum(1)
        residual = (self.history_residual(index) * weights).sum(1)
        return F.normalize(self.user_linear(content) + residual, dim=-1)

    def scores(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Every catalogue item's score for each user, ``[batch, items]``: the scaled cosine
        similarity plus the item's learned bias."""
        return self.scale * self(inputs) @ self.item_vectors().T + self.item_bias.weight.T

    def pair_logits(self, users: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The logits of each user against each pair's next item in the batch, corrected for
        how often an item is a next item (logQ: in-batch negatives are drawn by popularity)."""
        items = self.item_vectors(targets)
        bias = self.item_bias(targets).squeeze(-1) - self.log_frequency[targets]
        return self.scale * users @ items.T + bias


def masked_top(scores: torch.Tensor, seen: torch.Tensor, k: int) -> torch.Tensor:
    """The indices of the ``k`` best items of each row, the ``seen`` ones (padded -1) left
    out."""
    scores = scores.clone()
    rows = torch.arange(len(scores)).unsqueeze(1).expand_as(seen)
    valid = seen >= 0
    scores[rows[valid], seen[valid]] = float("-inf")
    return torch.topk(scores, min(k, scores.shape[1]), dim=1).indices


class HeldOutScore(Metric):
    """The mean nDCG@10 of users' held-out items among the items they have not seen."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state(
            "total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, top: torch.Tensor, targets: torch.Tensor) -> None:
        for row, wanted in zip(top.tolist(), targets.tolist(), strict=True):
            judged = {t: 1 for t in wanted if t >= 0}
            if judged:
                self.total += ndcg_at(row, judged, 10)
                self.count += 1

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).float()


class RecommendationModule(TransferModule):
    """A TransferModule whose outputs are user vectors, trained on (history, next item)
    pairs (see the module docstring); the backbone stays frozen (the catalogue's content is
    embedded once)."""

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(inputs)

    def training_step(self, batch, batch_index: int) -> torch.Tensor:
        inputs, targets = batch
        target = targets["target"]
        loss = in_batch_with_repeats(self.head.pair_logits(self(inputs), target), target)
        self.log(
            "train_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
            batch_size=len(target), sync_dist=True,
        )  # fmt: skip
        return loss

    def validation_step(self, batch, batch_index: int) -> None:
        inputs, targets = batch
        top = masked_top(self.head.scores(inputs), targets["seen"], 10)
        self.val_score.update(top, targets["targets"])
        shown = dict(prog_bar=True, batch_size=len(top), add_dataloader_idx=False)
        self.log("val_score", self.val_score, **shown)


def _text_tensor(values: list[str]) -> torch.Tensor:
    """Strings as one uint8 tensor (UTF-8, one per line), to be saved with the weights."""
    data = "\n".join(v.replace("\n", " ") for v in values).encode("utf-8")
    return (
        torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()
        if data
        else torch.zeros(0, dtype=torch.uint8)
    )


def _texts(tensor: torch.Tensor, count: int) -> list[str]:
    if tensor.numel() == 0:
        return [""] * count
    return bytes(tensor.numpy().tobytes()).decode("utf-8").split("\n")


class KnownData(nn.Module):
    """What a fitted recommender knows besides its weights, saved with them as buffers: the
    catalogue's texts, the user ids, and the interactions users are recommended from."""

    def __init__(self, sizes: dict[str, int]):
        super().__init__()
        self.sizes = dict(sizes)
        self.register_buffer("item_text", torch.zeros(sizes["item_text"], dtype=torch.uint8))
        self.register_buffer("user_ids", torch.zeros(sizes["user_ids"], dtype=torch.uint8))
        count = sizes["interactions"]
        self.register_buffer("users", torch.zeros(count, dtype=torch.long))
        self.register_buffer("items", torch.zeros(count, dtype=torch.long))
        self.register_buffer("weights", torch.zeros(count, dtype=torch.float32))
        self.register_buffer(
            "times", torch.zeros(count if sizes["timed"] else 0, dtype=torch.float64)
        )

    @classmethod
    def of(cls, catalogue, known) -> KnownData:
        """The buffers of ``catalogue`` and the ``known`` interactions."""
        users = sorted(set(known.users))
        position = {u: i for i, u in enumerate(users)}
        item_text, user_ids = _text_tensor(catalogue.texts), _text_tensor(users)
        sizes = {
            "item_text": len(item_text),
            "user_ids": len(user_ids),
            "interactions": len(known),
            "timed": int(known.times is not None),
            "items": len(catalogue),
            "user_count": len(users),
        }
        store = cls(sizes)
        store.item_text.copy_(item_text)
        store.user_ids.copy_(user_ids)
        store.users.copy_(torch.as_tensor([position[u] for u in known.users], dtype=torch.long))
        store.items.copy_(torch.as_tensor(np.array(known.items), dtype=torch.long))
        store.weights.copy_(torch.as_tensor(np.array(known.weights), dtype=torch.float32))
        if known.times is not None:
            store.times.copy_(torch.as_tensor(np.array(known.times), dtype=torch.float64))
        return store

    def read(self, item_ids: list[str], source: str):
        """The catalogue and the known interactions, as the data modules hold them."""
        from graft.tasks.similarity.interactions import Catalogue, Interactions

        catalogue = Catalogue(list(item_ids), _texts(self.item_text, self.sizes["items"]), source)
        users = _texts(self.user_ids, self.sizes["user_count"])
        known = Interactions(
            users=[users[i] for i in self.users.tolist()],
            items=self.items.numpy().astype(np.int64),
            weights=self.weights.numpy().astype(np.float64),
            times=self.times.numpy() if self.sizes["timed"] else None,
            catalogue=catalogue,
            source=source,
        )
        return catalogue, known


class SeededBatches(torch.utils.data.Sampler):
    """``count`` examples in shuffled batches of ``size``, in an order of (seed, epoch) only
    (the epoch Lightning sets with ``set_epoch``)."""

    def __init__(self, count: int, size: int, seed: int):
        self.count, self.size, self.seed, self.epoch = int(count), int(size), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.count // self.size)

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.count).tolist()
        return iter(order[i : i + self.size] for i in range(0, self.count, self.size))
