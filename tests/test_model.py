"""Projection semantics, case by case (spec "Semantics that projections must follow")."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta

import polars as pl
import pytest
from conftest import DAY0, StoreWriter, created, ms
from polars.testing import assert_frame_equal

from pipelines.ingest import keys as event_keys
from pipelines.ingest.load import load_content, load_event_days
from pipelines.ingest.store import list_days
from pipelines.lake.delta import Lake
from pipelines.lake.projections import read_projections, refresh_projections

DAY1, DAY2 = DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)


def project(store: StoreWriter, lake: Lake) -> dict[str, pl.DataFrame]:
    load_event_days(lake, store.root, list_days(store.root))
    load_content(lake, store.root)
    refresh_projections(lake)
    return read_projections(lake)


def row(frame: pl.DataFrame, key: str, value: str) -> dict:
    rows = frame.filter(pl.col(key) == value).rows(named=True)
    assert len(rows) == 1, rows
    return rows[0]


def edit(w, mid, version, text, day=DAY0, at=100):
    data = {"content_cid": w.body(text), "edited_at": ms(day, at)}
    return w.event("MessageEdited", "message", mid, version, data, day)


def delete(w, mid, version, day=DAY0, at=200):
    return w.event("MessageDeleted", "message", mid, version, {"deleted_at": ms(day, at)}, day)


def react(w, mid, version, account, emoji, add=True, day=DAY0, at=50):
    kind = "ReactionAdded" if add else "ReactionRemoved"
    data = {"account_id": account, "emoji": emoji, "at": ms(day, at)}
    return w.event(kind, "message", mid, version, data, day)


def test_thread_resolves_through_a_chain_whose_parent_arrives_later(store, lake):
    w = store
    w.write(DAY0, [created(w, "c", "child", reply_to="b"), created(w, "b", "mid", reply_to="a")])
    tables = project(w, lake)
    assert row(tables["messages"], "message_id", "c")["thread_id"] == "a"  # "a" is missing
    w.write(DAY1, [created(w, "a", "root", DAY1, thread_id="t-root")])
    tables = project(w, lake)
    threads = dict(tables["messages"].select("message_id", "thread_id").iter_rows())
    assert threads == {"a": "t-root", "b": "t-root", "c": "t-root"}
    thread = row(tables["threads"], "thread_id", "t-root")
    # no message is named "t-root": the root is the earliest by (created_at, message_id)
    assert (thread["message_count"], thread["max_depth"], thread["root_message_id"]) == (3, 2, "b")


def test_reply_cycle_resolves_to_smallest_id(store, lake):
    w = store
    w.write(
        DAY0,
        [
            created(w, "y", "1", reply_to="x"),
            created(w, "x", "2", reply_to="z"),
            created(w, "z", "3", reply_to="y"),
        ],
    )
    threads = set(project(w, lake)["messages"]["thread_id"])
    assert threads == {"x"}


def test_reactions_are_a_set(store, lake):
    w = store
    w.write(
        DAY0,
        [
            created(w, "m", "hi"),
            react(w, "m", 2, "u1", "👍"),
            react(w, "m", 3, "u1", "👍"),  # second add: no change
            react(w, "m", 4, "u2", "👍"),
            react(w, "m", 5, "u2", "🎉"),
            react(w, "m", 6, "u3", "🎉", add=False),  # removing an absent pair: no change
            react(w, "m", 7, "u2", "🎉", add=False),
        ],
    )
    tables = project(w, lake)
    m = row(tables["messages"], "message_id", "m")
    assert m["reactions"] == [{"emoji": "👍", "count": 2}]
    assert m["reaction_count"] == 2
    daily = tables["platform_daily"].row(0, named=True)
    assert daily["reactions_added"] == 3  # u1 👍, u2 👍, u2 🎉
    assert row(tables["accounts"], "account_id", "u1")["reactions_given"] == 1
    assert row(tables["accounts"], "account_id", "acct_a")["reactions_received"] == 2


def test_delete_then_edit_is_ignored_and_reactions_leave_live_counts(store, lake):
    w = store
    w.write(
        DAY0,
        [
            created(w, "m", "hi"),
            react(w, "m", 2, "u1", "👍"),
            delete(w, "m", 3),
            edit(w, "m", 4, "too late"),
            react(w, "m", 5, "u2", "👍"),
        ],
    )
    tables = project(w, lake)
    m = row(tables["messages"], "message_id", "m")
    assert m["deleted"] and m["body"] is None and m["body_status"] == "none"
    assert m["edit_count"] == 0 and m["reaction_count"] == 1 and m["ignored_events"] == 2
    assert row(tables["accounts"], "account_id", "u1")["reactions_given"] == 0
    author = row(tables["accounts"], "account_id", "acct_a")
    assert (author["message_count"], author["reactions_received"]) == (0, 0)
    assert row(tables["rooms"], "room_id", "room_1")["message_count"] == 0
    assert row(tables["threads"], "thread_id", "m")["message_count"] == 0


def test_edit_replaces_body_and_late_versions_apply_in_order(store, lake):
    w = store
    w.write(DAY1, [edit(w, "m", 3, "third", DAY1, at=300)])  # recorded before version 2
    w.write(DAY0, [created(w, "m", "first")])
    w.write(DAY2, [edit(w, "m", 2, "second", DAY2, at=200)])
    m = row(project(w, lake)["messages"], "message_id", "m")
    assert (m["body"], m["edit_count"], m["version"], m["body_status"]) == ("third", 2, 3, "ok")
    assert m["last_edited_at"].timestamp() * 1000 == ms(DAY1, 300)


def test_orphans_and_second_creation_are_ignored(store, lake):
    w = store
    w.write(
        DAY0,
        [
            edit(w, "m", 1, "orphan"),
            created(w, "m", "real", version=2),
            created(w, "m", "again", version=3),
        ],
    )
    m = row(project(w, lake)["messages"], "message_id", "m")
    assert (m["body"], m["edit_count"], m["ignored_events"]) == ("real", 0, 2)


def test_v1_and_v2_mix_and_inline_body(store, lake):
    w = store
    v1 = w.event(
        "MessageCreated",
        "message",
        "old",
        1,
        {
            "author": "acct_b",
            "text": "legacy text",
            "channel": "room_1",
            "ts": 1.5e9,
            "platform": "irc",
            "parent": "new",
        },
    )
    w.write(DAY0, [v1, created(w, "new", "modern")])
    tables = project(w, lake)
    old = row(tables["messages"], "message_id", "old")
    assert (old["body"], old["body_status"], old["thread_id"]) == ("legacy text", "inline", "new")
    w.write(DAY1, [edit(w, "old", 2, "edited", DAY1)])
    old = row(project(w, lake)["messages"], "message_id", "old")
    assert (old["body"], old["body_status"]) == ("edited", "ok")


def test_missing_body_arrives_later(store, lake):
    w = store
    event = created(w, "m", "will vanish")
    cid = event["data"]["content_cid"]
    body = w.root / "content" / "by-cid" / f"{cid}.md"
    body.unlink()
    w.write(DAY0, [event])
    assert row(project(w, lake)["messages"], "message_id", "m")["body_status"] == "missing"
    body.write_text("will vanish")
    m = row(project(w, lake)["messages"], "message_id", "m")
    assert (m["body_status"], m["body"]) == ("ok", "will vanish")


def test_unknown_accounts_and_rooms_still_appear(store, lake):
    w = store
    w.write(
        DAY0,
        [created(w, "m", "hi", account="ghost", room="nowhere"), react(w, "m", 2, "lurker", "x")],
    )
    tables = project(w, lake)
    ghost = row(tables["accounts"], "account_id", "ghost")
    assert (ghost["known"], ghost["display_name"], ghost["message_count"]) == (False, None, 1)
    assert row(tables["accounts"], "account_id", "lurker")["reactions_given"] == 1
    nowhere = row(tables["rooms"], "room_id", "nowhere")
    assert (nowhere["known"], nowhere["name"], nowhere["message_count"]) == (False, None, 1)


def test_unread_with_and_without_markers(store, lake):
    w = store
    room = [
        w.event(
            "RoomCreated",
            "room",
            "r",
            1,
            {"name": "R", "type": "group", "platform": "p", "created_at": 1},
        ),
        w.event("MemberJoined", "room", "r", 2, {"account_id": "alice", "at": 1}),
        w.event("MemberJoined", "room", "r", 3, {"account_id": "bob", "at": 1}),
        w.event("MemberJoined", "room", "r", 4, {"account_id": "carol", "at": 1}),
        w.event("MemberLeft", "room", "r", 5, {"account_id": "carol", "at": 2}),
    ]
    messages = [
        created(w, f"m{i}", f"t{i}", account="alice" if i < 2 else "bob", room="r", seconds=i * 10)
        for i in range(4)
    ]
    marker = w.event(
        "ReadMarkerMoved",
        "read_marker",
        "bob/r",
        1,
        {"account_id": "bob", "room_id": "r", "read_up_to": ms(DAY0, 0)},
    )
    older = w.event(
        "ReadMarkerMoved",
        "read_marker",
        "bob/r",
        2,
        {"account_id": "bob", "room_id": "r", "read_up_to": ms(DAY0, 10)},
    )
    w.write(DAY0, [*room, *messages, older, marker, delete(w, "m3", 2)])
    unread = project(w, lake)["unread"]
    # alice has no marker: bob's live m2; bob read up to m1 (version 2 wins over version 1)
    assert unread.select("account_id", "unread_count").rows() == [("alice", 1), ("bob", 0)]
    assert row(unread, "account_id", "bob")["read_up_to"].timestamp() * 1000 == ms(DAY0, 10)
    room_row = row(project(w, lake)["rooms"], "room_id", "r")
    assert (room_row["member_count"], room_row["members"]) == (2, ["alice", "bob"])


def test_account_and_room_fields_apply_in_version_order(store, lake):
    w = store
    w.write(
        DAY1,
        [
            w.event(
                "AccountUpdated", "account", "a", 2, {"display_name": "New", "handle": None}, DAY1
            )
        ],
    )
    w.write(
        DAY0,
        [
            w.event(
                "AccountCreated",
                "account",
                "a",
                1,
                {"display_name": "Old", "platform": "slack", "created_at": 5, "handle": "@a"},
            ),
            w.event("AccountUpdated", "account", "a", 3, {"did": "did:x"}),
        ],
    )
    a = row(project(w, lake)["accounts"], "account_id", "a")
    assert (a["display_name"], a["handle"], a["did"], a["known"], a["version"]) == (
        "New",
        "@a",
        "did:x",
        True,
        3,
    )


def test_a_projection_in_an_older_layout_is_rebuilt(store, lake):
    w = store
    w.write(DAY0, [created(w, "m1", "hello")])
    before = project(w, lake)
    # snapshots as an earlier release wrote them: partitioned by type, not by day
    old = before["snapshots"]
    # recording the same versions as the other projections: only the layout differs
    recorded = lake.commit_metadata("messages")
    versions = {k: recorded[k] for k in ("events_version", "content_version")}
    lake.write("snapshots", old, partition_by=["aggregate_type"], metadata=versions)
    w.write(DAY1, [react(w, "m1", 2, "b", "+1", day=DAY1)])
    load_event_days(lake, w.root, [DAY1])
    refresh = refresh_projections(lake)
    assert refresh.full
    assert lake.partition_columns("snapshots") == ["as_of_day"]
    snapshots = read_projections(lake)["snapshots"]
    assert snapshots.select("aggregate_id", "as_of_day", "version").rows() == [
        ("m1", DAY0, 1),
        ("m1", DAY1, 2),
    ]
    # and as an earlier release wrote them: each state as JSON text in one column
    state_columns = [c for c in snapshots.columns if c.endswith("_state")]
    as_text = snapshots.select(
        pl.exclude(state_columns), state=pl.col("message_state").struct.json_encode()
    )
    recorded = lake.commit_metadata("messages")
    versions = {k: recorded[k] for k in ("events_version", "content_version")}
    lake.write("snapshots", as_text, partition_by=["as_of_day"], metadata=versions)
    w.write(DAY2, [react(w, "m1", 3, "c", "+1", day=DAY2)])
    load_event_days(lake, w.root, [DAY2])
    assert refresh_projections(lake).full
    assert read_projections(lake)["snapshots"].columns == snapshots.columns


def test_folding_in_groups_of_aggregates_gives_the_same_states(store, lake, monkeypatch):
    from pipelines.lake.projections import read_applied_events
    from pipelines.model import fold

    w = store
    w.write(
        DAY0,
        [
            *(created(w, f"m{i}", f"text {i}", seconds=i) for i in range(6)),
            react(w, "m1", 2, "u1", "+1"),
            edit(w, "m2", 2, "changed"),
            delete(w, "m3", 2),
        ],
    )
    project(w, lake)
    events = read_applied_events(lake)
    whole = fold.fold_all(events)
    monkeypatch.setattr(fold, "FOLD_GROUP_ROWS", 2)
    grouped = fold.fold_all(events)
    for kind, states in whole.items():
        assert grouped[kind].equals(states), kind


def test_a_rebuild_in_groups_of_messages_equals_one_in_a_single_group(store, tmp_path, monkeypatch):
    from pipelines.lake import projections
    from pipelines.lake.projections import read_applied_events, read_bodies
    from pipelines.model.project import project_all

    w = store
    room = w.event("RoomCreated", "room", "r", 1, {"name": "R", "platform": "p", "created_at": 1})
    joined = w.event("MemberJoined", "room", "r", 2, {"account_id": "bob", "at": 1})
    marker = {"account_id": "bob", "room_id": "r", "read_up_to": ms(DAY0, 3)}
    w.write(
        DAY0,
        [
            room,
            joined,
            w.event("ReadMarkerMoved", "read_marker", "bob/r", 1, marker),
            *(created(w, f"m{i}", f"text {i}", seconds=i, room="r") for i in range(8)),
            created(w, "reply", "re", seconds=9, room="r", reply_to="m1"),
            react(w, "m1", 2, "bob", "+1"),
        ],
    )
    w.write(
        DAY1,
        [
            edit(w, "m2", 2, "changed", day=DAY1),
            delete(w, "m3", 2, day=DAY1),
            react(w, "m4", 2, "bob", "+1", day=DAY1),
            created(w, "late", "late", day=DAY1, account="carol"),
            # imported: created in two earlier weeks, so `messages` has three partitions
            *(
                created(w, f"old{i}", "old", day=DAY1, created_at=ms(DAY0 - timedelta(days=d)))
                for i, d in enumerate([20, 21, 22, 41, 42, 43])
            ),
        ],
    )
    written = {}
    for group_rows in (1_000_000, 3):  # one group, then five
        monkeypatch.setattr(projections, "REBUILD_GROUP_ROWS", group_rows)
        lake = Lake(tmp_path / f"lake-{group_rows}")
        load_event_days(lake, w.root, list_days(w.root))
        load_content(lake, w.root)
        refresh = refresh_projections(lake, full=True)
        written[group_rows] = (lake, refresh, read_projections(lake))
    (one_lake, one_refresh, one), (lake, refresh, grouped) = written.values()
    assert len(lake.table("snapshots").history()) > len(one_lake.table("snapshots").history())
    assert refresh.rows_written == one_refresh.rows_written
    # every `messages` partition is still written in one file
    assert (
        len(lake.table("messages").file_uris()) == len(one_lake.table("messages").file_uris()) == 3
    )
    for name, frame in one.items():
        assert grouped[name].schema == frame.schema, name
        assert grouped[name].equals(frame), name
        assert refresh.heads[name].equals(one_refresh.heads[name]), name
        assert lake.partition_columns(name) == one_lake.partition_columns(name), name
    definition = project_all(read_applied_events(lake), read_bodies(lake))
    replayed = projections.replay_projections(lake, read_bodies(lake))  # what the recount uses
    assert replayed.keys() == definition.keys()
    for name, frame in definition.items():
        assert grouped[name].equals(frame), name
        assert replayed[name].sort(projections.KEYS[name]).equals(frame), name
    # a later refresh finds the grouped rebuild's record and goes incremental
    w.write(DAY2, [react(w, "m5", 2, "bob", "+1", day=DAY2)])
    load_event_days(lake, w.root, [DAY2])
    assert not refresh_projections(lake).full


def test_accounts_rooms_and_markers_continue_from_their_state_only_when_exact(
    store, tmp_path, monkeypatch
):
    """A day's refresh continues an account, room or read marker from its stored state
    when its new lines all come after it (a read marker also when they come before); a
    late lower version, or a second file for a day already read, takes the whole
    history. Each step equals a rebuild."""
    from pipelines.lake import projections

    continued = []
    original = projections._continued_from_state

    def spy(*args):
        frames = original(*args)
        continued.append(
            sorted(pl.concat(frames)["aggregate_id"].unique().to_list()) if frames else []
        )
        return frames

    monkeypatch.setattr(projections, "_continued_from_state", spy)
    w, lake = store, Lake(tmp_path / "lake")
    day3, day4, before = (
        DAY0 + timedelta(days=3),
        DAY0 + timedelta(days=4),
        DAY0 - timedelta(days=1),
    )
    account = {"display_name": "Ann", "platform": "slack", "created_at": 5, "handle": "@ann"}
    room = {"name": "general", "type": "group", "platform": "slack", "created_at": 5}
    w.write(
        DAY0,
        [
            w.event("AccountCreated", "account", "a", 1, account),
            w.event("RoomCreated", "room", "r", 1, room),
            w.event("MemberJoined", "room", "r", 2, {"account_id": "a", "at": 6}),
            w.event("MemberJoined", "room", "r", 3, {"account_id": "b", "at": 7}),
            created(w, "m1", "hello", account="b", room="r"),
            w.event("ReadMarkerMoved", "read_marker", "k", 1, marker(DAY0, 10)),
        ],
    )
    project(w, lake)
    steps = [
        # new lines after every state: continued
        (
            DAY1,
            "001.jsonl",
            [
                w.event("AccountUpdated", "account", "a", 3, {"display_name": "Anna"}, DAY1),
                w.event("MemberLeft", "room", "r", 4, {"account_id": "a", "at": 8}, DAY1),
                w.event("ReadMarkerMoved", "read_marker", "k", 2, marker(DAY1, 20), DAY1),
            ],
            ["a", "k", "r"],
        ),
        # a late version 2 of the account, below its state's 3: its whole history
        (
            DAY2,
            "001.jsonl",
            [
                w.event("AccountUpdated", "account", "a", 2, {"handle": "@anna"}, DAY2),
                w.event("ReadMarkerMoved", "read_marker", "k", 3, marker(DAY2, 30), DAY2),
            ],
            ["k"],
        ),
        # a second file for a day already read: the day is read again and its partition
        # rewritten, so lines may have changed status: whole histories
        (
            DAY2,
            "002.jsonl",
            [
                w.event("ReadMarkerMoved", "read_marker", "k", 4, marker(DAY2, 5), DAY2),
                w.event("MemberJoined", "room", "r", 5, {"account_id": "a", "at": 9}, DAY2),
            ],
            None,
        ),
        # a day before the others, new: the marker's later snapshots need its history
        (
            before,
            "001.jsonl",
            [
                w.event("ReadMarkerMoved", "read_marker", "k", 6, marker(DAY0, 40), before),
                w.event("AccountUpdated", "account", "b", 1, {"display_name": "Bo"}, before),
            ],
            ["b"],
        ),
        (day3, "001.jsonl", [], []),
        # a late version 5 of the marker, below its state's 6: a marker is its highest
        # version's line whole, so it still continues
        (
            day4,
            "001.jsonl",
            [w.event("ReadMarkerMoved", "read_marker", "k", 5, marker(day4, 50), day4)],
            ["k"],
        ),
    ]
    for day, name, lines, expected in steps:
        w.write(day, lines, name=name)
        continued.clear()
        load_event_days(lake, w.root, [day])  # as a day's run does
        refresh_projections(lake)
        tables = read_projections(lake)
        assert (continued[0] if continued else None) == expected, (day, name)
        rebuilt = Lake(tmp_path / f"rebuilt-{day}-{name}")
        load_event_days(rebuilt, w.root, list_days(w.root))
        load_content(rebuilt, w.root)
        refresh_projections(rebuilt)
        for table, frame in read_projections(rebuilt).items():
            assert tables[table].equals(frame), (day, name, table)
    a = row(tables["accounts"], "account_id", "a")
    assert (a["display_name"], a["handle"]) == ("Anna", "@anna")
    assert row(tables["rooms"], "room_id", "r")["members"] == ["a", "b"]
    assert row(tables["read_markers"], "marker_id", "k")["version"] == 6


def marker(day, seconds):
    return {"account_id": "a", "room_id": "r", "read_up_to": ms(day, seconds)}


def test_a_refresh_that_fails_half_way_is_redone_whole(store, lake, tmp_path, monkeypatch):
    from pipelines.lake import projections

    w = store
    w.write(DAY0, [created(w, "m1", "hello"), created(w, "m2", "world", seconds=1)])
    project(w, lake)
    w.write(DAY1, [react(w, "m1", 2, "b", "+1", day=DAY1), edit(w, "m2", 2, "again", day=DAY1)])
    load_event_days(lake, w.root, [DAY1])
    load_content(lake, w.root)

    def fails(*args, **kwargs):
        raise RuntimeError("stopped after messages and threads were written behind")

    commit = Lake._commit

    def slow(self, *args, **kwargs):
        time.sleep(0.2)
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(projections, "_adjusted_daily", fails)
    monkeypatch.setattr(Lake, "_commit", slow)
    with pytest.raises(RuntimeError, match="stopped after"):  # its own error, not a write's
        refresh_projections(lake)
    # the writes already behind were committed before it returned
    recorded = {
        t: lake.commit_metadata(t)["events_version"] for t in ("messages", "platform_daily")
    }
    assert recorded["messages"] != recorded["platform_daily"]
    monkeypatch.undo()
    assert refresh_projections(lake).full  # the record is inconsistent: rebuilt
    expected = project(w, Lake(tmp_path / "fresh"))
    for name, table in read_projections(lake).items():
        assert_frame_equal(table, expected[name])


def test_without_event_keys_a_refresh_finds_an_aggregates_days_in_events(store, lake, tmp_path):
    """An edit refolds its message from the creation on an earlier day; with no
    ``event_keys`` mirroring ``events``, that day is found from ``events`` itself."""
    w = store
    w.write(DAY0, [created(w, "a", "first"), created(w, "b", "other")])
    project(w, lake)
    w.write(DAY2, [edit(w, "a", 2, "second", day=DAY2)])
    load_event_days(lake, w.root, [DAY2])
    load_content(lake, w.root)
    shutil.rmtree(lake.path(event_keys.EVENT_KEYS))
    assert not event_keys.mirrors(lake, lake.version("events"))
    assert not refresh_projections(lake).full
    tables = read_projections(lake)
    assert row(tables["messages"], "message_id", "a")["edit_count"] == 1
    expected = project(w, Lake(tmp_path / "rebuilt"))
    for name, frame in expected.items():
        assert_frame_equal(tables[name], frame, check_exact=True)
