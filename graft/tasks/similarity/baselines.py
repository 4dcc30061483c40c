"""Collaborative baselines a recommender is compared with, fitted on the same interactions:

- :class:`Popularity`: items by how many interactions they have;
- :class:`ItemKNN`: item-based collaborative filtering, cosine similarity of the items'
  columns of the binary user x item matrix, each item's :data:`NEIGHBOURS` nearest kept; a
  user's score of an item is the sum of its similarities to the user's items;
- :class:`ALS`: ``implicit``'s alternating least squares (the optional ``implicit`` package,
  ``pip install graft[recommendation]``; left out when it is not installed).

Each scores every catalogue item for users given as rows of a sparse ``users x items`` matrix
(:func:`user_matrix`). None knows an item nobody interacted with: such an item scores 0.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

NEIGHBOURS = 100


def user_matrix(histories: list, items: int) -> sparse.csr_matrix:
    """A binary ``users x items`` CSR matrix of each history's items."""
    rows = np.concatenate([np.full(len(h), i) for i, h in enumerate(histories)] or [[]])
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories] or [[]])
    data = np.ones(len(cols), dtype=np.float32)
    matrix = sparse.csr_matrix(
        (data, (rows.astype(int), cols.astype(int))), (len(histories), items)
    )
    matrix.data[:] = 1.0
    return matrix


class Popularity:
    name = "popularity"

    def fit(self, matrix: sparse.csr_matrix) -> Popularity:
        self.counts = np.asarray(matrix.sum(0)).ravel().astype(np.float32)
        return self

    def scores(self, users: sparse.csr_matrix) -> np.ndarray:
        return np.tile(self.counts, (users.shape[0], 1))


class ItemKNN:
    name = "item-knn"

    def __init__(self, neighbours: int = NEIGHBOURS, chunk: int = 1024):
        self.neighbours, self.chunk = neighbours, chunk

    def fit(self, matrix: sparse.csr_matrix) -> ItemKNN:
        """Each item's ``neighbours`` most cosine-similar items (itself left out)."""
        norms = np.sqrt(np.asarray(matrix.sum(0)).ravel()).astype(np.float32)
        scaled = (matrix @ sparse.diags(1.0 / np.maximum(norms, 1e-9))).tocsc()
        count = matrix.shape[1]
        rows, cols, values = [], [], []
        for start in range(0, count, self.chunk):
            block = (scaled[:, start : start + self.chunk].T @ scaled).toarray()
            for offset, row in enumerate(block):
                row[start + offset] = 0.0
                k = min(self.neighbours, count - 1)
                top = np.argpartition(-row, k)[:k]
                top = top[row[top] > 0]
                rows.append(np.full(len(top), start + offset))
                cols.append(top)
                values.append(row[top])
        self.similarity = sparse.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), (count, count)
        )
        return self

    def scores(self, users: sparse.csr_matrix) -> np.ndarray:
        return np.asarray((users @ self.similarity).todense(), dtype=np.float32)


class ALS:
    name = "als"

    def __init__(self, factors: int = 64, iterations: int = 15, seed: int = 0):
        self.factors, self.iterations, self.seed = factors, iterations, seed

    @staticmethod
    def available() -> bool:
        try:
            import implicit  # noqa: F401
        except ImportError:
            return False
        return True

    def fit(self, matrix: sparse.csr_matrix) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads only
            self.model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=0.05,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=1,
                calculate_training_loss=False,
            )
            self.model.fit(matrix.tocsr(), show_progress=False)
        return self

    def scores(self, users: sparse.csr_matrix) -> np.ndarray:
        """Users' scores from their rows: fitted users' own factors are not used, so that a
        user is scored from the same history as every other model scores them."""
        factors = self.model.recalculate_user(np.arange(users.shape[0]), users.tocsr())
        return np.asarray(factors @ self.model.item_factors.T, dtype=np.float32)


def baselines(seed: int = 0) -> list:
    """The baselines to compare with: popularity, item-kNN and, when installed, ALS."""
    found = [Popularity(), ItemKNN()]
    if ALS.available():
        found.append(ALS(seed=seed))
    return found
