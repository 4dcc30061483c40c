"""The metrics of a recommender on held-out interactions, beside its baselines'.

Each user's ranking is every catalogue item they have not interacted with (their known
interactions left out, as is standard), best first; nDCG@10, recall@10 and hit rate @10 of
their held-out items (:func:`graft.tasks.similarity.metrics.recommendation_metrics`) are
averaged over users. ``cold`` repeats them for the held-out items that nobody interacted with in
the known interactions (only users holding one out count), which collaborative baselines cannot
rank above chance. With ``compare``, popularity, item-kNN and (when installed) ALS are fitted on
the same known interactions and scored on the same users
(:mod:`graft.tasks.similarity.baselines`).
"""

from __future__ import annotations

import numpy as np

from graft.tasks.similarity.metrics import RECOMMENDATION, recommendation_metrics

TOP = 10


def top_unseen(scores: np.ndarray, seen: list, k: int = TOP) -> list[list[int]]:
    """Each row's ``k`` best items, the ``seen`` ones left out."""
    ranked = []
    for row, items in zip(scores, seen, strict=True):
        row = np.array(row, dtype=np.float64, copy=True)
        if len(items):
            row[np.asarray(items, dtype=int)] = -np.inf
        top = np.argpartition(-row, min(k, len(row) - 1))[:k]
        ranked.append(top[np.argsort(-row[top], kind="stable")].tolist())
    return ranked


def _with_cold(ranked: list, held: list, cold: np.ndarray) -> dict:
    metrics = recommendation_metrics(ranked, held)
    cold_held = [[i for i in items if cold[i]] for items in held]
    metrics["cold"] = recommendation_metrics(ranked, cold_held)
    return metrics


def held_out_metrics(scores: np.ndarray, histories: list, data, compare: bool) -> dict:
    """The model's metrics (``scores``: ``[users, items]`` in the order of ``histories``) and,
    with ``compare``, each baseline's under ``baselines``."""
    from graft.tasks.similarity.baselines import baselines, user_matrix

    known = data.known
    count = len(known.catalogue)
    cold = np.bincount(known.items, minlength=count) == 0
    held = [list(h.targets) for h in histories]
    seen = [list(h.seen) for h in histories]
    metrics = _with_cold(top_unseen(scores, seen), held, cold)
    metrics["skipped"] = int(data.skipped)
    if not compare:
        return metrics
    by_user = known.by_user()
    users = sorted(by_user)
    matrix = user_matrix([known.items[by_user[u]] for u in users], count)
    rows = user_matrix(seen, count)
    metrics["baselines"] = {}
    for baseline in baselines():
        fitted = baseline.fit(matrix)
        metrics["baselines"][baseline.name] = _with_cold(
            top_unseen(fitted.scores(rows), seen), held, cold
        )
    return metrics


def metrics_rows(metrics: dict) -> tuple[list[str], list[list[str]]]:
    """The columns and rows of the metrics table: the model, then each baseline."""
    columns = ["model", *RECOMMENDATION, *(f"cold {m}" for m in RECOMMENDATION[:2])]
    models = {"graft": metrics, **metrics.get("baselines", {})}
    rows = []
    for name, values in models.items():
        cold = values.get("cold", {})
        cells = [f"{values[m]:.4f}" for m in RECOMMENDATION]
        rows.append([name, *cells, *(f"{cold.get(m, 0.0):.4f}" for m in RECOMMENDATION[:2])])
    return columns, rows


def users_line(metrics: dict) -> str:
    """How many users the metrics average over, and how many held out a cold item."""
    cold = metrics.get("cold", {}).get("users", 0)
    return f"{metrics.get('users', 0)} users, {cold} holding out a cold item"
