"""The sample-store generator: determinism, layout, event rules of a clean store, faults.

Only ``pipelines.sample`` is used; stores are small (a few thousand events).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import orjson
import pytest

from pipelines.sample import NotAStoreError, cid_of, generate_store
from pipelines.sample.__main__ import main

EVENTS, DAYS, SEED = 4_000, 12, 3
START = date(2025, 10, 1)
FAULT_KINDS = {
    # lines
    "not_json",
    "nan_literal",
    "not_object",
    "missing_envelope_field",
    "version_string",
    "version_float",
    "version_bool",
    "version_zero",
    "schema_version_zero",
    "null_event_id",
    "empty_aggregate_id",
    "unknown_aggregate_type",
    "aggregate_type_mismatch",
    "recorded_at_not_utc",
    "data_not_object",
    "metadata_not_object",
    "data_missing_field",
    "data_wrong_type",
    "unsupported_schema_version",
    "unknown_event_type",
    "blank_line",
    "whitespace_line",
    "long_line",
    "truncated_last_line",
    # files
    "crlf_file",
    "bom_file",
    # events
    "duplicate_identical",
    "duplicate_differing",
    "version_conflict",
    "version_gap",
    "orphan_message_event",
    "second_message_created",
    # content
    "tampered_content",
    "invalid_cid_name",
    "symlink_in_store",
    "symlink_outside_store",
    "invalid_utf8_body",
    # index.json
    "index_wrong_lines",
    "index_file_absent",
    "index_file_not_listed",
    "index_wrong_sha256",
}


# --------------------------------------------------------------------------- helpers


def day_of(path: Path) -> date:
    """The recorded day of an event file: the date of its directory."""
    return date(
        int(path.parent.parent.parent.name), int(path.parent.parent.name), int(path.parent.name)
    )


def event_files(root: Path) -> list[Path]:
    return sorted(
        p for p in (root / "events").rglob("*") if p.name.endswith((".jsonl", ".jsonl.gz"))
    )


def content_of(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def lines_of(path: Path) -> list[bytes]:
    text = content_of(path)
    lines = text.split(b"\n")
    return lines[:-1] if text.endswith(b"\n") else lines


def events_of(root: Path) -> list[tuple[Path, dict]]:
    """Every line of a clean store, parsed, with its file."""
    return [(path, orjson.loads(line)) for path in event_files(root) for line in lines_of(path)]


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes (or the link target for a symbolic link) of every file."""
    result = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            result[relative] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            result[relative] = path.read_bytes()
    return result


def at_place(root: Path, place: str) -> bytes:
    """The raw line at ``<file>:<line>``."""
    name, number = place.rsplit(":", 1)
    return content_of(root / name).split(b"\n")[int(number) - 1]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("clean") / "store"
    return root, generate_store(root, EVENTS, DAYS, SEED, START)


@pytest.fixture(scope="module")
def clean_events(clean) -> list[tuple[Path, dict]]:
    return events_of(clean[0])


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("faulty") / "store"
    return root, generate_store(root, EVENTS, DAYS, SEED, START, faults=True)


# --------------------------------------------------------------------------- tests


def test_cid_of_known_value():
    assert cid_of(b"hello world\n") == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, clean):
    root, summary = clean
    again = generate_store(tmp_path / "again", EVENTS, DAYS, SEED, START)
    assert again == summary
    assert tree(tmp_path / "again") == tree(root)
    other = generate_store(tmp_path / "other", EVENTS, DAYS, SEED + 1, START)
    assert other.events == summary.events
    assert tree(tmp_path / "other") != tree(root)


def test_same_seed_same_faults(tmp_path: Path, faulty):
    root, summary = faulty
    again = generate_store(tmp_path / "again", EVENTS, DAYS, SEED, START, faults=True)
    assert again.fault_places == summary.fault_places
    assert tree(tmp_path / "again") == tree(root)


def test_exact_event_count_and_summary(clean, clean_events):
    root, summary = clean
    assert summary.events == EVENTS == len(clean_events) == summary.lines
    assert sum(summary.event_types.values()) == EVENTS
    assert summary.files == len(event_files(root))
    assert summary.faults == {} and summary.fault_places == {}
    assert (summary.first_day, summary.last_day) == (START, date(2025, 10, DAYS))
    types = Counter(event["event_type"] for _, event in clean_events)
    assert types == summary.event_types
    for kind in ("AccountUpdated", "RoomUpdated", "MemberLeft", "MessageEdited", "MessageDeleted"):
        assert types[kind] > 0, kind
    assert types["ReactionRemoved"] > 0 and types["ReadMarkerMoved"] > 0


def test_recorded_at_lies_in_its_directory_day(clean_events):
    for path, event in clean_events:
        assert event["recorded_at"].endswith("Z")
        assert date.fromisoformat(event["recorded_at"][:10]) == day_of(path), path


def test_versions_per_aggregate_are_1_to_n(clean_events):
    versions = defaultdict(list)
    for _, event in clean_events:
        versions[event["aggregate_id"]].append(event["version"])
    for aggregate_id, seen in versions.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), aggregate_id
    assert len({event["event_id"] for _, event in clean_events}) == len(clean_events)
    assert all(len(event["event_id"]) == 26 for _, event in clean_events)


def test_some_aggregates_arrive_out_of_order(clean, clean_events):
    """A later version recorded on an earlier day than an earlier version (late events)."""
    assert clean[1].late_events > 0
    days = defaultdict(dict)
    for path, event in clean_events:
        days[event["aggregate_id"]][event["version"]] = day_of(path)
    out_of_order = [
        aggregate
        for aggregate, by_version in days.items()
        if any(by_version[v] > by_version[v + 1] for v in range(1, len(by_version)))
    ]
    assert out_of_order


def test_message_events_are_well_formed(clean_events):
    created_at = {}
    for _, event in clean_events:
        data = event["data"]
        if event["event_type"] == "MessageCreated" and event.get("schema_version", 1) == 2:
            assert data["content_cid"].startswith("bafkrei") and isinstance(data["created_at"], int)
            assert data["source"]["platform"] in {
                "telegram",
                "discord",
                "slack",
                "github",
                "claude-code",
                "email",
            }
            created_at[event["aggregate_id"]] = data["created_at"]
        if event["aggregate_type"] == "read_marker":
            assert event["aggregate_id"] == f"{data['account_id']}/{data['room_id']}"
    replies = [e for _, e in clean_events if "reply_to" in e["data"]]
    assert replies and any("thread_id" in e["data"] for e in replies)
    assert all(e["data"]["reply_to"].startswith("msg_") for e in replies)


def test_legacy_and_imported_messages_present(clean, clean_events):
    _, summary = clean
    legacy = [
        e
        for _, e in clean_events
        if e["event_type"] == "MessageCreated" and e.get("schema_version", 1) == 1
    ]
    assert len(legacy) == summary.legacy_messages > 0
    assert any("schema_version" not in e for e in legacy)
    for event in legacy:
        data = event["data"]
        assert {"author", "text", "channel", "ts", "platform"} <= data.keys()
        assert isinstance(data["ts"], float)
    imported = [e for _, e in clean_events if e["metadata"].get("source") == "importer"]
    assert len(imported) == summary.imported_messages > 0
    for event in imported:
        recorded_ms = event["data"]["imported_at"]
        assert recorded_ms - event["data"]["created_at"] > 14 * 86_400_000


def test_layout_gzip_archive_and_several_files(clean):
    root, summary = clean
    files = event_files(root)
    assert any(p.name.endswith(".gz") for p in files)
    assert any("archive" in p.parts for p in files)
    assert summary.compressed_files == sum(p.name.endswith(".gz") for p in files)
    per_day = Counter(day_of(p) for p in files)
    assert max(per_day.values()) >= 2 and len(per_day) == DAYS
    last = [p for p in files if day_of(p) == summary.last_day]
    assert last and not any(p.name.endswith(".gz") for p in last)
    for path in files:  # every data line is valid JSON, the gzip header is deterministic
        if path.name.endswith(".gz"):
            assert path.read_bytes()[4:8] == b"\0\0\0\0"  # mtime 0


def test_index_json_matches_files_on_closed_days(clean):
    root, summary = clean
    directories = {p.parent for p in event_files(root)}
    assert summary.index_files == DAYS - 1
    for directory in directories:
        index_path = directory / "index.json"
        if day_of(directory / "x") == summary.last_day:
            assert not index_path.exists()
            continue
        index = orjson.loads(index_path.read_bytes())
        assert index["day"] == day_of(directory / "x").isoformat()
        present = {p.name: p for p in directory.iterdir() if p.name != "index.json"}
        assert set(index["files"]) == set(present)
        for name, entry in index["files"].items():
            stored = present[name].read_bytes()
            assert entry["bytes"] == len(stored)
            assert entry["sha256"] == hashlib.sha256(stored).hexdigest()
            assert entry["lines"] == len(lines_of(present[name]))
        assert index["total_lines"] == sum(e["lines"] for e in index["files"].values())


def test_content_is_addressed_deduplicated_and_partly_missing(clean, clean_events):
    root, summary = clean
    bodies = root / "content" / "by-cid"
    names = {p.name for p in bodies.iterdir()}
    assert len(names) == summary.content_files
    for path in bodies.iterdir():
        assert path.is_file() and not path.is_symlink()
        assert cid_of(path.read_bytes()) + ".md" == path.name
    for path in (root / "content" / "blobs").iterdir():
        assert cid_of(path.read_bytes()) == path.name
    references = Counter()
    for _, event in clean_events:
        cid = event["data"].get("content_cid")
        if cid:
            references[cid] += 1
        for blob in event["data"].get("attachments", ()):
            assert (root / "content" / "blobs" / blob).is_file()
    assert references[cid_of(b"+1")] >= 5 and f"{cid_of(b'+1')}.md" in names
    missing = {cid for cid in references if f"{cid}.md" not in names}
    assert len(missing) == summary.missing_bodies > 0
    texts = b" ".join((bodies / name).read_bytes() for name in sorted(names)[:200])
    assert b"rust" in texts.lower() or b"garden" in texts.lower() or b"cook" in texts.lower()


def test_every_fault_kind_is_present(faulty):
    root, summary = faulty
    assert set(summary.faults) == FAULT_KINDS
    assert all(count >= 1 for count in summary.faults.values())
    assert summary.faults["missing_envelope_field"] == 7
    assert {k: len(v) for k, v in summary.fault_places.items()} == summary.faults
    for places in summary.fault_places.values():
        for place in places:
            path = root / re.sub(r"(:\d+|#.*)$", "", place)
            assert path.is_symlink() or path.exists(), place


def test_fault_lines_are_what_they_say(faulty):
    root, summary = faulty
    places = summary.fault_places
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(at_place(root, places["not_json"][0]))
    assert b"NaN" in at_place(root, places["nan_literal"][0])
    assert not isinstance(orjson.loads(at_place(root, places["not_object"][0])), dict)
    assert at_place(root, places["blank_line"][0]).strip() == b""
    assert at_place(root, places["whitespace_line"][0]).strip(b" \t\r") == b""
    assert len(at_place(root, places["long_line"][0])) > 1 << 20
    assert orjson.loads(at_place(root, places["version_float"][0]))["version"] == 2.0
    assert orjson.loads(at_place(root, places["version_bool"][0]))["version"] is True
    assert orjson.loads(at_place(root, places["version_string"][0]))["version"] == "3"
    pinned = orjson.loads(at_place(root, places["unknown_event_type"][0]))
    assert pinned["event_type"] == "MessagePinned"
    edited = orjson.loads(at_place(root, places["unsupported_schema_version"][0]))
    assert edited["schema_version"] == 5
    tail_file = places["truncated_last_line"][0].rsplit(":", 1)[0]
    tail = content_of(root / tail_file)
    assert not tail.endswith(b"\n")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(tail.rsplit(b"\n", 1)[1])
    assert day_of(root / tail_file) == summary.last_day
    assert content_of(root / places["bom_file"][0]).startswith(b"\xef\xbb\xbf")
    crlf = content_of(root / places["crlf_file"][0])
    assert crlf.count(b"\r\n") == crlf.count(b"\n")


def test_repeated_events_repeat_what_they_should(faulty):
    root, summary = faulty
    places = summary.fault_places
    by_id, by_slot = defaultdict(list), defaultdict(list)
    for path in event_files(root):
        for number, line in enumerate(content_of(path).splitlines(), start=1):
            try:
                event = orjson.loads(line.removeprefix(b"\xef\xbb\xbf"))
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and isinstance(event.get("event_id"), str):
                where = f"{path.relative_to(root).as_posix()}:{number}"
                by_id[event["event_id"]].append((where, event))
                by_slot[(event.get("aggregate_id"), event.get("version"))].append(event)
    for name, same in (("duplicate_identical", True), ("duplicate_differing", False)):
        event = orjson.loads(at_place(root, places[name][0]))
        copies = by_id[event["event_id"]]
        assert len(copies) == 2 and (copies[0][1] == copies[1][1]) is same
        assert copies[1][0] == places[name][0]  # the later copy is the fault
    conflict = orjson.loads(at_place(root, places["version_conflict"][0]))
    slot = by_slot[(conflict["aggregate_id"], conflict["version"])]
    assert len({e["event_id"] for e in slot}) == 2
    gap = orjson.loads(at_place(root, places["version_gap"][0]))
    assert (gap["aggregate_id"], gap["version"] - 1) not in by_slot
    orphan = orjson.loads(at_place(root, places["orphan_message_event"][0]))
    assert orphan["version"] == 1 and orphan["event_type"] == "MessageEdited"
    assert by_slot[(orphan["aggregate_id"], 2)][0]["event_type"] == "MessageCreated"
    second = orjson.loads(at_place(root, places["second_message_created"][0]))
    assert by_slot[(second["aggregate_id"], 1)][0]["event_type"] == "MessageCreated"


def test_content_and_index_faults(faulty):
    root, summary = faulty
    places = summary.fault_places
    tampered = root / places["tampered_content"][0]
    assert cid_of(tampered.read_bytes()) + ".md" != tampered.name
    inside = root / places["symlink_in_store"][0]
    assert inside.is_symlink() and cid_of(inside.read_bytes()) + ".md" == inside.name
    outside = root / places["symlink_outside_store"][0]
    assert outside.is_symlink() and os.readlink(outside).startswith("/")
    latin1 = root / places["invalid_utf8_body"][0]
    with pytest.raises(UnicodeDecodeError):
        latin1.read_bytes().decode("utf-8")
    assert cid_of(latin1.read_bytes()) + ".md" == latin1.name
    assert {Path(p).name for p in places["invalid_cid_name"]} == {"notacid.md", "not-a-cid.bin"}
    for name in ("index_wrong_lines", "index_file_absent", "index_file_not_listed"):
        index_path, file_name = places[name][0].split("#")
        index = orjson.loads((root / index_path).read_bytes())
        present = (root / index_path).parent / file_name
        if name == "index_wrong_lines":
            assert index["files"][file_name]["lines"] != len(lines_of(present))
        elif name == "index_file_absent":
            assert file_name in index["files"] and not present.exists()
        else:
            assert file_name not in index["files"] and present.exists()


def test_overwrites_a_store_and_refuses_other_directories(tmp_path: Path):
    root = tmp_path / "store"
    generate_store(root, 600, 5, 1, faults=True)
    (root / "content" / "by-cid" / "stray.md").write_text("left over")
    summary = generate_store(root, 600, 3, 1)
    assert not (root / "content" / "by-cid" / "stray.md").exists()
    assert not (root / "content" / "staging").exists()
    assert summary.faults == {}
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(NotAStoreError):
        generate_store(other, 600, 3, 1)
    assert (other / "notes.txt").read_text() == "mine"


def test_cli_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "store"
    code = main(["--out", str(out), "--events", "800", "--days", "5", "--seed", "5", "--faults"])
    printed = capsys.readouterr().out.strip()
    assert code == 0 and "\n" not in printed
    assert "800 events" in printed and "faults" in printed
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x").write_text("x")
    assert main(["--out", str(tmp_path / "foreign"), "--events", "100"]) == 2
