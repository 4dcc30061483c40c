"""Recommendation data: an interactions table and an items table (see
:mod:`graft.tasks.similarity.recommend_task`).

- The **interactions** table (CSV, TSV, JSON Lines or Parquet) has a user column and an item
  column, optionally a rating (or count) and a timestamp. Columns are found by their common
  names (:data:`USER_NAMES`, :data:`ITEM_NAMES`, :data:`RATING_NAMES`, :data:`TIME_NAMES`, case
  and ``_`` ignored: ``userId``, ``user_id``, ``movieId``, ``rating``, ``timestamp``...) or named
  with ``--user-column``, ``--item-column``, ``--rating-column``, ``--time-column``.
- The **items** table (``--items``) has the item id column (the interactions' item column name,
  else ``item_id``/``id``...) and text columns (``--item-text-columns``; by default every other
  column of text), joined ``"title. genre, genre"`` into the text the encoder embeds; ``a|b``
  lists (MovieLens genres) read ``a, b``.

An interaction whose item is not in the items table is skipped and counted (a warning names
the file, the first such row and the count), or refused with ``--unknown-items error``; when
no interaction names a known item, the file is refused. A row whose rating or timestamp is not
a number, or whose user or item is empty, is refused with its row number (the header is row 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from graft.errors import ConfigError, DataError

log = logging.getLogger("graft")

USER_NAMES = ("userid", "user", "users", "customerid", "customer", "visitorid", "uid")
ITEM_NAMES = ("itemid", "item", "items", "movieid", "movie", "productid", "product", "iid", "id")
RATING_NAMES = ("rating", "ratings", "score", "count", "plays", "weight", "value", "stars")
TIME_NAMES = ("timestamp", "time", "ts", "datetime", "date", "createdat", "ratedat")
SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def _key(name: str) -> str:
    return str(name).lower().replace("_", "").replace("-", "").replace(" ", "")


def find_column(columns: list[str], names: tuple[str, ...], given: str | None, what: str, path):
    """The column ``given`` names (DataError if absent) or the first of ``columns`` whose name
    is one of ``names`` (case and ``_`` ignored), or None."""
    if given is not None:
        if given not in columns:
            raise DataError(
                f"{path}: no {what} column {given!r} (its columns: {', '.join(columns)})"
            )
        return given
    by_key = {_key(c): c for c in columns}
    return next((by_key[n] for n in names if n in by_key), None)


def read_table(path: Path) -> Any:
    """A table file as a pandas DataFrame of strings (DataError naming the file and the row
    that breaks it)."""
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError(
            "recommendation reads tables with pandas: pip install graft[recommendation]"
        ) from None

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: a table is CSV, TSV, JSONL or Parquet, not {path.suffix!r}")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path).astype(str)
        if path.suffix in (".jsonl", ".json"):
            return pd.read_json(path, lines=path.suffix == ".jsonl", dtype=False).astype(str)
        sep = "\t" if path.suffix == ".tsv" else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, engine="c")
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as error:
        detail = str(error).strip().splitlines()[-1]
        raise DataError(f"{path}: unreadable ({detail})") from None


@dataclass
class Catalogue:
    """The items a recommender knows: ``ids`` and their ``texts`` in one order; ``embeddings``
    (the pretrained encoder's, set when a fit builds its backbone)."""

    ids: list[str]
    texts: list[str]
    source: str = ""
    embeddings: Any = None
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.index = {item: i for i, item in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, item: str) -> int:
        """The index of ``item`` (ConfigError naming it if unknown)."""
        try:
            return self.index[str(item)]
        except KeyError:
            raise ConfigError(f"unknown item {item!r}: it is not in the items table") from None


def item_text(values: list[str]) -> str:
    """The text of an item from its text columns' values: ``"title. a, b"``."""
    parts = [str(v).replace("|", ", ").strip() for v in values]
    return ". ".join(p for p in parts if p and p.lower() not in ("nan", "none"))


def read_items(path: Path, item_column: str | None = None, text_columns: str | None = None):
    """The items table at ``path`` (see the module docstring) as a :class:`Catalogue`."""
    frame = read_table(path)
    columns = [str(c) for c in frame.columns]
    id_column = find_column(columns, ITEM_NAMES, None, "item", path)
    if item_column is not None and item_column in columns:
        id_column = item_column
    if id_column is None:
        raise DataError(
            f"{path}: no item id column (named like {', '.join(ITEM_NAMES[:6])}; its columns: "
            f"{', '.join(columns)}); name it with --item-column"
        )
    if text_columns:
        texts = [c.strip() for c in text_columns.split(",") if c.strip()]
        missing = [c for c in texts if c not in columns]
        if missing:
            raise DataError(f"{path}: no text column {missing[0]!r} (--item-text-columns)")
    else:
        texts = [c for c in columns if c != id_column]
    if not texts:
        raise DataError(f"{path}: the items table has no text column besides {id_column!r}")
    ids = frame[id_column].astype(str).str.strip().tolist()
    seen: set[str] = set()
    for row, item in enumerate(ids, 2):
        if not item:
            raise DataError(f"{path}: row {row}: empty item id in column {id_column!r}")
        if item in seen:
            raise DataError(f"{path}: row {row}: item {item!r} appears twice")
        seen.add(item)
    values = frame[texts].astype(str).values.tolist()
    return Catalogue(ids, [item_text(v) for v in values], str(path))


@dataclass
class Interactions:
    """Interactions of users with catalogue items, one row each.

    Attributes:
        users: the user id of each row (strings).
        items: the catalogue index of each row's item.
        weights: each row's rating or count (1 without one).
        times: each row's timestamp (seconds; None without a time column).
        catalogue: the items.
        source: where the rows came from.
        skipped: rows skipped (an item not in the catalogue, a user unknown to a fitted model).
        known: the interactions a held-out part is recommended from (a user's history).
        whole: for a part split off by a fit, the data it was split from.
        compare: whether its metrics compare the baselines (held-out data of ``evaluate``).
    """

    users: list[str]
    items: np.ndarray
    weights: np.ndarray
    times: np.ndarray | None
    catalogue: Catalogue
    source: str = ""
    skipped: int = 0
    known: Interactions | None = None
    whole: Interactions | None = None
    compare: bool = False

    modality = "text"

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, indices) -> Interactions:
        index = np.asarray(indices, dtype=int)
        return replace(
            self,
            users=[self.users[i] for i in index],
            items=self.items[index],
            weights=self.weights[index],
            times=None if self.times is None else self.times[index],
            known=None,
            whole=self.whole or self,
        )

    def order(self) -> np.ndarray:
        """Row indices by user, then time (file order without times)."""
        times = self.times if self.times is not None else np.arange(len(self), dtype=float)
        return np.lexsort((np.arange(len(self)), times, np.asarray(self.users, dtype=object)))

    def by_user(self) -> dict[str, np.ndarray]:
        """Each user's row indices, oldest first."""
        groups: dict[str, list[int]] = {}
        for i in self.order().tolist():
            groups.setdefault(self.users[i], []).append(i)
        return {u: np.asarray(rows, dtype=int) for u, rows in groups.items()}

    def hold_out_last(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the kept rows and of each user's held-out one: the latest by time (a
        seeded random one without timestamps); users with one interaction keep it."""
        rng = np.random.default_rng(seed)
        held = []
        for rows in self.by_user().values():
            if len(rows) < 2:
                continue
            held.append(rows[-1] if self.times is not None else rows[rng.integers(len(rows))])
        held_set = set(int(i) for i in held)
        kept = np.array([i for i in range(len(self)) if i not in held_set], dtype=int)
        return kept, np.array(sorted(held_set), dtype=int)

    def content_hash(self) -> str:
        import hashlib

        digest = hashlib.sha256()
        digest.update("\n".join(self.users).encode())
        digest.update(self.items.tobytes())
        digest.update(self.weights.tobytes())
        return digest.hexdigest()


def _numbers(frame, column: str, path, what: str) -> np.ndarray:
    """A column as float64 (DataError naming the first row that is not a number)."""
    import pandas as pd

    raw = frame[column].astype(str).str.strip()
    values = pd.to_numeric(raw, errors="coerce")
    if what == "timestamp" and values.isna().any():  # dates as text
        dates = pd.to_datetime(raw, errors="coerce", utc=True)
        if not dates.isna().any():
            return dates.astype("int64").to_numpy(dtype=np.float64) / 1e9
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        row = int(bad[0]) + 2
        raise DataError(
            f"{path}: row {row}: {what} {raw.iloc[bad[0]]!r} in column {column!r} is not a number"
        )
    return values.to_numpy(dtype=np.float64)


def interaction_columns(columns: list[str], path, options: dict) -> dict[str, str | None]:
    """The user, item, rating and time columns of an interactions table (DataError when the
    user or item column cannot be found)."""
    found = {
        "user": find_column(columns, USER_NAMES, options.get("user_column"), "user", path),
        "item": find_column(columns, ITEM_NAMES[:-1], options.get("item_column"), "item", path),
        "rating": find_column(columns, RATING_NAMES, options.get("rating_column"), "rating", path),
        "time": find_column(columns, TIME_NAMES, options.get("time_column"), "time", path),
    }
    for role, names in (("user", USER_NAMES), ("item", ITEM_NAMES)):
        if found[role] is None:
            raise DataError(
                f"{path}: no {role} column (named like {', '.join(names[:5])}; its columns: "
                f"{', '.join(columns)}); name it with --{role}-column"
            )
    return found


def read_interactions(path: Path, catalogue: Catalogue, options: dict) -> Interactions:
    """The interactions table at ``path`` against ``catalogue`` (see the module docstring)."""
    frame = read_table(path)
    columns = interaction_columns([str(c) for c in frame.columns], path, options)
    users = frame[columns["user"]].astype(str).str.strip()
    items = frame[columns["item"]].astype(str).str.strip()
    for role, values in (("user", users), ("item", items)):
        empty = np.flatnonzero((values == "").to_numpy())
        if len(empty):
            raise DataError(f"{path}: row {int(empty[0]) + 2}: empty {role} id")
    weights = (
        _numbers(frame, columns["rating"], path, "rating")
        if columns["rating"]
        else np.ones(len(frame))
    )
    times = _numbers(frame, columns["time"], path, "timestamp") if columns["time"] else None
    index = items.map(catalogue.index)
    unknown = np.flatnonzero(index.isna().to_numpy())
    if len(unknown):
        first = int(unknown[0])
        where = f"{path}: row {first + 2}: item {items.iloc[first]!r} is not in {catalogue.source}"
        if options.get("unknown_items", "skip") == "error" or len(unknown) == len(frame):
            raise DataError(where + (" (nor is any other)" if len(unknown) == len(frame) else ""))
        log.warning("%s; %d such interactions skipped", where, len(unknown))
    keep = np.flatnonzero(~index.isna().to_numpy())
    return Interactions(
        users=users.iloc[keep].tolist(),
        items=index.iloc[keep].to_numpy(dtype=np.int64),
        weights=weights[keep],
        times=None if times is None else times[keep],
        catalogue=catalogue,
        source=str(path),
        skipped=len(unknown),
    )
