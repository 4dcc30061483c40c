"""A fitted recommender in use (``graft.load(RUN).recommend``, ``graft recommend``).

:meth:`Recommender.recommend` ranks the catalogue for a user the model was fitted on (from
their latest interactions), for a new user from a few items they liked, or both; the items the
user interacted with (or liked) are left out. :meth:`Recommender.similar` ranks the items
nearest one item (its vector against every other's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graft.errors import ConfigError
from graft.tasks.similarity.recommend_metrics import top_unseen
from graft.tasks.similarity.recommender import History


class Recommender:
    """Recommendations of a fitted recommendation model (see the module docstring)."""

    def __init__(self, predictor: Any):
        self.predictor = predictor
        self.task = predictor.fitted_task_
        self.catalogue, self.known = self.task.data()
        self._by_user = None

    def history(self, user: Any = None, liked: list | None = None) -> History:
        """The history of a known ``user`` and/or of the ``liked`` items."""
        items, weights = [], []
        if user is not None:
            if self._by_user is None:
                self._by_user = self.known.by_user()
            rows = self._by_user.get(str(user))
            if rows is None:
                raise ConfigError(
                    f"unknown user {user!r}: the model was not fitted on them; "
                    "give the items they liked"
                )
            rows = rows[-self.task.history_length :]
            items += self.known.items[rows].tolist()
            weights += self.known.weights[rows].tolist()
            seen = self.known.items[self._by_user[str(user)]].tolist()
        else:
            seen = []
        for item in liked or []:
            position = self.catalogue.position(str(item).strip())
            items.append(position)
            weights.append(float(np.max(self.known.weights)) if len(self.known) else 1.0)
            seen.append(position)
        if not items:
            raise ConfigError("nothing to recommend from: give a user or --liked items")
        return History(tuple(items), tuple(weights), (), tuple(seen))

    def _answers(self, scores: np.ndarray, seen: list, top_k: int) -> list[dict]:
        if top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {top_k}")
        ranked = top_unseen(scores[None, :], [seen], top_k)[0]
        return [
            {
                "item": self.catalogue.ids[i],
                "score": float(scores[i]),
                "text": self.catalogue.texts[i],
            }
            for i in ranked
        ]

    def recommend(self, user=None, liked=None, top_k: int = 10, similar_to=None) -> list[dict]:
        """The ``top_k`` unseen items for ``user`` and/or ``liked`` items, or the items most
        like ``similar_to`` (``{"item", "score", "text"}``, best first)."""
        if similar_to is not None:
            if user is not None or liked:
                raise ConfigError(
                    "--similar-to ranks items like one item: give no user nor --liked"
                )
            return self.similar(similar_to, top_k)
        if isinstance(liked, str):
            liked = [p for p in liked.split(",") if p.strip()]
        history = self.history(user, liked)
        scores = self.predictor._outputs([history]).numpy()[0]
        return self._answers(scores, list(history.seen), top_k)

    def similar(self, item: Any, top_k: int = 10) -> list[dict]:
        """The ``top_k`` items nearest ``item`` (itself left out)."""
        import torch

        position = self.catalogue.position(str(item))
        with torch.inference_mode():
            vectors = self.predictor.head_.eval().item_vectors()
            scores = (vectors @ vectors[position]).numpy()
        return self._answers(scores, [position], top_k)
