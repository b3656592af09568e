"""Search the live messages: full text (BM25), vectors (MiniLM cosine) or both fused (RRF).

    from pipelines.search import search
    search("data/lake", '"borrow checker" tokio', mode="hybrid", k=10, room="room_42")

Reads the index that ``update_index`` keeps under ``<lake>/search/``; it does not
update it. Results are a polars DataFrame, best first (RESULT_SCHEMA).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from pipelines.lake.delta import Lake
from pipelines.search.build import FULLTEXT_DIR, read_state, search_dir
from pipelines.search.documents import DOCUMENTS, DOCUMENTS_SCHEMA, Filters
from pipelines.search.embed import default_embedder
from pipelines.search.index import FULLTEXT_RESULT_SCHEMA, FullTextIndex
from pipelines.search.rank import RRF_K, reciprocal_rank_fusion
from pipelines.search.vectors import VectorIndex

Mode = Literal["fts", "vector", "hybrid"]
MODES: tuple[str, ...] = ("fts", "vector", "hybrid")
FUSION_DEPTH = 50  # hits taken from each ranking before fusion (at least k)
RESULT_SCHEMA = pl.Schema(
    {
        "message_id": pl.String(),
        "score": pl.Float64(),
        "rank": pl.Int64(),
        "account_id": pl.String(),
        "room_id": pl.String(),
        "platform": pl.String(),
        "thread_id": pl.String(),
        "created_at": DOCUMENTS_SCHEMA["created_at"],
        "snippet": pl.String(),
    }
)


class IndexMissingError(FileNotFoundError):
    """The lake has no search index yet (materialize ``search_index`` first)."""


@dataclass
class Searcher:
    """The search index of one lake, opened once; reopen after an update to see it."""

    lake: Lake
    fulltext: FullTextIndex
    vectors: VectorIndex
    documents: pl.DataFrame  # sorted by (key, message_id): rows of a body are contiguous
    state_key: tuple

    @classmethod
    def open(cls, lake: Lake | str | Path) -> Searcher:
        lake = lake if isinstance(lake, Lake) else Lake(lake)
        state = read_state(lake)
        if state is None:
            raise IndexMissingError(f"no search index under {search_dir(lake)}")
        directory = search_dir(lake)
        return cls(
            lake=lake,
            fulltext=FullTextIndex(directory / FULLTEXT_DIR),
            vectors=VectorIndex(directory),
            documents=lake.read(DOCUMENTS, DOCUMENTS_SCHEMA).sort("key", "message_id"),
            state_key=_state_key(lake),
        )

    def __post_init__(self) -> None:
        self._keys = self.documents["key"].to_numpy()

    def search(
        self, query: str, mode: Mode = "hybrid", k: int = 10, filters: Filters | None = None
    ) -> pl.DataFrame:
        """The ``k`` best live messages for ``query`` (see :func:`search`)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        filters = filters or Filters()
        if not query.strip() or k <= 0:
            return pl.DataFrame(schema=RESULT_SCHEMA)
        if mode == "fts":
            return _ranked(self.fulltext.search(query, k, filters))
        if mode == "vector":
            return _ranked(self._with_snippets(self.nearest(query, k, filters), query))
        depth = max(k, FUSION_DEPTH)
        text_hits = self.fulltext.search(query, depth, filters)
        vector_hits = self.nearest(query, depth, filters)
        fused = reciprocal_rank_fusion(
            [text_hits["message_id"].to_list(), vector_hits["message_id"].to_list()], RRF_K
        )[:k]
        order = pl.DataFrame(
            {"message_id": [m for m, _ in fused], "fused": [s for _, s in fused]},
            schema={"message_id": pl.String(), "fused": pl.Float64()},
        )
        rows = pl.concat(
            [
                text_hits.select(FULLTEXT_RESULT_SCHEMA.names()),
                self._with_snippets(
                    vector_hits.join(text_hits.select("message_id"), on="message_id", how="anti"),
                    query,
                ),
            ]
        )
        hits = order.join(rows, on="message_id", maintain_order="left")
        return _ranked(hits.with_columns(score=pl.col("fused")))

    def nearest(self, query: str, k: int, filters: Filters) -> pl.DataFrame:
        """The ``k`` live messages whose bodies are most similar to ``query`` (cosine
        ``score``; ties: newest first, then by message_id); document columns, no snippet."""
        empty = pl.DataFrame(schema={**DOCUMENTS_SCHEMA, "score": pl.Float64()})
        if self.vectors.size == 0 or self.documents.is_empty():
            return empty
        vector = default_embedder().embed([query])[0]
        if filters.empty:
            keys, scores = self.vectors.nearest(vector, k)
            starts = np.searchsorted(self._keys, keys, side="left")
            ends = np.searchsorted(self._keys, keys, side="right")
            rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
            found = self.documents[rows] if len(rows) else empty.drop("score")
        else:
            candidates = self.documents.filter(filters.expr())
            if candidates.is_empty():
                return empty
            keys, scores = self.vectors.nearest(vector, k, candidates["key"].to_numpy())
            found = candidates.filter(pl.col("key").is_in(keys.tolist()))
        scored = pl.DataFrame(
            {"key": keys, "score": scores.astype(np.float64)},
            schema={"key": pl.Int64(), "score": pl.Float64()},
        )
        return (
            found.join(scored, on="key")
            .sort(["score", "created_at", "message_id"], descending=[True, True, False])
            .head(k)
        )

    def _with_snippets(self, hits: pl.DataFrame, query: str) -> pl.DataFrame:
        """Vector ``hits`` in FULLTEXT_RESULT_SCHEMA, snippets cut by the full-text index."""
        snippets = self.fulltext.snippets(query, hits["message_id"].to_list())
        return hits.with_columns(
            snippet=pl.col("message_id").replace_strict(
                snippets, default=None, return_dtype=pl.String
            )
        ).select(FULLTEXT_RESULT_SCHEMA.names())


def _ranked(hits: pl.DataFrame) -> pl.DataFrame:
    return hits.with_columns(rank=pl.int_range(1, hits.height + 1, dtype=pl.Int64)).select(
        RESULT_SCHEMA.names()
    )


def _state_key(lake: Lake) -> tuple:
    path = search_dir(lake) / "state.json"
    stat = path.stat() if path.exists() else None
    return (str(lake.root.resolve()), stat.st_mtime_ns if stat else None)


_OPEN: dict[str, Searcher] = {}


def open_searcher(lake: Lake | str | Path) -> Searcher:
    """A cached :class:`Searcher` for the lake, reopened when the index was updated."""
    lake = lake if isinstance(lake, Lake) else Lake(lake)
    root = str(lake.root.resolve())
    cached = _OPEN.get(root)
    if cached is None or cached.state_key != _state_key(lake):
        cached = _OPEN[root] = Searcher.open(lake)
    return cached


def search(
    lake: Lake | str | Path,
    query: str,
    mode: Mode = "hybrid",
    k: int = 10,
    platform: str | None = None,
    room: str | None = None,
    account: str | None = None,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
) -> pl.DataFrame:
    """The ``k`` live messages that best match ``query``, best first.

    ``mode``: "fts" (BM25 over words, phrases and prefixes: syntax in
    ``pipelines.search.index``), "vector" (cosine similarity of MiniLM embeddings)
    or "hybrid" (reciprocal rank fusion, k=60, of the top 50 of each). Filters keep
    messages of one platform, room (room_id) or author (account_id), created in
    [since, until); a date ``until`` includes that day, ISO strings are accepted.
    Columns: message_id, score (BM25, cosine or RRF), rank (from 1), account_id,
    room_id, platform, thread_id, created_at, snippet (matched words in ``**``).
    Raises IndexMissingError when the lake has no index.
    """
    filters = Filters(
        platform=platform,
        room=room,
        account=account,
        since=_moment(since),
        until=_moment(until),
    )
    return open_searcher(lake).search(query, mode, k, filters)


def _moment(value: datetime | date | str | None) -> datetime | date | None:
    if not isinstance(value, str):
        return value
    return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
