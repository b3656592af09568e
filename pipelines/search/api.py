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
from pipelines.search.index import FULLTEXT_RESULT_SCHEMA, FullTextIndex, plain_text
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
        documents = self.documents
        self._keys = documents["key"].to_numpy()
        self._created = documents["created_at"].dt.epoch("us").to_numpy()
        self._codes = {
            name: _codes(documents[name]) for name in ("platform", "room_id", "account_id")
        }
        self._vector_rows = self.vectors.rows_of(self._keys)  # -1: body not embedded (yet)

    def _mask(self, filters: Filters) -> np.ndarray:
        """Documents rows passing ``filters`` (numpy, no per-query polars scan)."""
        mask = self._vector_rows >= 0
        for name, value in (
            ("platform", filters.platform),
            ("room_id", filters.room),
            ("account_id", filters.account),
        ):
            if value is not None:
                codes, code_of = self._codes[name]
                mask &= codes == code_of.get(value, -2)
        lower, upper = filters.bounds_us()
        if lower is not None:
            mask &= self._created >= lower
        if upper is not None:
            mask &= self._created < upper
        return mask

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
        text_hits = self.fulltext.search(query, depth, filters, snippets=False)
        vector_hits = self.nearest(query, depth, filters)
        fused = reciprocal_rank_fusion(
            [text_hits["message_id"].to_list(), vector_hits["message_id"].to_list()], RRF_K
        )[:k]
        order = pl.DataFrame(
            {"message_id": [m for m, _ in fused], "fused": [s for _, s in fused]},
            schema={"message_id": pl.String(), "fused": pl.Float64()},
        )
        vector_only = vector_hits.join(text_hits, on="message_id", how="anti")
        columns = [c for c in FULLTEXT_RESULT_SCHEMA.names() if c not in ("score", "snippet")]
        rows = pl.concat([text_hits.select(columns), vector_only.select(columns)])
        hits = order.join(rows, on="message_id", maintain_order="left").rename({"fused": "score"})
        return _ranked(self._with_snippets(hits, query))

    def nearest(self, query: str, k: int, filters: Filters) -> pl.DataFrame:
        """The ``k`` live messages whose bodies are most similar to ``query`` (cosine
        ``score``; ties: newest first, then by message_id); document columns, no snippet."""
        if self.vectors.size == 0 or self.documents.is_empty():
            return pl.DataFrame(schema={**DOCUMENTS_SCHEMA, "score": pl.Float64()})
        vector = default_embedder().embed([plain_text(query) or query])[0]
        if filters.empty:
            vector_rows, scores = self.vectors.nearest(vector, k)
            keys = self.vectors.keys[vector_rows]
            starts = np.searchsorted(self._keys, keys, side="left")
            ends = np.searchsorted(self._keys, keys, side="right")
            rows = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        else:
            candidates = np.flatnonzero(self._mask(filters))
            vector_rows, scores = self.vectors.nearest(
                vector, k, np.unique(self._vector_rows[candidates])
            )
            rows = candidates[np.isin(self._vector_rows[candidates], vector_rows)]
        score_of = dict(zip(vector_rows.tolist(), scores.astype(np.float64).tolist(), strict=True))
        found = self.documents[rows].with_columns(
            score=pl.Series(
                [score_of[r] for r in self._vector_rows[rows].tolist()], dtype=pl.Float64
            )
        )
        return found.sort(
            ["score", "created_at", "message_id"], descending=[True, True, False]
        ).head(k)

    def _with_snippets(self, hits: pl.DataFrame, query: str) -> pl.DataFrame:
        """``hits`` in FULLTEXT_RESULT_SCHEMA, snippets cut by the full-text index."""
        snippets = self.fulltext.snippets(query, hits["message_id"].to_list())
        return hits.with_columns(
            snippet=pl.col("message_id").replace_strict(
                snippets, default=None, return_dtype=pl.String
            )
        ).select(FULLTEXT_RESULT_SCHEMA.names())


def _codes(column: pl.Series) -> tuple[np.ndarray, dict[str, int]]:
    """Integer codes of a string column (-1 for null) and the code of each value."""
    values = column.drop_nulls().unique().sort()
    code_of = {value: code for code, value in enumerate(values.to_list())}
    codes = column.replace_strict(code_of, default=-1, return_dtype=pl.Int32).to_numpy()
    return codes, code_of


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
