"""Thread resolution by pointer jumping equals the plain walk up each reply chain; the
threads' Merkle roots follow their definition."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.model.threads import (
    THREADS_INPUT,
    build_threads,
    merkle_root,
    reply_descendants,
    resolve_threads,
)

IDS = [f"m{i}" for i in range(12)]
# parents: other messages (so chains and cycles), itself, a missing id, or none
link = st.tuples(
    st.none() | st.sampled_from([*IDS, "gone"]),
    st.none() | st.sampled_from(["t", "m3", "m7"]),  # explicit thread, sometimes a message id
)
graph = st.dictionaries(st.sampled_from(IDS), link, min_size=1)


def walk_threads(links: pl.DataFrame, settled: pl.DataFrame | None = None) -> pl.DataFrame:
    """The reference: ``resolve_threads`` by walking each chain up, one message at a time."""
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
            ):
                depth[node] = 0
                break
            walked = [*path, node]
            if parent in walked:  # a cycle inside the thread: cut at its smallest id, walk again
                depth[min(walked[walked.index(parent) :])] = 0
                path, node = [], start
                continue
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


def links_frame(g: dict) -> pl.DataFrame:
    ids = sorted(g)
    return pl.DataFrame(
        {
            "message_id": ids,
            "explicit_thread_id": [g[i][1] for i in ids],
            "reply_to": [g[i][0] for i in ids],
        },
        schema={"message_id": pl.String, "explicit_thread_id": pl.String, "reply_to": pl.String},
    )


@settings(max_examples=300, deadline=None)
@given(graph)
def test_pointer_jumping_equals_walking(g):
    links = links_frame(g)
    assert resolve_threads(links).equals(walk_threads(links))
    # any order of the rows: the same thread and depth per message
    shuffled = links.sample(fraction=1.0, shuffle=True, seed=len(g))
    assert resolve_threads(shuffled).sort("message_id").equals(walk_threads(links))


@settings(max_examples=200, deadline=None)
@given(graph, st.sets(st.sampled_from(IDS)))
def test_with_settled_ancestors_equals_walking_everything(g, chosen):
    links = links_frame(g)
    everything = walk_threads(links)
    # settled: some messages and all their ancestors, as a refresh would pass them
    parent = dict(zip(links["message_id"], links["reply_to"], strict=True))
    settled_ids = set()
    for node in chosen & set(parent):
        while node in parent and node not in settled_ids:
            settled_ids.add(node)
            node = parent[node]
    settled = everything.filter(pl.col("message_id").is_in(sorted(settled_ids)))
    rest = links.filter(~pl.col("message_id").is_in(sorted(settled_ids)))
    expected = everything.filter(~pl.col("message_id").is_in(sorted(settled_ids)))
    assert resolve_threads(rest, settled).equals(expected)


@settings(max_examples=200, deadline=None)
@given(graph, st.sets(st.sampled_from([*IDS, "gone"])))
def test_reply_descendants_are_everything_below_the_roots(g, roots):
    links = links_frame(g)
    below = set(roots)
    grew = True
    while grew:  # the reference: add children of what is found until nothing changes
        children = {m for m, (parent, _) in g.items() if parent in below}
        grew = not children <= below
        below |= children
    found = reply_descendants(links, pl.Series(sorted(roots), dtype=pl.String))
    assert found.to_list() == sorted(below)


def test_a_long_chain_and_a_cycle_below_an_explicit_thread():
    chain = {f"c{i:04d}": (f"c{i - 1:04d}" if i else None, None) for i in range(3000)}
    # x1 names thread t and replies to x2, which replies to x1: depths must cut the cycle
    cycle = {"x1": ("x2", "t"), "x2": ("x1", None), "x3": ("x2", None), "y": ("y", None)}
    links = links_frame({**chain, **cycle})
    resolved = resolve_threads(links)
    assert resolved.equals(walk_threads(links))
    assert resolved.filter(pl.col("message_id") == "c2999")["depth"].item() == 2999
    # below a link of the chain, and below a message in a cycle
    below = reply_descendants(links, pl.Series(["c2990", "x2"]))
    assert below.to_list() == [*(f"c{i:04d}" for i in range(2990, 3000)), "x1", "x2", "x3"]


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_merkle_root_pairs_in_order_and_carries_the_odd_node_up():
    a, b, c = (_digest(cid.encode()) for cid in ("bafyA", "bafyB", "bafyC"))
    assert merkle_root([]) is None
    assert merkle_root(["bafyA"]) == a.hex()
    assert merkle_root(["bafyA", "bafyB"]) == _digest(a + b).hex()
    assert merkle_root(["bafyA", "bafyB", "bafyC"]) == _digest(_digest(a + b) + c).hex()
    assert merkle_root(["bafyB", "bafyA"]) != merkle_root(["bafyA", "bafyB"])


def test_a_threads_merkle_root_covers_its_live_messages_in_time_order():
    start = datetime(2026, 1, 5, tzinfo=UTC)
    rows = [  # (message_id, thread_id, minutes after start, deleted, content_cid)
        ("m1", "m1", 0, False, "bafyA"),
        ("m2", "m1", 1, True, "bafyB"),  # deleted: not in the root
        ("m3", "m1", 2, False, "bafyC"),
        ("n3", "n1", 2, False, "bafyC"),  # a copy of m1's live messages, listed out of order
        ("n1", "n1", 0, False, "bafyA"),
        ("r1", "r1", 0, False, "bafyC"),  # the same CIDs, in the other order
        ("r2", "r1", 1, False, "bafyA"),
        ("d1", "d1", 0, True, "bafyD"),  # no live message: no root
    ]
    messages = pl.DataFrame(
        [
            (mid, tid, "room", "chat", "acct", start + timedelta(minutes=m), deleted, 0, cid)
            for mid, tid, m, deleted, cid in rows
        ],
        schema={
            "message_id": pl.String,
            "thread_id": pl.String,
            "room_id": pl.String,
            "platform": pl.String,
            "account_id": pl.String,
            "created_at": pl.Datetime("us", "UTC"),
            "deleted": pl.Boolean,
            "depth": pl.Int64,
            "content_cid": pl.String,
        },
        orient="row",
    ).select(THREADS_INPUT)
    roots = dict(build_threads(messages).select("thread_id", "merkle_root").iter_rows())
    assert roots["m1"] == merkle_root(["bafyA", "bafyC"])
    assert roots["n1"] == roots["m1"]
    assert roots["r1"] == merkle_root(["bafyC", "bafyA"]) != roots["m1"]
    assert roots["d1"] is None
