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

    def nearest(
        self, query: np.ndarray, k: int, among: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The keys of the ``k`` rows most similar to the unit vector ``query`` (all rows
        with the k-th best score or better), and their cosine similarities, best first
        (ties by key). ``among`` restricts the search to those keys."""
        rows = np.arange(self.size) if among is None else self._rows(among)
        if k <= 0 or len(rows) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self._scores(query.astype(np.float32), rows)
        if len(rows) > k:
            cut = np.partition(scores, len(scores) - k)[len(scores) - k]
            chosen = np.flatnonzero(scores >= cut)
        else:
            chosen = np.arange(len(rows))
        keys, scores = self.keys[rows[chosen]], scores[chosen]
        order = np.lexsort((keys, -scores))
        return keys[order], scores[order]

    def _rows(self, keys: np.ndarray) -> np.ndarray:
        keys = np.unique(keys.astype(np.int64))
        at = np.searchsorted(self.keys, keys)
        at = at[at < self.size]
        return at[np.isin(self.keys[at], keys)]

    def _scores(self, query: np.ndarray, rows: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        everything = len(rows) == self.size
        out = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), chunk):
            part = slice(start, start + chunk)
            block = self.vectors[part] if everything else self.vectors[rows[part]]
            out[part] = block @ query
        return out
