"""Thread resolution and the ``threads`` view.

A message's thread is its ``thread_id`` if given; else, with ``reply_to``, the
thread of its parent (through the chain); a ``reply_to`` naming a message that
does not exist puts it in the thread named by that id; a cycle resolves to its
smallest message id; otherwise a message starts its own thread (decision 11).
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from pipelines.ingest.catalog import TIME
from pipelines.model.weeks import week_of

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
        "started_week": pl.Date(),  # the partition: the week the root message was created
    }
)


def resolve_threads(links: pl.DataFrame, settled: pl.DataFrame | None = None) -> pl.DataFrame:
    """``message_id, thread_id, depth`` for every message of ``links``.

    ``links`` has ``message_id, explicit_thread_id, reply_to``. ``settled`` optionally
    has ``message_id, thread_id, depth`` of other existing messages whose thread is
    already known and cannot change (none of their ancestors is in ``links``); a
    parent in neither frame is missing. ``depth`` counts reply hops to the thread's
    root within the thread (0 for a root; a cycle is cut at its smallest id).

    Both walks up the reply chains (to the thread, then to the root) are done for all
    messages at once by pointer jumping; a cycle, on either walk, is cut at its smallest
    message id, so the result does not depend on the order of the rows.
    """
    if settled is None:
        settled = pl.DataFrame(schema=_RESOLVED)
    settled = settled.select(_RESOLVED.names()).cast(_RESOLVED)
    nodes = links.select("message_id", "explicit_thread_id", "reply_to")
    if not settled.is_empty():
        nodes = nodes.join(settled.select("message_id"), on="message_id", how="anti")
    # where each message's parent is: a row of ``nodes`` (found once: both walks and
    # the edges gather by it), among ``settled``, or missing
    nodes = nodes.join(
        nodes.select(reply_to="message_id").with_row_index("parent"),
        on="reply_to",
        how="left",
        maintain_order="left",
    ).join(
        settled.select(
            reply_to="message_id",
            in_settled=pl.lit(True),
            parent_settled_thread="thread_id",
            parent_depth="depth",
        ),
        on="reply_to",
        how="left",
        maintain_order="left",
    )
    in_links = pl.col("parent").is_not_null()
    in_settled = pl.col("in_settled").fill_null(False)
    # Thread: a message names its thread, starts one, or takes its parent's.
    start = nodes.select(
        "message_id",
        thread_id=pl.when(pl.col("explicit_thread_id").is_not_null())
        .then("explicit_thread_id")
        .when(pl.col("reply_to").is_null())
        .then("message_id")
        .when(in_settled)
        .then("parent_settled_thread")
        .when(~in_links)
        .then("reply_to"),  # a missing parent names the thread
        pointer=pl.when(pl.col("explicit_thread_id").is_null()).then("parent"),
        hops=pl.lit(0, dtype=pl.Int64),
    )
    thread = _follow(start, value=pl.col("message_id"), add_hops=False)
    # Depth: hops up reply edges that stay inside the thread, above its root.
    edges = nodes.with_columns(
        thread_id=thread,
        parent_thread=pl.coalesce(thread.gather(nodes["parent"]), "parent_settled_thread"),
    )
    stuck = pl.col("thread_id").is_null() | (
        (in_links | in_settled) & pl.col("parent_thread").is_null()
    )
    inside = (
        pl.col("reply_to").is_not_null()
        & (pl.col("parent_thread") == pl.col("thread_id")).fill_null(False)
        & (pl.col("message_id") != pl.col("thread_id"))
    )
    depth = _follow(
        edges.select(
            "message_id",
            thread_id=pl.when(stuck)
            .then(None)
            .when(~inside)
            .then(pl.lit(0, dtype=pl.Int64))
            .when(in_settled)
            .then(pl.col("parent_depth") + 1),
            pointer=pl.when(~stuck & inside).then("parent"),
            hops=pl.lit(1, dtype=pl.Int64),
        ),
        value=pl.lit(0, dtype=pl.Int64),
        add_hops=True,
    )
    resolved = nodes.select("message_id", thread_id=thread, depth=depth)
    if settled.is_empty():
        return resolved  # the rows of ``links``, in their order
    return (
        links.select("message_id")
        .join(resolved, on="message_id", how="left", maintain_order="left")
        .join(settled, on="message_id", how="left", suffix="_settled", maintain_order="left")
        .select(
            "message_id",
            thread_id=pl.coalesce("thread_id_settled", "thread_id"),
            depth=pl.coalesce("depth_settled", "depth").cast(pl.Int64),
        )
    )


_RESOLVED = pl.Schema({"message_id": pl.String, "thread_id": pl.String, "depth": pl.Int64})


def _follow(nodes: pl.DataFrame, value: pl.Expr, add_hops: bool) -> pl.Series:
    """``_jump``, with every ``pointer`` cycle cut at its smallest message, which gets
    ``value`` and no pointer: the cycle and the chains into it then resolve from there,
    whatever the order of the rows. Cycles are rare, so they are found by walking, among
    the messages that reached no value."""
    result = _jump(nodes, add_hops)
    stuck = nodes.with_row_index("row").filter(result.is_null() & pl.col("pointer").is_not_null())
    pointer = dict(zip(stuck["row"].to_list(), stuck["pointer"].to_list(), strict=True))
    name = dict(zip(stuck["row"].to_list(), stuck["message_id"].to_list(), strict=True))
    smallest = set()
    for start in pointer:
        seen: dict[int, int] = {}
        path, node = [], start
        while node in pointer and node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = pointer[node]
        if node in seen:
            smallest.add(min(path[seen[node] :], key=name.__getitem__))
    if not smallest:
        return result
    cut = pl.int_range(pl.len()).is_in(sorted(smallest))
    return _jump(
        nodes.with_columns(
            thread_id=pl.when(cut).then(value).otherwise("thread_id"),
            pointer=pl.when(cut).then(None).otherwise("pointer"),
        ),
        add_hops,
    )


def _jump(nodes: pl.DataFrame, add_hops: bool) -> pl.Series:
    """Each row's value: its ``thread_id``, else that of the row its ``pointer`` (a row
    number) points to, followed until a row with a value is reached, by pointer jumping:
    each round, a gather, doubles the distance covered. With ``add_hops`` the value
    found is increased by the ``hops`` walked. Rows that never reach a value (cycles)
    get a null."""
    pointer = nodes["pointer"].cast(pl.Int64).fill_null(-1).to_numpy().copy()
    reached = nodes["thread_id"].is_not_null().to_numpy().copy()
    hops = nodes["hops"].to_numpy().copy()  # from each row to where it points
    end = np.arange(nodes.height)  # the row whose value each row takes
    total = np.zeros(nodes.height, dtype=np.int64)  # hops from each row to its end
    walking = np.flatnonzero(~reached & (pointer >= 0))
    while walking.size:
        ahead = pointer[walking]
        arrived = reached[ahead]
        if not arrived.any():  # the nearest walker always arrives: only cycles left
            break
        done, at = walking[arrived], ahead[arrived]
        end[done], total[done], reached[done] = end[at], hops[done] + total[at], True
        # the others jump to where the row ahead points, all from this round's pointers
        walking, ahead = walking[~arrived], ahead[~arrived]
        pointer[walking], hops[walking] = pointer[ahead], hops[walking] + hops[ahead]
        walking = walking[pointer[walking] >= 0]
    # a row that reached nothing ends at itself, whose value is null
    value = nodes["thread_id"].gather(end)
    return value + pl.Series(total) if add_hops else value


def reply_descendants(links: pl.DataFrame, roots: pl.Series) -> pl.Series:
    """``roots`` and every message below one of them through ``reply_to``: their thread
    (unless given explicitly) and their depth follow from the roots'."""
    found = set(roots.to_list())
    frontier = roots.unique()
    children_of = _ChildrenOf(links)
    while not frontier.is_empty():
        kids = [k for k in children_of(frontier).to_list() if k not in found]
        found.update(kids)
        frontier = pl.Series(kids, dtype=pl.String).unique()
    return pl.Series("message_id", sorted(found), dtype=pl.String)


class _ChildrenOf:
    """The ``message_id`` of the messages of ``links`` replying to any of a set of ids.

    Each parent id is hashed once to 64 bits, so a level of the walk probes integers,
    not strings; the exact parent then confirms each hash match. (A sort by hash with a
    binary search per level costs more: the walks of a day's refresh are mostly one or
    two levels of thousands of ids, then a few long chains of one id.)"""

    def __init__(self, links: pl.DataFrame):
        self.links = links.select("reply_to", "message_id")
        self.parents = links["reply_to"].hash()

    def __call__(self, ids: pl.Series) -> pl.Series:
        maybe = self.links.filter(self.parents.is_in(ids.hash().implode()))
        return maybe.filter(pl.col("reply_to").is_in(ids.implode()))["message_id"]


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
    return _root_of([hashlib.sha256(cid.encode()).digest() for cid in cids]).hex()


def merkle_roots(cids: pl.Series, lengths: pl.Series) -> pl.Series:
    """``merkle_root`` of each run of consecutive ``cids``, runs of ``lengths`` (at least
    one each): every leaf is hashed in one pass, and a run of one is its leaf."""
    sha256 = hashlib.sha256
    leaves = [sha256(cid).digest() for cid in cids.cast(pl.Binary).to_list()]
    roots, at = [], 0
    for length in lengths.to_list():
        roots.append((leaves[at] if length == 1 else _root_of(leaves[at : at + length])).hex())
        at += length
    return pl.Series("merkle_root", roots, dtype=pl.String)


def _root_of(level: list[bytes]) -> bytes:
    while len(level) > 1:
        paired = [
            hashlib.sha256(a + b).digest() for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def build_threads(messages: pl.DataFrame) -> pl.DataFrame:
    """The ``threads`` rows of the threads that ``messages`` (all their messages) form.

    Counts, participants, first/last times and the Merkle root count live messages
    only (decision 12); the root is the message whose id is the thread id, else the
    earliest by (created_at, message_id); room and platform are the root's.
    """
    ordered = messages.select(THREADS_INPUT).sort("thread_id", "created_at", "message_id")
    live = ordered.filter(~pl.col("deleted"))
    # the root: the named message (the first True; none: the first row, the earliest)
    root = (pl.col("message_id") == pl.col("thread_id")).fill_null(False).arg_max()
    threads = ordered.group_by("thread_id", maintain_order=True).agg(
        pl.col("room_id", "platform").get(root),
        root_message_id=pl.col("message_id").get(root),
        started_week=week_of("created_at").get(root),
        total_message_count=pl.len().cast(pl.Int64),
        max_depth=pl.col("depth").max(),
    )
    live_stats = live.group_by("thread_id", maintain_order=True).agg(
        message_count=pl.len().cast(pl.Int64),
        participant_count=pl.col("account_id").n_unique().cast(pl.Int64),
        first_at=pl.col("created_at").first(),
        last_at=pl.col("created_at").last(),
        last_message_id=pl.col("message_id").last(),
    )
    # ``live`` is sorted by thread: each thread's content CIDs are a run of its rows
    live_stats = live_stats.with_columns(
        merkle_roots(live["content_cid"], live_stats["message_count"])
    )
    return (
        threads.join(live_stats, on="thread_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("message_count").fill_null(0), pl.col("participant_count").fill_null(0)
        )
        .select(THREADS_SCHEMA.names())
        .sort("thread_id")
    )
