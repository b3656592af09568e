"""Keep the embeddings table and the search index up to date with ``messages``.

Both steps are incremental and idempotent (re-running after a crash at any point
converges to the same state):

- :func:`update_embeddings` embeds the bodies of live messages that have no
  vector yet, in partitions of ``messages`` changed since its last run (its
  commits record ``messages_version``), and appends them to ``embeddings``.
- :func:`update_index` diffs the live documents of the changed partitions against
  ``search/documents``, deletes and adds the difference in the full-text index,
  rewrites those document partitions, then makes the vector index hold exactly the
  embedded bodies of the live documents. ``search/state.json`` records the
  ``messages`` and ``embeddings`` versions indexed.

A missing or inconsistent index (state lost, full-text count differing from the
documents table) is rebuilt from scratch; that never re-embeds anything.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, write_deltalake
from deltalake.exceptions import DeltaError

from pipelines.lake.delta import TABLE_PROPERTIES, Lake, in_predicate
from pipelines.search.documents import (
    DOCUMENTS,
    DOCUMENTS_SCHEMA,
    MESSAGES,
    SEARCH_DIR,
    changed_weeks,
    document_changes,
    read_live_documents,
    vector_keys,
)
from pipelines.search.embed import (
    EMBEDDINGS,
    EMBEDDINGS_SCHEMA,
    MODEL_ID,
    Embedder,
    embedding_rows,
    vectors_of,
)
from pipelines.search.index import FullTextIndex
from pipelines.search.vectors import VECTORS_FILE, VectorIndex

EMBED_CHUNK = 4096  # bodies per append: a long backfill keeps its progress
STATE_FILE = "state.json"
FULLTEXT_DIR = "fulltext"


def search_dir(lake: Lake) -> Path:
    return lake.root / SEARCH_DIR


# ---------------------------------------------------------------------------- embeddings


@dataclass
class EmbeddingUpdate:
    """What :func:`update_embeddings` did."""

    messages_version: int | None
    weeks: list[str] | None  # partitions looked at (None: all)
    bodies_seen: int = 0  # distinct live bodies in those partitions
    embedded: int = 0  # bodies embedded now (had no vector)
    seconds_embedding: float = 0.0
    total: int = 0  # rows in the table afterwards
    table_version: int | None = None


def update_embeddings(lake: Lake, embedder: Embedder | None = None) -> EmbeddingUpdate:
    """Embed every live body of ``messages`` that ``embeddings`` lacks (see module doc)."""
    version = lake.version(MESSAGES)
    since = _version(lake.commit_metadata(EMBEDDINGS).get("messages_version"))
    weeks = changed_weeks(lake, since, version)
    update = EmbeddingUpdate(messages_version=version, weeks=weeks)
    if weeks == [] and lake.exists(EMBEDDINGS):
        update.total = lake.row_count(EMBEDDINGS)
        update.table_version = lake.version(EMBEDDINGS)
        return update
    bodies = (
        read_live_documents(lake, version, weeks).select("cid", "body").unique("cid").sort("cid")
    )
    update.bodies_seen = bodies.height
    known = lake.read(EMBEDDINGS, EMBEDDINGS_SCHEMA, columns=["cid"])
    todo = bodies.join(known, on="cid", how="anti")
    if not todo.is_empty():
        embedder = embedder or Embedder()
    for start in range(0, todo.height, EMBED_CHUNK):
        chunk = todo.slice(start, EMBED_CHUNK)
        began = time.perf_counter()
        vectors = embedder.embed(chunk["body"].to_list())
        update.seconds_embedding += time.perf_counter() - began
        _append(lake, EMBEDDINGS, embedding_rows(chunk["cid"].to_list(), vectors), {})
        update.embedded += chunk.height
    # the last commit says which messages version every live body has a vector for
    metadata = {"messages_version": str(version), "model": MODEL_ID}
    update.table_version = _append(
        lake, EMBEDDINGS, pl.DataFrame(schema=EMBEDDINGS_SCHEMA), metadata
    )
    update.total = lake.row_count(EMBEDDINGS)
    return update


def _version(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _append(lake: Lake, table: str, frame: pl.DataFrame, metadata: dict[str, str]) -> int:
    """Append ``frame`` (possibly empty, to record ``metadata``); the new table version."""
    path = lake.path(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        str(path),
        frame.to_arrow(),
        mode="append",
        configuration=TABLE_PROPERTIES,
        commit_properties=CommitProperties(custom_metadata={"model": MODEL_ID, **metadata}),
    )
    return lake.version(table)


# ---------------------------------------------------------------------------- index


@dataclass
class IndexState:
    """``search/state.json``: the table versions the index reflects."""

    messages_version: int | None
    embeddings_version: int | None
    documents: int
    vectors: int
    model: str = MODEL_ID


def read_state(lake: Lake) -> IndexState | None:
    path = search_dir(lake) / STATE_FILE
    if not path.exists():
        return None
    try:
        return IndexState(**json.loads(path.read_text()))
    except (TypeError, ValueError):
        return None


def _write_state(lake: Lake, state: IndexState) -> None:
    path = search_dir(lake) / STATE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


@dataclass
class IndexUpdate:
    """What :func:`update_index` did."""

    rebuilt: bool
    weeks: list[str] | None
    removed: int = 0  # documents deleted from the full-text index (gone or changed)
    added: int = 0  # documents added to it (new or changed)
    vectors_added: int = 0
    vectors_removed: int = 0
    seconds_fulltext: float = 0.0
    seconds_vectors: float = 0.0
    state: IndexState | None = None
    sample: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=DOCUMENTS_SCHEMA))


def update_index(lake: Lake, rebuild: bool = False) -> IndexUpdate:
    """Bring the full-text and vector indexes in line with ``messages`` and ``embeddings``."""
    directory = search_dir(lake)
    state = None if rebuild else read_state(lake)
    if state is not None and _fulltext_count(directory) != lake.row_count(DOCUMENTS):
        state = None  # the documents table and the full-text index disagree
    if state is not None and lake.partition_columns(DOCUMENTS) != ["created_week"]:
        state = None  # written by an earlier layout
    if state is None:
        _clear(lake)
    directory.mkdir(parents=True, exist_ok=True)
    messages_version = lake.version(MESSAGES)
    embeddings_version = lake.version(EMBEDDINGS)
    weeks = None if state is None else changed_weeks(lake, state.messages_version, messages_version)
    update = IndexUpdate(rebuilt=state is None, weeks=weeks)

    began = time.perf_counter()
    changes = document_changes(lake, messages_version, weeks)
    FullTextIndex(directory / FULLTEXT_DIR).apply(changes.stale_ids, changes.added)
    if weeks != []:
        documents = changes.current.drop("body")
        lake.write(
            DOCUMENTS,
            documents,
            predicate=None if weeks is None else in_predicate("created_week", weeks),
            partition_by=["created_week"],
            metadata={"messages_version": str(messages_version)},
        )
    update.removed, update.added = changes.removed.height, changes.added.height
    update.sample = changes.added.drop("body").head(5)
    update.seconds_fulltext = time.perf_counter() - began

    began = time.perf_counter()
    vectors = VectorIndex(directory)
    wanted = _embedded_live_bodies(lake, embeddings_version)
    since = None if state is None else state.embeddings_version

    def fetch(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cids = wanted.filter(pl.col("key").is_in(keys.tolist()))["cid"]
        return _fetch_vectors(lake, cids, since, embeddings_version)

    update.vectors_added, update.vectors_removed = vectors.sync(wanted["key"].to_numpy(), fetch)
    if update.vectors_added or update.vectors_removed or state is None:
        vectors.save()
    update.seconds_vectors = time.perf_counter() - began

    update.state = IndexState(
        messages_version=messages_version,
        embeddings_version=embeddings_version,
        documents=lake.row_count(DOCUMENTS),
        vectors=vectors.size,
    )
    _write_state(lake, update.state)
    return update


def _fulltext_count(directory: Path) -> int | None:
    if not (directory / FULLTEXT_DIR / "meta.json").exists():
        return None
    return FullTextIndex(directory / FULLTEXT_DIR).num_docs


def _clear(lake: Lake) -> None:
    """Remove every index file and the documents table (embeddings stay)."""
    directory = search_dir(lake)
    (directory / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(lake.path(DOCUMENTS), ignore_errors=True)
    shutil.rmtree(directory / FULLTEXT_DIR, ignore_errors=True)
    (directory / VECTORS_FILE).unlink(missing_ok=True)


def _embedded_live_bodies(lake: Lake, embeddings_version: int | None) -> pl.DataFrame:
    """(cid, key) of the bodies of live documents that have a vector."""
    live = lake.read(DOCUMENTS, DOCUMENTS_SCHEMA, columns=["cid", "key"]).unique("cid")
    embedded = lake.scan(EMBEDDINGS, EMBEDDINGS_SCHEMA, version=embeddings_version).select("cid")
    return live.join(embedded.collect(), on="cid", how="semi").sort("cid")


def _fetch_vectors(
    lake: Lake, cids: pl.Series, since: int | None, until: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors) of the bodies ``cids``: from the rows appended to ``embeddings``
    after version ``since`` when they hold them all, else from a scan of the table."""
    rows = pl.DataFrame(schema=EMBEDDINGS_SCHEMA)
    if since is not None and until is not None and until > since:
        try:
            reader = lake.table(EMBEDDINGS).load_cdf(
                starting_version=since + 1, ending_version=until, columns=["cid", "vector"]
            )
            rows = pl.from_arrow(pa.table(reader.read_all()))
        except DeltaError:
            rows = pl.DataFrame(schema=EMBEDDINGS_SCHEMA)
    rows = rows.select("cid", "vector").filter(pl.col("cid").is_in(cids.implode()))
    if rows["cid"].n_unique() < cids.n_unique():
        everything = lake.scan(EMBEDDINGS, EMBEDDINGS_SCHEMA, version=until)
        rows = everything.filter(pl.col("cid").is_in(cids.implode())).select("cid", "vector")
        rows = rows.collect()
    rows = rows.unique("cid", keep="first").sort("cid")
    return vector_keys(rows["cid"]).to_numpy(), vectors_of(rows)
