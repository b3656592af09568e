"""Thread resolution and the ``threads`` view.

A message's thread is its ``thread_id`` if given; else, with ``reply_to``, the
thread of its parent (through the chain); a ``reply_to`` naming a message that
does not exist puts it in the thread named by that id; a cycle resolves to its
smallest message id; otherwise a message starts its own thread (decision 11).
"""

from __future__ import annotations

import hashlib

import polars as pl

from pipelines.ingest.catalog import TIME

THREADS_SCHEMA = pl.Schema(
    {
        "thread_id": pl.String(),
        "room_id": pl.String(),
        "platform": pl.String(),
        "root_message_id": pl.String(),
        "message_count": pl.Int64(),
        "total_message_count": pl.Int64(),
        "participant_count": pl.Int64(),
        "first_at": TIME,
        "last_at": TIME,
        "last_message_id": pl.String(),
        "max_depth": pl.Int64(),
        "merkle_root": pl.String(),
    }
)


def resolve_threads(links: pl.DataFrame, settled: pl.DataFrame | None = None) -> pl.DataFrame:
    """``message_id, thread_id, depth`` for every message of ``links``.

    ``links`` has ``message_id, explicit_thread_id, reply_to``. ``settled`` optionally
    has ``message_id, thread_id, depth`` of other existing messages whose thread is
    already known and cannot change (none of their ancestors is in ``links``); a
    parent in neither frame is missing. ``depth`` counts reply hops to the thread's
    root within the thread (0 for a root; a cycle is cut at its smallest id).
    """
    ids = links["message_id"].to_list()
    explicit = dict(zip(ids, links["explicit_thread_id"].to_list(), strict=True))
    parent_of = dict(zip(ids, links["reply_to"].to_list(), strict=True))
    thread: dict[str, str] = {}
    depth: dict[str, int] = {}
    if settled is not None and not settled.is_empty():
        known = settled["message_id"].to_list()
        thread.update(zip(known, settled["thread_id"].to_list(), strict=True))
        depth.update(zip(known, settled["depth"].to_list(), strict=True))
    for start in ids:
        if start in thread:
            continue
        path, on_path = [], {}
        node, found = start, None
        while found is None:
            if node in thread:
                found = thread[node]
            elif node in on_path:  # a cycle: its smallest id names the thread
                found = min(path[on_path[node] :])
            elif explicit[node] is not None:
                path.append(node)
                found = explicit[node]
            else:
                parent = parent_of[node]
                path.append(node)
                on_path[node] = len(path) - 1
                if parent is None:
                    found = node
                elif parent not in explicit and parent not in thread:
                    found = parent
                else:
                    node = parent
        for member in path:
            thread[member] = found

    for start in ids:
        path, node = [], start
        while node not in depth:
            parent = parent_of.get(node)
            if (
                parent is None
                or parent not in thread
                or thread[parent] != thread[node]
                or node == thread[node]
                or parent in path
            ):
                depth[node] = 0
                break
            path.append(node)
            node = parent
        base = depth[node]
        for offset, member in enumerate(reversed(path), 1):
            depth[member] = base + offset
    return pl.DataFrame(
        {
            "message_id": ids,
            "thread_id": [thread[i] for i in ids],
            "depth": [depth[i] for i in ids],
        },
        schema={"message_id": pl.String, "thread_id": pl.String, "depth": pl.Int64},
    )


def reply_descendants(links: pl.DataFrame, roots: pl.Series) -> pl.Series:
    """``roots`` and every message below one of them through ``reply_to``: their thread
    (unless given explicitly) and their depth follow from the roots'."""
    children = links.filter(pl.col("reply_to").is_not_null())
    found = set(roots.to_list())
    frontier = roots
    while not frontier.is_empty():
        kids = children.filter(
            pl.col("reply_to").is_in(frontier.implode())
            & ~pl.col("message_id").is_in(pl.Series(list(found), dtype=pl.String).implode())
        )["message_id"]
        found.update(kids.to_list())
        frontier = kids
    return pl.Series("message_id", sorted(found), dtype=pl.String)


# The ``messages`` columns that ``build_threads`` reads.
THREADS_INPUT = (
    "message_id",
    "thread_id",
    "room_id",
    "platform",
    "account_id",
    "created_at",
    "deleted",
    "depth",
    "content_cid",
)


def merkle_root(cids: list[str]) -> str | None:
    """Binary Merkle root (sha256, odd node carried up) over CIDs in order; None when empty."""
    if not cids:
        return None
    level = [hashlib.sha256(cid.encode()).digest() for cid in cids]
    while len(level) > 1:
        paired = [
            hashlib.sha256(a + b).digest() for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def build_threads(messages: pl.DataFrame) -> pl.DataFrame:
    """The ``threads`` rows of the threads that ``messages`` (all their messages) form.

    Counts, participants, first/last times and the Merkle root count live messages
    only (decision 12); the root is the message whose id is the thread id, else the
    earliest by (created_at, message_id); room and platform are the root's.
    """
    ordered = messages.sort("thread_id", "created_at", "message_id")
    live = ordered.filter(~pl.col("deleted"))
    roots = (
        ordered.with_columns(is_named=pl.col("message_id") == pl.col("thread_id"))
        .sort(
            "thread_id",
            "is_named",
            "created_at",
            "message_id",
            descending=[False, True, False, False],
        )
        .group_by("thread_id", maintain_order=True)
        .first()
        .select("thread_id", "room_id", "platform", root_message_id="message_id")
    )
    everything = ordered.group_by("thread_id").agg(
        total_message_count=pl.len().cast(pl.Int64), max_depth=pl.col("depth").max()
    )
    live_stats = live.group_by("thread_id", maintain_order=True).agg(
        message_count=pl.len().cast(pl.Int64),
        participant_count=pl.col("account_id").n_unique().cast(pl.Int64),
        first_at=pl.col("created_at").first(),
        last_at=pl.col("created_at").last(),
        last_message_id=pl.col("message_id").last(),
        cids=pl.col("content_cid"),
    )
    live_stats = live_stats.with_columns(
        merkle_root=pl.Series(
            [merkle_root(c) for c in live_stats["cids"].to_list()], dtype=pl.String
        )
    ).drop("cids")
    return (
        roots.join(everything, on="thread_id", how="left")
        .join(live_stats, on="thread_id", how="left")
        .with_columns(
            pl.col("message_count").fill_null(0), pl.col("participant_count").fill_null(0)
        )
        .select(THREADS_SCHEMA.names())
        .sort("thread_id")
    )
