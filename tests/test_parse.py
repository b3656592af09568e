"""Line-level rules of the input contract: what is an event, what is quarantined, and why."""

from __future__ import annotations

import orjson
import pytest

from pipelines.ingest.cid import cid_of
from pipelines.ingest.parse import parse_event_file

GOOD = {
    "event_id": "e1",
    "event_type": "MessageEdited",
    "schema_version": 1,
    "aggregate_type": "message",
    "aggregate_id": "m1",
    "version": 2,
    "recorded_at": "2025-03-01T10:00:00.123Z",
    "data": {
        "content_cid": "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
        "edited_at": 1,
    },
}


def line(**changes) -> bytes:
    event = {**GOOD, **changes}
    return orjson.dumps({k: v for k, v in event.items() if v is not ...})


def parse(*lines: bytes, end: bytes = b"\n"):
    return parse_event_file(b"\n".join(lines) + end)


def reasons(parsed) -> list[str]:
    return [entry[4] for entry in parsed.quarantine]


def test_good_line_is_a_row_with_typed_payload():
    parsed = parse(line())
    assert parsed.rows.height == 1 and not parsed.quarantine
    row = parsed.rows.row(0, named=True)
    assert row["event_id"] == "e1" and row["version"] == 2 and row["payload_error"] is None
    assert row["recorded_at"].isoformat() == "2025-03-01T10:00:00.123000+00:00"
    assert row["edited_at"].timestamp() == 0.001


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b"NaN", "not JSON"),
        (line(event_id=...), "'event_id' is missing"),
        (line(event_id=None), "'event_id' is not a string"),
        (line(aggregate_id=""), "'aggregate_id' is empty"),
        (line(version="3"), "'version' is not an integer"),
        (line(version=2.0), "'version' is not an integer"),
        (line(version=True), "'version' is not an integer"),
        (line(version=0), "must be an integer >= 1"),
        (line(schema_version=0), "must be an integer >= 1"),
        (line(schema_version=None), "'schema_version' is not an integer"),
        (line(aggregate_type="thread"), "is not message, account, room or read_marker"),
        (line(aggregate_type=["message"]), "'aggregate_type' is not a string"),
        (line(aggregate_type="room"), "does not match MessageEdited"),
        (line(recorded_at="2025-03-01T10:00:00+02:00"), "recorded_at is not an ISO-8601 UTC"),
        (line(recorded_at="yesterdayZ"), "recorded_at is not an ISO-8601 UTC"),
        (line(recorded_at="2025-13-01T10:00:00Z"), "recorded_at is not an ISO-8601 UTC"),
        (line(recorded_at="25-03-01T10:00:00Z"), "recorded_at is not an ISO-8601 UTC"),
        (line(recorded_at="+2025-03-01T10:00:00Z"), "recorded_at is not an ISO-8601 UTC"),
        (line(recorded_at="2025-3-1T10:00:00Z"), "recorded_at is not an ISO-8601 UTC"),
        (line(recorded_at="2025-03-01T1:0:0Z"), "recorded_at is not an ISO-8601 UTC"),
        (line(recorded_at="2025-03-01T10:00:00 Z"), "recorded_at is not an ISO-8601 UTC"),
        (line(recorded_at=" 2025-03-01T10:00:00+00:00"), "recorded_at is not an ISO-8601 UTC"),
        (line(data=[1]), "'data' is not an object"),
        (line(data=...), "'data' is missing"),
        (line(metadata="x"), "'metadata' is not an object"),
        (line(metadata=None), "'metadata' is not an object"),
    ],
)
def test_envelope_faults_are_quarantined_with_reason(raw: bytes, reason: str):
    parsed = parse(raw)
    assert parsed.rows.height == 0
    assert len(parsed.quarantine) == 1
    number, stage, _, text, why = parsed.quarantine[0]
    assert (number, stage) == (1, "envelope")
    assert reason in why
    assert text == raw.decode()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"data": {"edited_at": 1}}, "required data field 'content_cid' is missing"),
        ({"data": {"content_cid": "x", "edited_at": "1"}}, "'edited_at' is not an integer"),
        ({"schema_version": 5}, "unsupported schema version 5 for MessageEdited"),
        (
            {
                "event_type": "RoomCreated",
                "aggregate_type": "room",
                "data": {"name": "r", "type": "forum", "platform": "p", "created_at": 1},
            },
            "'type' is not one of dm, group, channel",
        ),
        (
            {
                "event_type": "RoomCreated",
                "aggregate_type": "room",
                "data": {"name": "r", "type": ["dm"], "platform": "p", "created_at": 1},
            },
            "'type' is not one of dm, group, channel",
        ),
        (
            {"event_type": "ReactionAdded", "data": {"account_id": "a", "at": 1}},
            "required data field 'emoji' is missing",
        ),
        (
            {
                "event_type": "MessageCreated",
                "schema_version": 2,
                "data": {"account_id": "a", "content_cid": "c", "kind": 0, "created_at": 1},
            },
            "'source' is missing",
        ),
        (
            {
                "event_type": "MessageCreated",
                "schema_version": 2,
                "data": {
                    "account_id": "a",
                    "content_cid": "c",
                    "kind": 0,
                    "created_at": 1,
                    "source": {"platform": "x"},
                    "thread_id": 7,
                },
            },
            "optional data field 'thread_id' is not a string",
        ),
        (
            {"event_type": "MessageEdited", "data": {"content_cid": "c", "edited_at": 10**16}},
            "'edited_at' is out of range (epoch milliseconds of years 1-9999)",
        ),
        (
            {
                "event_type": "MessageCreated",
                "schema_version": 1,
                "data": {"author": "a", "text": "t", "channel": "c", "ts": -1e12, "platform": "p"},
            },
            "'ts' is out of range (epoch seconds of years 1-9999)",
        ),
    ],
)
def test_payload_faults_keep_the_raw_row_but_are_quarantined(changes: dict, reason: str):
    parsed = parse(line(**changes))
    assert parsed.rows.height == 1
    assert reason in parsed.rows["payload_error"][0]
    assert [(q[0], q[1], q[2]) for q in parsed.quarantine] == [(1, "payload", "e1")]
    assert reason in parsed.quarantine[0][4]


def test_optional_null_means_absent_and_unknown_types_are_kept():
    parsed = parse(
        line(event_type="MessageDeleted", data={"deleted_at": 5, "reason": None}),
        line(event_type="MessagePinned", event_id="e2", data={"anything": [1]}),
    )
    assert not parsed.quarantine
    assert parsed.rows["known_type"].to_list() == [True, False]
    assert parsed.rows["reason"].to_list() == [None, None]


def test_blank_crlf_bom_are_accepted_and_counted():
    content = b"\xef\xbb\xbf" + line() + b"\r\n   \r\n\t\n\n" + line(event_id="e2") + b"\r\n"
    parsed = parse_event_file(content)
    assert parsed.rows["event_id"].to_list() == ["e1", "e2"]
    assert parsed.rows["line_number"].to_list() == [1, 5]
    assert (parsed.lines, parsed.blank, parsed.pending, len(parsed.quarantine)) == (5, 3, 0, 0)


def test_unterminated_last_line_is_pending_only_if_it_does_not_parse():
    partial = parse(line(), line(event_id="e2")[:30], end=b"")
    assert (partial.rows.height, partial.pending, partial.quarantine) == (1, 1, [])
    complete = parse(line(), line(event_id="e2"), end=b"")
    assert (complete.rows.height, complete.pending) == (2, 0)
    broken_middle = parse(line()[:30], line(event_id="e2"), end=b"")
    assert broken_middle.pending == 0 and broken_middle.quarantine[0][0] == 1


def test_line_over_one_mib_is_quarantined():
    huge = line(data={"content_cid": "x" * (1 << 20), "edited_at": 1})
    parsed = parse(huge, line(event_id="e2"))
    assert parsed.rows["event_id"].to_list() == ["e2"]
    assert "longer than 1 MiB" in parsed.quarantine[0][4]
    assert len(parsed.quarantine[0][3]) == 1 << 16


def test_v1_message_is_upcast():
    v1 = line(
        event_type="MessageCreated",
        schema_version=...,
        data={
            "author": "acct_1",
            "text": "hello world\n",
            "channel": "general",
            "ts": 1700000000.0005,
            "platform": "irc",
            "thread": None,
            "parent": "m0",
        },
    )
    row = parse(v1).rows.row(0, named=True)
    assert row["schema_version"] == 1
    assert row["account_id"] == "acct_1" and row["room_id"] == "general"
    assert row["content_cid"] == cid_of(b"hello world\n") == GOOD["data"]["content_cid"]
    assert row["body_inline"] == "hello world\n" and row["kind"] == 0
    assert row["platform"] == "irc" and row["reply_to"] == "m0" and row["thread_id"] is None
    assert row["created_at"].timestamp() * 1000 == round(1700000000.0005 * 1000)


def test_invalid_utf8_line_is_quarantined_not_lost():
    parsed = parse(b'{"event_id": "\xff"}', line())
    assert parsed.rows.height == 1
    assert parsed.quarantine[0][0] == 1 and "not JSON" in parsed.quarantine[0][4]


@pytest.mark.parametrize("fast", [True, False])
def test_payload_times_at_the_ends_of_the_calendar_are_kept(fast: bool):
    lines = [
        line(event_type="MessageEdited", data={"content_cid": "c", "edited_at": edge})
        for edge in (-62_135_596_800_000, 253_402_300_799_999)
    ]
    parsed = parse_event_file(b"\n".join(lines) + b"\n", fast=fast)
    assert parsed.quarantine == []
    assert [t.year for t in parsed.rows["edited_at"]] == [1, 9999]
