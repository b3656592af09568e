"""The fast path of the parse (msgspec, column-wise) gives what the per-line rules give.

Every case compares ``parse_event_file(content)`` with ``parse_event_file(content,
fast=False)``: the same rows (values, dtypes, order), quarantine entries and counts.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pipelines.ingest.decode import DECODE_ERRORS, decode_event
from pipelines.ingest.parse import ParsedFile, parse_event_file
from pipelines.sample import generate_store

CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
ENVELOPE = {
    "event_id": "e1",
    "aggregate_id": "m1",
    "version": 2,
    "recorded_at": "2025-03-01T10:00:00.123Z",
    "metadata": {"correlation_id": "c", "causation_id": "k", "actor": "a1", "source": "s"},
}
# One good event of every catalog entry, with every optional field.
GOOD = [
    {
        "event_type": "MessageCreated",
        "schema_version": 2,
        "aggregate_type": "message",
        "data": {
            "account_id": "a1",
            "content_cid": CID,
            "kind": 0,
            "created_at": 1_700_000_000_000,
            "source": {"platform": "slack", "platform_id": "p1", "url": "https://x"},
            "thread_id": "t1",
            "reply_to": "m0",
            "room_id": "r1",
            "author_did": "did:x",
            "imported_at": 1_700_000_000_001,
            "tags": [["t", "rust"], []],
            "attachments": [CID],
        },
    },
    {
        "event_type": "MessageCreated",
        "aggregate_type": "message",
        "data": {
            "author": "a1",
            "text": "héllo 👋\n",
            "channel": "general",
            "ts": 1700000000.0005,
            "platform": "irc",
            "thread": None,
            "parent": "m0",
        },
    },
    {
        "event_type": "MessageEdited",
        "aggregate_type": "message",
        "data": {"content_cid": CID, "edited_at": 5},
    },
    {
        "event_type": "MessageDeleted",
        "aggregate_type": "message",
        "data": {"deleted_at": 6, "reason": "spam"},
    },
    {
        "event_type": "ReactionAdded",
        "aggregate_type": "message",
        "data": {"account_id": "a2", "emoji": "❤️", "at": 7},
    },
    {
        "event_type": "ReactionRemoved",
        "aggregate_type": "message",
        "data": {"account_id": "a2", "emoji": "+1", "at": 8},
    },
    {
        "event_type": "AccountCreated",
        "aggregate_type": "account",
        "data": {
            "display_name": "A",
            "platform": "irc",
            "created_at": 9,
            "handle": "@a",
            "did": "did:a",
        },
    },
    {"event_type": "AccountUpdated", "aggregate_type": "account", "data": {"handle": "@b"}},
    {
        "event_type": "RoomCreated",
        "aggregate_type": "room",
        "data": {
            "name": "R",
            "type": "group",
            "platform": "matrix",
            "created_at": 10,
            "server_id": "s1",
            "server_name": "S",
            "topic": "T",
        },
    },
    {"event_type": "RoomUpdated", "aggregate_type": "room", "data": {"topic": None}},
    {
        "event_type": "MemberJoined",
        "aggregate_type": "room",
        "data": {"account_id": "a3", "at": 11},
    },
    {"event_type": "MemberLeft", "aggregate_type": "room", "data": {"account_id": "a3", "at": 12}},
    {
        "event_type": "ReadMarkerMoved",
        "aggregate_type": "read_marker",
        "data": {"account_id": "a3", "room_id": "r1", "read_up_to": 13},
    },
]


def event(i: int, **changes: object) -> dict:
    base = {**ENVELOPE, **GOOD[i % len(GOOD)], "event_id": f"e{i}"}
    return {k: v for k, v in {**base, **changes}.items() if v is not ...}


def good_lines(n: int = len(GOOD)) -> list[bytes]:
    return [orjson.dumps(event(i)) for i in range(n)]


def assert_same(content: bytes) -> ParsedFile:
    fast, slow = parse_event_file(content), parse_event_file(content, fast=False)
    assert fast.rows.schema == slow.rows.schema
    assert_frame_equal(fast.rows, slow.rows)
    assert (fast.lines, fast.blank, fast.pending) == (slow.lines, slow.blank, slow.pending)
    assert fast.quarantine == slow.quarantine
    return fast


def test_every_catalog_entry_takes_the_fast_path_with_the_same_rows():
    lines = good_lines()
    for line in lines:
        decode_event(line)  # does not raise
    parsed = assert_same(b"\n".join(lines) + b"\n")
    assert parsed.rows.height == len(GOOD) and not parsed.quarantine
    assert parsed.rows["platform"].to_list()[:2] == ["slack", "irc"]
    assert parsed.rows["kind"].to_list()[:2] == [0, 0]


# Lines the fast path must leave to the per-line rules: each breaks a rule, or holds
# something msgspec would read differently from orjson if it were let through.
DEFERRED = [
    b"",
    b"   \t",
    b"{not json",
    b"[1, 2]",
    b"NaN",
    b'{"event_id": "\xff"}',
    orjson.dumps(event(2, event_id=...)),
    orjson.dumps(event(0, event_type=...)),
    orjson.dumps(event(1, event_type=...)),
    orjson.dumps(event(2, event_type=...)),
    orjson.dumps(event(2, event_id="")),
    orjson.dumps(event(2, version=2.0)),
    orjson.dumps(event(2, version=True)),
    orjson.dumps(event(2, version=0)),
    orjson.dumps(event(2, version=1 << 63)),
    orjson.dumps(event(2, version=(1 << 64) - 1)),
    orjson.dumps(event(2, schema_version=None)),
    orjson.dumps(event(2, schema_version=2)),
    orjson.dumps(event(0, schema_version=3)),
    orjson.dumps(event(1, schema_version=2)),
    orjson.dumps(event(2, aggregate_type="room")),
    orjson.dumps(event(2, aggregate_type="thread")),
    orjson.dumps(event(2, recorded_at=5)),
    orjson.dumps(event(2, data=[1])),
    orjson.dumps(event(2, data=...)),
    orjson.dumps(event(2, metadata=None)),
    orjson.dumps(event(2, metadata="x")),
    orjson.dumps(event(2, metadata={"actor": 5})),
    orjson.dumps(event(2, metadata={"trace": "unknown field"})),
    orjson.dumps(event(2, extra="unknown envelope field")),
    orjson.dumps(event(2, event_type="MessagePinned")),
    orjson.dumps(event(2, data={"content_cid": CID})),
    orjson.dumps(event(2, data={"content_cid": CID, "edited_at": None})),
    orjson.dumps(event(2, data={"content_cid": CID, "edited_at": "1"})),
    orjson.dumps(event(2, data={"content_cid": CID, "edited_at": 1 << 63})),
    orjson.dumps(event(2, data={"content_cid": CID, "edited_at": 5, "more": 1})),
    orjson.dumps(event(3, data={"deleted_at": 6, "reason": 7})),
    orjson.dumps(event(0, data={**GOOD[0]["data"], "source": None})),
    orjson.dumps(event(0, data={**GOOD[0]["data"], "source": {"platform_id": "p"}})),
    orjson.dumps(event(0, data={**GOOD[0]["data"], "tags": [["t", 1]]})),
    orjson.dumps(event(1, data={**GOOD[1]["data"], "ts": "1"})),
    orjson.dumps(event(8, data={**GOOD[8]["data"], "type": "forum"})),
    # Numbers orjson refuses (a double overflow) where msgspec would skip them.
    orjson.dumps(event(2))[:-1] + b',"x":1e400}',
    orjson.dumps(event(2))[:-1] + b',"x":' + b"9" * 400 + b"}",
    orjson.dumps(event(2)).replace(b'"actor":"a1"', b'"actor":1e999'),
    orjson.dumps(event(2)).replace(b'"edited_at":5', b'"edited_at":5,"x":-1E400'),
    # Text orjson refuses where msgspec would skip it.
    orjson.dumps(event(2)).replace(b'"source":"s"', b'"source":"s","x":"\xff"'),
    orjson.dumps(event(2)).replace(b'"source":"s"', b'"source":"s","x":"\xed\xa0\x80"'),
    orjson.dumps(event(2)).replace(b'"source":"s"', b'"source":"s","x":"\\ud800"'),
    orjson.dumps(event(2)).replace(b'"actor":"a1"', b'"actor":"\\udc00"'),
    orjson.dumps(event(2)).replace(b'"edited_at":5', b'"edited_at":5,"x":' + b"[" * 1030),
    # Duplicate keys: orjson keeps the last.
    orjson.dumps(event(2))[:-1] + b',"event_type":"MessageDeleted"}',
    orjson.dumps(event(2))[:-1] + b',"version":"2"}',
    orjson.dumps(event(2))[:-1] + b',"data":[]}',
    # An escaped key is the same key.
    orjson.dumps(event(2))[:-1] + b',"schema\\u005fversion":5}',
]


@pytest.mark.parametrize("line", DEFERRED)
def test_lines_the_fast_path_defers_are_judged_by_the_per_line_rules(line: bytes):
    with pytest.raises(DECODE_ERRORS):
        decode_event(line)
    lines = good_lines()
    lines.insert(3, line)
    assert_same(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize(
    "line",
    [
        orjson.dumps(event(2)).replace(b'"edited_at":5', b'"edited_at":5,"content_cid":"x"'),
        orjson.dumps(event(2)).replace(b'{"event_id":', b' {\r "event_id" :\t', 1) + b" \t",
        orjson.dumps(event(2)).replace(b'"e2"', b'"\\u0065\\n\\ud83d\\ude00"'),
        orjson.dumps(event(2, schema_version=...)),
        orjson.dumps(event(2, metadata=...)),
        orjson.dumps(event(2, metadata={})),
        orjson.dumps(event(1, data={**GOOD[1]["data"], "ts": 1700000000})),
        orjson.dumps(event(1, data={**GOOD[1]["data"], "ts": -0.5})),
        orjson.dumps(event(0, data={**GOOD[0]["data"], "tags": None, "room_id": None})),
    ],
)
def test_odd_but_valid_lines_take_the_fast_path(line: bytes):
    decode_event(line)
    assert_same(line + b"\n" + b"\n".join(good_lines()) + b"\n")


@pytest.mark.parametrize(
    "recorded_at",
    [
        "2025-03-01T10:00:00+02:00",
        "yesterdayZ",
        "2025-13-01T10:00:00Z",
        "2025-03-01 10:00Z",
        "",
        "225-03-01T10:00:00Z",
        "2025-03-01T10:00:00 Z",
    ],
)
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_bad_recorded_at_gives_the_same_reason_and_raw_text(recorded_at: str, newline: bytes):
    lines = good_lines()
    lines[4] = orjson.dumps(event(4, recorded_at=recorded_at))
    parsed = assert_same(newline.join(lines) + newline)
    assert [entry[0] for entry in parsed.quarantine] == [5]


def test_text_around_the_lines_is_handled_alike():
    lines = good_lines()
    content = b"\xef\xbb\xbf" + b"\r\n".join(lines[:5]) + b"\r\n  \r\n\n" + b"\n".join(lines[5:])
    assert_same(content + b"\n")
    assert_same(content)  # a last line without newline that parses
    assert_same(content + b"\n" + lines[0][:30])  # ... and one that does not: pending
    assert_same(b"")
    assert_same(b"\n\n")


def test_a_line_over_one_mib_is_quarantined_even_when_it_decodes():
    huge = orjson.dumps(event(2, data={"content_cid": "x" * (1 << 20), "edited_at": 1}))
    decode_event(huge)
    parsed = assert_same(b"\n".join([*good_lines(), huge]) + b"\n")
    assert "longer than 1 MiB" in parsed.quarantine[0][4]


lines_strategy = st.lists(
    st.tuples(
        st.integers(0, len(GOOD) - 1),
        st.sampled_from(["keep", "drop", "set", "data_drop", "data_set", "raw"]),
        st.sampled_from(
            [
                "event_id",
                "event_type",
                "schema_version",
                "aggregate_type",
                "version",
                "recorded_at",
                "data",
                "metadata",
                "account_id",
                "content_cid",
                "created_at",
                "ts",
                "tags",
                "source",
                "emoji",
                "type",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(1 << 65), 1 << 65),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=5),
            st.lists(st.lists(st.text(max_size=3), max_size=2), max_size=2),
            st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
            st.sampled_from(["MessageEdited", "message", "room", "dm", "2025-03-01T10:00:00Z"]),
        ),
        st.sampled_from(
            [b"", b"\r", b"\xff", b"1e400", b"\\ud800", b"  ", b'"', b"}", b",", b"\x00"]
        ),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines_strategy, st.booleans())
def test_mutated_files_parse_the_same_both_ways(specs, terminated):
    lines = []
    for i, how, key, value, junk in specs:
        obj = event(i)
        if how == "drop":
            obj.pop(key, None)
        elif how == "set":
            obj[key] = value
        elif how == "data_drop":
            obj["data"].pop(key, None)
        elif how == "data_set":
            obj["data"] = {**obj["data"], key: value}
        line = json.dumps(obj, ensure_ascii=False).encode()
        if how == "raw":
            cut = len(line) * (len(key) % 7) // 7
            line = line[:cut] + junk + line[cut:]
        lines.append(line)
    assert_same(b"\n".join(lines) + (b"\n" if terminated and lines else b""))


def test_a_store_with_every_fault_parses_the_same_both_ways(tmp_path: Path):
    generate_store(tmp_path, 3_000, 8, 11, date(2025, 10, 1), faults=True)
    files = sorted(p for p in (tmp_path / "events").rglob("*.jsonl*") if p.is_file())
    assert files
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".gz":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                continue  # an unreadable file is a fault of the store, not of a line
        assert_same(data)
