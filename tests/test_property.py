"""Random histories, shuffled across days and files with duplicates and late arrivals,
give the same read models as a straightforward reference fold written here."""

from __future__ import annotations

import random
import tempfile
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from conftest import DAY0, StoreWriter, ms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.ingest.load import load_content, load_event_days
from pipelines.ingest.store import list_days
from pipelines.lake.delta import Lake
from pipelines.lake.projections import read_projections, refresh_projections

MESSAGES = [f"m{i}" for i in range(6)]
ACCOUNTS = ["u0", "u1", "u2"]
EMOJI = ["+1", "ok"]

op = st.one_of(
    st.tuples(st.just("edit"), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("react"), st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(EMOJI))),
    st.tuples(st.just("unreact"), st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(EMOJI))),
)
message = st.fixed_dictionaries(
    {
        "author": st.sampled_from(ACCOUNTS),
        "room": st.sampled_from(["r0", "r1"]),
        "reply_to": st.none() | st.sampled_from([*MESSAGES, "m9"]),
        "thread": st.none() | st.just("t"),
        "legacy": st.booleans(),
        "ops": st.lists(op, max_size=5),
        "second": st.integers(0, 50),
    }
)
history = st.fixed_dictionaries(
    {
        "messages": st.dictionaries(st.sampled_from(MESSAGES), message, min_size=1),
        "members": st.lists(st.tuples(st.sampled_from(ACCOUNTS), st.booleans()), max_size=5),
        "markers": st.lists(st.tuples(st.sampled_from(ACCOUNTS), st.integers(0, 50)), max_size=3),
        "seed": st.integers(0, 2**32),
    }
)


def build_events(w: StoreWriter, h: dict) -> list[dict]:
    """The logical history: every event once, with versions 1..n per aggregate."""
    events = []
    for mid, m in sorted(h["messages"].items()):
        if m["legacy"]:
            data = {
                "author": m["author"],
                "text": f"text {mid}",
                "channel": m["room"],
                "ts": ms(DAY0, m["second"]) / 1000,
                "platform": "irc",
            }
            if m["reply_to"]:
                data["parent"] = m["reply_to"]
            events.append(w.event("MessageCreated", "message", mid, 1, data, schema_version=1))
        else:
            data = {
                "account_id": m["author"],
                "content_cid": w.body(f"body {mid}"),
                "kind": 0,
                "created_at": ms(DAY0, m["second"]),
                "source": {"platform": "chat"},
                "room_id": m["room"],
                "reply_to": m["reply_to"],
                "thread_id": m["thread"],
            }
            events.append(w.event("MessageCreated", "message", mid, 1, data, schema_version=2))
        for version, (kind, arg) in enumerate(m["ops"], 2):
            at = ms(DAY0, 100 + version)
            if kind == "edit":
                data = {"content_cid": w.body(f"{mid} {arg}"), "edited_at": at}
                events.append(w.event("MessageEdited", "message", mid, version, data))
            elif kind == "delete":
                events.append(
                    w.event("MessageDeleted", "message", mid, version, {"deleted_at": at})
                )
            else:
                event_type = "ReactionAdded" if kind == "react" else "ReactionRemoved"
                data = {"account_id": arg[0], "emoji": arg[1], "at": at}
                events.append(w.event(event_type, "message", mid, version, data))
    events.append(
        w.event(
            "RoomCreated",
            "room",
            "r0",
            1,
            {"name": "R0", "type": "group", "platform": "chat", "created_at": 0},
        )
    )
    for version, (account, joined) in enumerate(h["members"], 2):
        kind = "MemberJoined" if joined else "MemberLeft"
        events.append(w.event(kind, "room", "r0", version, {"account_id": account, "at": 0}))
    for version, (account, second) in enumerate(h["markers"], 1):
        data = {"account_id": account, "room_id": "r0", "read_up_to": ms(DAY0, second)}
        events.append(w.event("ReadMarkerMoved", "read_marker", f"{account}/r0", version, data))
    return events


def scatter(w: StoreWriter, events: list[dict], seed: int) -> None:
    """Write each event on a random day and file, in random order, plus re-deliveries."""
    rng = random.Random(seed)
    files: dict[tuple, list] = defaultdict(list)
    for event in events:
        copies = 2 if rng.random() < 0.2 else 1
        for _ in range(copies):
            day = DAY0 + timedelta(days=rng.randrange(3))
            files[(day, rng.choice(["001.jsonl", "002.jsonl"]))].append(event)
    for (day, name), lines in files.items():
        rng.shuffle(lines)
        w.write(day, [{**e, "recorded_at": f"{day}T12:00:00Z"} for e in lines], name=name)


def reference(events: list[dict], texts: dict[str, str]) -> dict:
    """A plain fold over the logical history, written from the spec."""
    by_aggregate = defaultdict(list)
    for e in events:
        by_aggregate[(e["aggregate_type"], e["aggregate_id"])].append(e)
    messages = {}
    for (kind, mid), evs in by_aggregate.items():
        if kind != "message":
            continue
        evs.sort(key=lambda e: e["version"])
        create = evs[0]["data"]
        legacy = "author" in create
        m = {
            "account_id": create["author"] if legacy else create["account_id"],
            "room_id": create["channel"] if legacy else create["room_id"],
            "explicit": None if legacy else create.get("thread_id"),
            "reply_to": create.get("parent") if legacy else create.get("reply_to"),
            "body": create["text"] if legacy else f"body {mid}",
            "deleted": False,
            "edits": 0,
            "reactions": set(),
        }
        for e in evs[1:]:
            if m["deleted"]:
                continue
            d = e["data"]
            if e["event_type"] == "MessageEdited":
                m["edits"] += 1
                m["body"] = texts[d["content_cid"]]
            elif e["event_type"] == "MessageDeleted":
                m["deleted"] = True
            elif e["event_type"] == "ReactionAdded":
                m["reactions"].add((d["account_id"], d["emoji"]))
            else:
                m["reactions"].discard((d["account_id"], d["emoji"]))
        messages[mid] = m

    def thread_of(mid: str, seen: tuple = ()) -> str:
        m = messages[mid]
        if m["explicit"]:
            return m["explicit"]
        if m["reply_to"] is None:
            return mid
        if m["reply_to"] not in messages:
            return m["reply_to"]
        if mid in seen:
            cycle = seen[seen.index(mid) :]
            return min(cycle)
        return thread_of(m["reply_to"], (*seen, mid))

    for mid in messages:
        messages[mid]["thread_id"] = thread_of(mid)
        if messages[mid]["deleted"]:
            messages[mid]["body"] = None
    threads = defaultdict(int)
    for m in messages.values():
        threads[m["thread_id"]] += not m["deleted"]
    live = {k: v for k, v in messages.items() if not v["deleted"]}
    accounts = defaultdict(lambda: [0, 0, 0])  # message_count, given, received
    for m in live.values():
        accounts[m["account_id"]][0] += 1
        accounts[m["account_id"]][2] += len(m["reactions"])
        for account, _ in m["reactions"]:
            accounts[account][1] += 1
    members = {}
    for e in sorted(by_aggregate.get(("room", "r0"), []), key=lambda e: e["version"]):
        if e["event_type"] in ("MemberJoined", "MemberLeft"):
            members[e["data"]["account_id"]] = e["event_type"] == "MemberJoined"
    markers = {}
    for (kind, _), evs in by_aggregate.items():
        if kind == "read_marker":
            last = max(evs, key=lambda e: e["version"])["data"]
            markers[last["account_id"]] = last["read_up_to"]
    created_at = {
        e["aggregate_id"]: e["data"].get("created_at") or round(e["data"]["ts"] * 1000)
        for e in events
        if e["event_type"] == "MessageCreated"
    }
    unread = {}
    for account, joined in members.items():
        if joined:
            unread[account] = sum(
                1
                for mid, m in live.items()
                if m["room_id"] == "r0"
                and m["account_id"] != account
                and (account not in markers or created_at[mid] > markers[account])
            )
    return {
        "messages": {
            k: (v["thread_id"], v["deleted"], v["body"], v["edits"], len(v["reactions"]))
            for k, v in messages.items()
        },
        "threads": dict(threads),
        "accounts": {k: tuple(v) for k, v in accounts.items()},
        "unread": unread,
    }


def observed(tables: dict) -> dict:
    m = tables["messages"]
    counts = tables["accounts"].select("message_count", "reactions_given", "reactions_received")
    accounts = tables["accounts"].filter(counts.sum_horizontal() > 0)
    return {
        "messages": {
            r[0]: tuple(r[1:])
            for r in m.select(
                "message_id", "thread_id", "deleted", "body", "edit_count", "reaction_count"
            ).rows()
        },
        "threads": dict(tables["threads"].select("thread_id", "message_count").rows()),
        "accounts": {
            r[0]: tuple(r[1:])
            for r in accounts.select(
                "account_id", "message_count", "reactions_given", "reactions_received"
            ).rows()
        },
        "unread": dict(
            tables["unread"]
            .filter(tables["unread"]["room_id"] == "r0")
            .select("account_id", "unread_count")
            .rows()
        ),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history)
def test_shuffled_history_matches_reference_fold(h):
    with tempfile.TemporaryDirectory() as tmp:
        w = StoreWriter(Path(tmp) / "store")
        events = build_events(w, h)
        scatter(w, events, h["seed"])
        lake = Lake(Path(tmp) / "lake")
        load_event_days(lake, w.root, list_days(w.root))
        load_content(lake, w.root)
        refresh_projections(lake)
        tables = read_projections(lake)
        assert observed(tables) == reference(events, w.texts)


def tables_after(lake: Lake, store: Path, day_groups: list[list]) -> dict:
    """Ingest the groups of days in the order given, refreshing after each group."""
    for days in day_groups:
        load_event_days(lake, store, days)
        load_content(lake, store)
        refresh_projections(lake)
    return {name: frame.rows() for name, frame in read_projections(lake).items()}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history, st.randoms(use_true_random=False))
def test_incremental_runs_equal_a_full_replay(h, rng):
    with tempfile.TemporaryDirectory() as tmp:
        w = StoreWriter(Path(tmp) / "store")
        scatter(w, build_events(w, h), h["seed"])
        days = list_days(w.root)
        shuffled = days[:]
        rng.shuffle(shuffled)
        day_by_day = tables_after(Lake(Path(tmp) / "a"), w.root, [[d] for d in days])
        out_of_order = tables_after(Lake(Path(tmp) / "b"), w.root, [[d] for d in shuffled])
        one_range = tables_after(Lake(Path(tmp) / "c"), w.root, [days])
        full = Lake(Path(tmp) / "d")
        load_event_days(full, w.root, days)
        load_content(full, w.root)
        refresh_projections(full, full=True)
        replay = {name: frame.rows() for name, frame in read_projections(full).items()}
        for name in replay:
            assert day_by_day[name] == replay[name], name
            assert out_of_order[name] == replay[name], name
            assert one_range[name] == replay[name], name
