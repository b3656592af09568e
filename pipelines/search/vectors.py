"""Exact k-nearest-neighbour search over the bodies' unit vectors (numpy brute force).

The index is one file, ``<lake>/search/vectors.npz``: ``keys`` (int64 body keys,
ascending) and ``vectors`` (the matching float32 rows), replaced atomically. It holds one
row per body of a live document that has an embedding; messages with identical
bodies share a row. A query is a matrix-vector product over all rows, or over the
rows of the bodies a filter leaves: exact, so filters never lose recall. Why
brute force and not HNSW (usearch) is measured in docs/search.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipelines.search.embed import DIM

VECTORS_FILE = "vectors.npz"
Fetch = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class VectorIndex:
    """Body keys and unit vectors, kept sorted by key; loaded from ``directory`` if saved."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        path = self.directory / VECTORS_FILE
        if path.exists():
            with np.load(path) as saved:
                self.keys, self.vectors = saved["keys"], saved["vectors"]
        else:
            self.keys = np.zeros(0, dtype=np.int64)
            self.vectors = np.zeros((0, DIM), dtype=np.float32)
        if len(self.keys) != len(self.vectors):
            raise ValueError(
                f"{self.directory}: {len(self.keys)} keys for {len(self.vectors)} rows"
            )

    @property
    def size(self) -> int:
        return len(self.keys)

    def sync(self, wanted: np.ndarray, fetch: Fetch) -> tuple[int, int]:
        """Make the index hold exactly the keys ``wanted``; ``fetch(keys)`` returns the
        (keys, vectors) of keys not yet held. Returns (rows added, rows removed)."""
        wanted = np.unique(wanted.astype(np.int64))
        keep = np.isin(self.keys, wanted)
        missing = np.setdiff1d(wanted, self.keys, assume_unique=True)
        removed = int((~keep).sum())
        keys, vectors = self.keys[keep], self.vectors[keep]
        if len(missing):
            new_keys, new_vectors = fetch(missing)
            found = np.isin(new_keys, missing)
            new_keys, new_vectors = new_keys[found], new_vectors[found]
            new_keys, first = np.unique(new_keys, return_index=True)
            keys = np.concatenate([keys, new_keys])
            vectors = np.concatenate([vectors, new_vectors[first].astype(np.float32)])
            order = np.argsort(keys, kind="stable")
            keys, vectors = keys[order], vectors[order]
        added = len(keys) - int(keep.sum())
        self.keys, self.vectors = keys, vectors
        return added, removed

    def save(self) -> None:
        """Write the file (replaced atomically: readers see the old or the new index)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{VECTORS_FILE}.tmp"
        with open(temporary, "wb") as out:
            np.savez(out, keys=self.keys, vectors=np.ascontiguousarray(self.vectors))
        os.replace(temporary, self.directory / VECTORS_FILE)

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """The row of each key (-1 for keys not held)."""
        at = np.searchsorted(self.keys, keys.astype(np.int64))
        found = at < self.size
        found[found] = self.keys[at[found]] == keys[found]
        return np.where(found, at, -1)

    def nearest(
        self, query: np.ndarray, k: int, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The rows most similar to the unit vector ``query``: the ``k`` best and every row
        tying with the k-th, best first (ties by row, i.e. by key), with their cosine
        similarities. ``rows`` (unique row numbers) restricts the search to those rows."""
        if k <= 0 or self.size == 0 or (rows is not None and len(rows) == 0):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        query = query.astype(np.float32)
        if rows is None or len(rows) > self.size // 4:
            scores = self.vectors @ query  # one pass over all rows beats gathering many
            rows = np.arange(self.size) if rows is None else rows
            scores = scores[rows] if len(rows) < self.size else scores
        else:
            scores = self.vectors[rows] @ query
        if len(rows) > k:
            cut = np.partition(scores, len(scores) - k)[len(scores) - k]
            chosen = np.flatnonzero(scores >= cut)
            rows, scores = rows[chosen], scores[chosen]
        order = np.lexsort((rows, -scores))
        return rows[order], scores[order]
