"""Benchmark the search index: build throughput, incremental update, query latency, and the
engine and k-NN choices behind it.

    .venv/bin/python benchmarks/search_bench.py --events 1830000 --days 365 --work /tmp/search-bench

(1.83M events make about 1M messages.) The store is generated once and the lake of every
day but the last is built once (neither is measured); the embeddings table is kept in the
work folder, so a second run embeds nothing and says so. Phases (--only):

  embed     MiniLM throughput on a fixed sample of distinct live bodies (--embed-sample)
  build     update_embeddings (every body without a vector) and a full update_index
  next_day  ingest + project the last day (not measured), then the incremental updates
  queries   p50/p95 per mode, without and with a room filter (--queries per mode)
  knn       exact numpy search vs usearch HNSW on the real vectors; numpy on synthetic 1M
  engines   tantivy vs SQLite FTS5 vs DuckDB fts on the same live bodies (--engine-docs)

Prints one line per figure. Timings are wall-clock on whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.ingest.load import load_content, load_event_days
from pipelines.ingest.store import list_days
from pipelines.lake.delta import Lake
from pipelines.lake.projections import refresh_projections
from pipelines.sample.generator import TOPICS
from pipelines.search.api import MODES, open_searcher
from pipelines.search.build import update_embeddings, update_index
from pipelines.search.documents import DOCUMENTS, Filters, read_live_documents
from pipelines.search.embed import DIM, Embedder, default_embedder

PHASES = ("embed", "build", "next_day", "queries", "knn", "engines")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):7.2f} ms  p95 {p95:7.2f} ms  (n={len(ms)})"


def prepare(args: argparse.Namespace) -> tuple[Path, Lake, list]:
    """The store and the lake of every day but the last (built once, not measured)."""
    store = args.work / f"store-{args.events}-{args.days}-{args.seed}"
    if not (store / "events").is_dir():
        from pipelines.sample import generate_store

        began = time.perf_counter()
        generate_store(store, events=args.events, days=args.days, seed=args.seed)
        print(f"generated {store} in {time.perf_counter() - began:.0f} s")
    lake = Lake(args.work / f"lake-{args.events}-{args.days}-{args.seed}")
    days = list_days(store)
    marker = lake.root / ".history-built"
    if not marker.exists():
        shutil.rmtree(lake.root, ignore_errors=True)
        began = time.perf_counter()
        load_event_days(lake, store, days[:-1])
        load_content(lake, store)
        refresh_projections(lake)
        marker.write_text("every day but the last\n")
        print(f"built the lake of {len(days) - 1} days in {time.perf_counter() - began:.0f} s")
    return store, lake, days


def phase_embed(lake: Lake, sample: int) -> None:
    bodies = read_live_documents(lake, lake.version("messages")).unique("cid").sort("cid")
    step = max(1, bodies.height // sample)
    texts = bodies["body"].to_list()[::step][:sample]
    began = time.perf_counter()
    embedder = Embedder()
    loaded = time.perf_counter()
    embedder.embed(texts)
    done = time.perf_counter()
    rate = len(texts) / (done - loaded)
    print(
        f"embed     model load {loaded - began:.2f} s; {len(texts)} of {bodies.height} distinct "
        f"live bodies in {done - loaded:.1f} s = {rate:,.0f} bodies/s -> all of them in about "
        f"{bodies.height / rate / 60:.1f} min (extrapolated)"
    )


def phase_build(lake: Lake) -> None:
    began = time.perf_counter()
    embedded = update_embeddings(lake)
    embed_seconds = time.perf_counter() - began
    rate = embedded.embedded / embedded.seconds_embedding if embedded.seconds_embedding else 0
    print(
        f"build     embeddings: {embedded.embedded} bodies embedded of {embedded.bodies_seen} "
        f"distinct live bodies in {embed_seconds:.1f} s ({rate:,.0f} bodies/s while embedding)"
        + ("  [reused from an earlier run]" if embedded.embedded == 0 else "")
    )
    index = update_index(lake, rebuild=True)
    docs = index.added
    print(
        f"build     full text: {docs} documents in {index.seconds_fulltext:.1f} s = "
        f"{docs / index.seconds_fulltext:,.0f} bodies/s (read messages, diff, tantivy, "
        f"documents table); vectors: {index.vectors_added} rows in "
        f"{index.seconds_vectors:.1f} s; peak {peak_mb():,.0f} MB"
    )
    print(f"build     index size {_size_mb(lake.root / 'search'):,.0f} MB under {lake.root}/search")


def phase_next_day(store: Path, lake: Lake, last_day) -> None:
    marker = lake.root / ".last-day-built"
    if marker.exists():
        print("next_day  skipped: the last day is already in this lake (delete the work folder)")
        return
    load_event_days(lake, store, [last_day])
    load_content(lake, store)
    refresh = refresh_projections(lake)
    marker.write_text(f"{last_day}\n")
    messages = refresh.rows_written["messages"]
    began = time.perf_counter()
    embedded = update_embeddings(lake)
    middle = time.perf_counter()
    index = update_index(lake)
    done = time.perf_counter()
    print(
        f"next_day  {last_day}: projections rewrote {messages} messages rows in "
        f"{len(embedded.weeks or [])} week(s); embeddings {embedded.embedded} new bodies in "
        f"{middle - began:.1f} s; index {done - middle:.1f} s (full text "
        f"{index.seconds_fulltext:.1f} s: -{index.removed} +{index.added} documents; vectors "
        f"{index.seconds_vectors:.1f} s: +{index.vectors_added} -{index.vectors_removed})"
    )


def query_set(count: int, seed: int) -> list[str]:
    """Words, phrases, prefixes and sentences from the sample generator's topic terms."""
    rng = random.Random(seed)
    terms = [term for topic in TOPICS for term in topic.terms]
    queries = []
    for i in range(count):
        term = rng.choice(terms)
        words = [w for w in term.replace("the ", "").split() if w.isalpha()] or [term]
        kind = i % 4
        if kind == 0:
            queries.append(rng.choice(words))
        elif kind == 1:
            queries.append(f'"{term}"')
        elif kind == 2:
            word = max(words, key=len)
            queries.append(word[: max(3, len(word) - 3)] + "*")
        else:
            queries.append(f"any advice on {term} and {rng.choice(terms)}?")
    return queries


def phase_queries(lake: Lake, count: int, seed: int) -> None:
    searcher = open_searcher(lake)
    embedder = default_embedder()
    queries = query_set(count, seed)
    began = time.perf_counter()
    for query in queries:
        embedder.embed([query])
    per_query = (time.perf_counter() - began) / len(queries)
    print(f"queries   embedding one query: {per_query * 1000:.1f} ms (part of vector and hybrid)")
    rooms = (
        searcher.documents.group_by("room_id")
        .len()
        .sort(["len", "room_id"], descending=[True, False])["room_id"]
        .to_list()
    )
    for mode in MODES:
        for label, filters in (("no filter", Filters()), ("room filter", Filters(room=rooms[0]))):
            searcher.search(queries[0], mode, 10, filters)  # warm
            seconds = []
            for query in queries:
                start = time.perf_counter()
                searcher.search(query, mode, 10, filters)
                seconds.append(time.perf_counter() - start)
            print(f"queries   {mode:<6} {label:<11} k=10  {percentiles(seconds)}")
    print(
        f"queries   over {searcher.documents.height:,} live documents, "
        f"{searcher.vectors.size:,} distinct vectors; the busiest room has "
        f"{searcher.documents.filter(pl.col('room_id') == rooms[0]).height:,} documents"
    )


def phase_knn(lake: Lake, seed: int) -> None:
    searcher = open_searcher(lake)
    matrix = np.asarray(searcher.vectors.vectors, dtype=np.float32)
    rng = np.random.default_rng(seed)
    queries = matrix[rng.choice(len(matrix), size=min(200, len(matrix)), replace=False)]
    queries = queries + rng.normal(0, 0.05, queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact, seconds = [], []
    for q in queries:
        start = time.perf_counter()
        rows, _ = searcher.vectors.nearest(q, 10)
        seconds.append(time.perf_counter() - start)
        exact.append(set(searcher.vectors.keys[rows[:10]].tolist()))
    print(f"knn       numpy exact, {len(matrix):,} real vectors: {percentiles(seconds)}")

    from usearch.index import Index

    for dtype in ("f32", "f16"):
        index = Index(ndim=DIM, metric="cos", dtype=dtype)
        began = time.perf_counter()
        index.add(searcher.vectors.keys.astype(np.uint64), matrix, threads=os.cpu_count() or 1)
        build = time.perf_counter() - began
        seconds, hits = [], 0
        for q, truth in zip(queries, exact, strict=True):
            start = time.perf_counter()
            found = index.search(q, 10)
            seconds.append(time.perf_counter() - start)
            hits += len(truth & set(np.asarray(found.keys).tolist()))
        print(
            f"knn       usearch HNSW {dtype} (M=16, ef_add=128, ef=64): build {build:.1f} s "
            f"({len(matrix) / build:,.0f} vectors/s), {percentiles(seconds)}, "
            f"recall@10 {hits / (10 * len(queries)):.3f}"
        )

    synthetic = rng.standard_normal(size=(1_000_000, DIM), dtype=np.float32)
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
    seconds = []
    for q in queries[:50]:
        start = time.perf_counter()
        scores = synthetic @ q
        np.argpartition(scores, len(scores) - 10)[-10:]
        seconds.append(time.perf_counter() - start)
    print(
        f"knn       numpy exact, 1,000,000 synthetic vectors ({synthetic.nbytes / 1e9:.1f} GB): "
        f"{percentiles(seconds)}"
    )


def phase_engines(lake: Lake, limit: int, seed: int) -> None:
    docs = lake.read(DOCUMENTS, columns=["message_id"]).sort("message_id")
    bodies = read_live_documents(lake, lake.version("messages")).select("message_id", "body")
    bodies = bodies.join(docs, on="message_id").head(limit)
    ids, texts = bodies["message_id"].to_list(), bodies["body"].to_list()
    words = [q.strip('"*?') for q in query_set(200, seed) if not q.startswith("any")]
    phrases = [q.strip('"') for q in query_set(200, seed) if q.startswith('"')]
    update_ids = ids[:: max(1, len(ids) // 1000)][:1000]
    work = Path(tempfile.mkdtemp(prefix="engines-"))
    try:
        for name, engine in (("tantivy", _tantivy), ("sqlite", _sqlite), ("duckdb", _duckdb)):
            build, search_words, search_phrase, update = engine(work, ids, texts)
            seconds_w = _timed(search_words, words)
            seconds_p = _timed(search_phrase, phrases)
            began = time.perf_counter()
            how = update(update_ids, {i: t + " edited" for i, t in zip(ids, texts, strict=True)})
            updated = time.perf_counter() - began
            print(
                f"engines   {name:<8} {len(ids):,} docs: build {build:.1f} s = "
                f"{len(ids) / build:,.0f} docs/s; words {percentiles(seconds_w)}; phrases "
                f"{percentiles(seconds_p)}; replace 1,000 docs {updated:.2f} s ({how})"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _timed(function, queries: list[str]) -> list[float]:
    function(queries[0])
    seconds = []
    for query in queries:
        start = time.perf_counter()
        function(query)
        seconds.append(time.perf_counter() - start)
    return seconds


def _tantivy(work: Path, ids: list[str], texts: list[str]):
    from pipelines.search.index import FullTextIndex

    index = FullTextIndex(work / "tantivy")
    frame = pl.DataFrame({"message_id": ids, "body": texts}).with_columns(
        platform=pl.lit("p"),
        room_id=pl.lit("r"),
        account_id=pl.lit("a"),
        thread_id=pl.col("message_id"),
        created_at=pl.lit(0).cast(pl.Datetime("us", "UTC")),
    )
    began = time.perf_counter()
    index.apply([], frame)
    build = time.perf_counter() - began

    def update(stale: list[str], text: dict) -> str:
        changed = frame.filter(pl.col("message_id").is_in(stale))
        index.apply(stale, changed.with_columns(body=pl.col("message_id").replace_strict(text)))
        return "delete_documents_by_term + add, commit"

    return (
        build,
        lambda q: index.search(q, 10),
        lambda q: index.search(f'"{q}"', 10),
        update,
    )


def _sqlite(work: Path, ids: list[str], texts: list[str]):
    db = sqlite3.connect(work / "fts5.db")
    db.execute("CREATE TABLE docs (rowid INTEGER PRIMARY KEY, message_id TEXT UNIQUE)")
    db.execute("CREATE VIRTUAL TABLE fts USING fts5(body, tokenize='porter unicode61')")
    began = time.perf_counter()
    db.executemany("INSERT INTO docs VALUES (?, ?)", enumerate(ids))
    db.executemany("INSERT INTO fts (rowid, body) VALUES (?, ?)", enumerate(texts))
    db.commit()
    build = time.perf_counter() - began
    sql = (
        "SELECT d.message_id, bm25(fts), snippet(fts, 0, '**', '**', '…', 16) FROM fts "
        "JOIN docs d ON d.rowid = fts.rowid WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT 10"
    )

    def words(query: str):
        return db.execute(sql, (" OR ".join(f'"{w}"' for w in query.split()),)).fetchall()

    def phrase(query: str):
        return db.execute(sql, (f'"{query}"',)).fetchall()

    def update(stale: list[str], text: dict) -> str:
        marks = ",".join("?" * len(stale))
        select = f"SELECT rowid, message_id FROM docs WHERE message_id IN ({marks})"
        rows = db.execute(select, stale).fetchall()
        db.executemany("DELETE FROM fts WHERE rowid = ?", [(r,) for r, _ in rows])
        insert = "INSERT INTO fts (rowid, body) VALUES (?, ?)"
        db.executemany(insert, [(r, text[m]) for r, m in rows])
        db.commit()
        return "delete + insert by rowid"

    return build, words, phrase, update


def _duckdb(work: Path, ids: list[str], texts: list[str]):
    import duckdb
    import duckdb_extension_fts

    db = duckdb.connect(str(work / "fts.duckdb"))
    extension = Path(duckdb_extension_fts.__file__).parent / "extensions" / "v1.5.5"
    db.execute(f"LOAD '{extension / 'fts.duckdb_extension'}'")
    docs = pl.DataFrame({"message_id": ids, "body": texts})  # noqa: F841 (read by DuckDB)
    db.execute("CREATE TABLE docs AS SELECT * FROM docs")
    began = time.perf_counter()
    create = (
        "PRAGMA create_fts_index('docs', 'message_id', 'body', stemmer='english', "
        "ignore='(\\.|[^a-z0-9])+', overwrite=1)"
    )
    db.execute(create)
    build = time.perf_counter() - began
    sql = (
        "SELECT message_id, score FROM (SELECT message_id, fts_main_docs.match_bm25(message_id, ?) "
        "AS score FROM docs) WHERE score IS NOT NULL ORDER BY score DESC LIMIT 10"
    )

    def phrase(query: str):  # no phrase operator: BM25 on the words, then a substring check
        return db.execute(
            "SELECT * FROM (" + sql.replace("LIMIT 10", "LIMIT 100") + ") s "
            "JOIN docs USING (message_id) WHERE contains(lower(body), lower(?)) LIMIT 10",
            [query, query],
        ).fetchall()

    def update(stale: list[str], text: dict) -> str:
        db.executemany(
            "UPDATE docs SET body = ? WHERE message_id = ?", [(text[m], m) for m in stale]
        )
        db.execute(create)
        return "no incremental update: UPDATE rows, then rebuild the whole index"

    return build, lambda q: db.execute(sql, [q]).fetchall(), phrase, update


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_830_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("/tmp/search-bench"))
    parser.add_argument("--only", default=",".join(PHASES))
    parser.add_argument("--embed-sample", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--engine-docs", type=int, default=200_000)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as they are measured
    wanted = args.only.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    store, lake, days = prepare(args)
    messages = lake.row_count("messages")
    print(f"lake      {messages:,} messages rows (every day but {days[-1]}) under {lake.root}")
    if "embed" in wanted:
        phase_embed(lake, args.embed_sample)
    if "build" in wanted:
        phase_build(lake)
    if "next_day" in wanted:
        phase_next_day(store, lake, days[-1])
    if "queries" in wanted:
        phase_queries(lake, args.queries, args.seed)
    if "knn" in wanted:
        phase_knn(lake, args.seed)
    if "engines" in wanted:
        phase_engines(lake, args.engine_docs, args.seed)
    print(f"peak memory {peak_mb():,.0f} MB")


if __name__ == "__main__":
    main()
