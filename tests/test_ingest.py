"""Loading recorded days into the lake: counts, idempotence, order, duplicates and conflicts."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import orjson
import polars as pl
from conftest import DAY0, StoreWriter, created

from pipelines.ingest import keys as event_keys
from pipelines.ingest.cid import cid_of
from pipelines.ingest.load import in_line_order, load_content, load_event_days
from pipelines.lake.delta import Lake

DAY1, DAY2, DAY3 = DAY0 + timedelta(days=1), DAY0 + timedelta(days=2), DAY0 + timedelta(days=3)
TABLES = ("raw_events", "events", "quarantine", "index_report", "conflicts")


def snapshot(lake: Lake) -> dict[str, list]:
    """Every table's rows, sorted, as plain values: equal snapshots mean equal tables."""
    out = {}
    for name in TABLES:
        if lake.exists(name):
            frame = pl.read_delta(str(lake.path(name)))
            out[name] = sorted(frame.select(sorted(frame.columns)).rows(), key=repr)
    return out


def three_days(w: StoreWriter) -> None:
    first = created(w, "m1", "one", DAY0)
    w.write(DAY0, [first, created(w, "m2", "two", DAY0, 5), "", "{bad json"])
    w.write(
        DAY1,
        [
            first,  # re-delivered: a duplicate of DAY0's line
            {**first, "data": {**first["data"], "kind": 1}},  # same id, other content
            w.event(
                "MessageEdited",
                "message",
                "m2",
                2,
                {"content_cid": w.body("2b"), "edited_at": 9},
                DAY1,
            ),
        ],
        gz=True,
    )
    clash = w.event("MessageDeleted", "message", "m2", 2, {"deleted_at": 10}, DAY2)
    w.write(DAY2, [clash, "[]"], archive=True)


def test_counts_add_up_and_faults_land_in_quarantine(store, lake):
    three_days(store)
    load = load_event_days(lake, store.root, [DAY0, DAY1, DAY2])
    c = load.counts
    events = pl.read_delta(str(lake.path("events")))
    quarantine = pl.read_delta(str(lake.path("quarantine")))
    assert c["lines"] == events.height + quarantine.height + c["pending"] + c["blank"]
    assert c["lines"] == c["rows"] + c["quarantined_envelope"] + c["pending"] + c["blank"]
    assert (c["lines"], c["blank"], events.height, quarantine.height) == (9, 1, 6, 2)
    assert sorted(quarantine["source_file"].to_list()) == [
        "events/2025/03/01/001.jsonl",
        "events/archive/2025/03/03/001.jsonl",
    ]


def test_duplicates_and_conflicts_are_resolved_against_earlier_days(store, lake):
    three_days(store)
    load_event_days(lake, store.root, [DAY0, DAY1, DAY2])
    events = pl.read_delta(str(lake.path("events"))).sort("day", "file_index", "line_number")
    assert events.select("day", "status").rows() == [
        (DAY0, "applied"),
        (DAY0, "applied"),
        (DAY1, "duplicate"),
        (DAY1, "duplicate_conflict"),
        (DAY1, "applied"),
        (DAY2, "version_conflict"),
    ]
    conflicts = pl.read_delta(str(lake.path("conflicts"))).sort("day")
    assert conflicts.select("kind", "winner_day", "winner_line_number").rows() == [
        ("duplicate_conflict", DAY0, 1),
        ("version_conflict", DAY1, 3),
    ]


def test_rerunning_a_day_or_a_range_gives_identical_tables(store, lake):
    three_days(store)
    load_event_days(lake, store.root, [DAY0, DAY1, DAY2])
    before = snapshot(lake)
    load_event_days(lake, store.root, [DAY1])
    assert snapshot(lake) == before
    load_event_days(lake, store.root, [DAY0, DAY1, DAY2])
    assert snapshot(lake) == before


def test_any_day_order_gives_identical_tables(store, tmp_path, monkeypatch):
    three_days(store)
    in_order, reversed_order, one_run, grouped, flushed = (Lake(tmp_path / n) for n in "abcde")
    for day in (DAY0, DAY1, DAY2):
        load_event_days(in_order, store.root, [day])
    for day in (DAY2, DAY1, DAY0):
        load = load_event_days(reversed_order, store.root, [day])
    assert load.other_days_rewritten == [DAY1]  # DAY0 arrived last: DAY1's copy is now second
    load_event_days(one_run, store.root, [DAY0, DAY1, DAY2])
    load_event_days(grouped, store.root, [DAY0, DAY1, DAY2], max_rows=1)  # a group per day
    assert snapshot(in_order) == snapshot(reversed_order) == snapshot(one_run) == snapshot(grouped)
    # the small tables written after every group instead of once for the window
    monkeypatch.setattr("pipelines.ingest.load._REPORT_BYTES", 0)
    load_event_days(flushed, store.root, [DAY0, DAY1, DAY2], max_rows=1)
    assert snapshot(flushed) == snapshot(one_run)
    assert snapshot(flushed)["quarantine"] and snapshot(flushed)["conflicts"]


def test_index_json_disagreements_are_reported(store, lake):
    path = store.write(DAY0, [created(store, "m1", "one")])
    data = path.read_bytes()
    index = {
        "day": DAY0.isoformat(),
        "files": {
            "001.jsonl": {
                "lines": 2,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
            "002.jsonl": {"lines": 1, "bytes": 1, "sha256": "0" * 64},
        },
        "total_lines": 1,
    }
    (path.parent / "index.json").write_bytes(orjson.dumps(index))
    store.write(DAY0, [created(store, "m2", "two")], name="003.jsonl")
    load_event_days(lake, store.root, [DAY0])
    report = pl.read_delta(str(lake.path("index_report"))).sort("problem", "file")
    assert report.select("file", "problem").rows() == [
        ("002.jsonl", "file_missing"),
        ("003.jsonl", "file_not_listed"),
        ("001.jsonl", "lines_differ"),
        (None, "total_lines_differ"),
    ]


def test_a_day_without_files_is_emptied_on_rerun(store, lake):
    path = store.write(DAY3, [created(store, "m9", "nine", DAY3)])
    load_event_days(lake, store.root, [DAY3])
    path.unlink()
    load_event_days(lake, store.root, [DAY3])
    assert pl.read_delta(str(lake.path("events"))).height == 0


def test_content_is_verified_and_incremental(store, lake):
    good = store.body("hello world\n")
    assert good == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    folder = store.root / "content" / "by-cid"
    tampered = store.body("original")
    (folder / f"{tampered}.md").write_bytes(b"tampered")
    (folder / "notacid.md").write_bytes(b"x")
    (folder / f"{cid_of(b'link')}.md").symlink_to(folder / f"{good}.md")
    outside = store.root.parent / "secret.txt"
    outside.write_bytes(b"secret")
    (store.root / "content" / "blobs").mkdir()
    (store.root / "content" / "blobs" / "bafkreilink").symlink_to(outside)

    first = load_content(lake, store.root)
    content = pl.read_delta(str(lake.path("content"))).sort("path")
    assert dict(content.select("cid", "status").iter_rows())[good] == "ok"
    assert dict(content.select("cid", "status").iter_rows())[tampered] == "hash_mismatch"
    assert content.filter(pl.col("cid") == tampered)["text"].to_list() == [None]
    assert "secret" not in "".join(content["text"].drop_nulls().to_list())
    reasons = pl.read_delta(str(lake.path("quarantine"))).sort("source_file")["reason"].to_list()
    assert sorted(reasons) == ["hash_mismatch", "not_a_cid", "outside_store", "symlink"]

    (folder / f"{good}.md").write_bytes(b"changed after verification")  # immutable: not re-read
    second = load_content(lake, store.root)
    assert (first.read, second.read, second.skipped_known) == (2, 1, 1)  # mismatches re-read
    assert pl.read_delta(str(lake.path("content"))).height == 2


def _statuses(lake) -> pl.DataFrame:
    # every line has one position; sorting by it gives one order (day alone would not)
    events = pl.read_delta(str(lake.path("events")))
    return events.sort("day", "file_index", "line_number").select("event_id", "day", "status")


def test_a_clean_day_after_contested_history_keeps_statuses(store, lake):
    three_days(store)
    load_event_days(lake, store.root, [DAY0, DAY1, DAY2])
    before = _statuses(lake)
    store.write(DAY3, [created(store, "m9", "nine", DAY3)])
    load = load_event_days(lake, store.root, [DAY3])  # new lines all alone; history contested
    after = _statuses(lake)
    assert load.other_days_rewritten == []
    assert after.filter(pl.col("day") < DAY3).equals(before)
    assert after.filter(pl.col("day") == DAY3)["status"].to_list() == ["applied"]


def test_colliding_key_hashes_only_cost_a_lookup(store, tmp_path, monkeypatch):
    three_days(store)
    exact, coarse = Lake(tmp_path / "exact"), Lake(tmp_path / "coarse")
    load_event_days(exact, store.root, [DAY0, DAY1, DAY2])
    # hashes with three values: nearly every line seems to share its id and its slot
    monkeypatch.setattr(
        "pipelines.ingest.keys.KEY_HASHES",
        {
            "id": (pl.col("event_id").hash() % 3).cast(pl.Int64),
            "slot": (pl.struct("aggregate_id", "version").hash() % 3).cast(pl.Int64),
            "aggregate": (pl.col("aggregate_id").hash() % 3).cast(pl.Int64),
        },
    )
    for day in (DAY2, DAY0, DAY1):  # earlier days arrive late: history lines are read back
        load_event_days(coarse, store.root, [day])
    assert snapshot(coarse) == snapshot(exact)


def _keys_match_events(lake: Lake) -> bool:
    """``event_keys`` claims to mirror the current ``events`` and holds exactly its keys."""
    version = lake.version("events")
    stored = pl.read_delta(str(lake.path(event_keys.EVENT_KEYS)))
    expected = event_keys.key_rows(pl.scan_delta(str(lake.path("events")))).collect()
    order = ["day", "file_index", "line_number"]
    same_rows = stored.select(expected.columns).sort(order).equals(expected.sort(order))
    return event_keys.mirrors(lake, version) and same_rows


def test_event_keys_follow_events_whatever_the_load_order(store, lake):
    three_days(store)
    for window in ([DAY2], [DAY0], [DAY1, DAY2], [DAY1], [DAY0, DAY1, DAY2]):
        load_event_days(lake, store.root, window)
        assert _keys_match_events(lake), window


def test_event_keys_behind_events_are_not_trusted(store, lake, tmp_path):
    three_days(store)
    load_event_days(lake, store.root, [DAY0])
    # another writer adds DAY2's lines: event_keys no longer mirrors events
    other = Lake(tmp_path / "other")
    load_event_days(other, store.root, [DAY2])
    for table in ("raw_events", "events"):
        lake.replace_days(table, pl.read_delta(str(other.path(table))), [DAY2])
    assert not event_keys.mirrors(lake, lake.version("events"))
    load_event_days(lake, store.root, [DAY1])  # its edit takes the slot of DAY2's delete
    exact = Lake(tmp_path / "exact")
    load_event_days(exact, store.root, [DAY0, DAY1, DAY2])
    assert _statuses(lake).equals(_statuses(exact))
    assert _keys_match_events(lake)


def test_rows_in_line_order_pass_as_they_are_and_any_other_order_is_sorted():
    rows = pl.DataFrame(
        {
            "day": [DAY0, DAY0, DAY0, DAY1],
            "file_index": [0, 0, 1, 0],
            "line_number": [1, 2, 1, 1],
            "line": ["a", "b", "c", "d"],
        }
    )
    assert in_line_order(rows) is rows
    for order in ([1, 0, 2, 3], [0, 1, 3, 2], [0, 2, 1, 3], [3, 2, 1, 0]):
        assert in_line_order(rows[order]).equals(rows)
