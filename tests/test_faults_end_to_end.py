"""A generated store with every fault of the spec: each lands where the spec says."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.ingest.load import load_content, load_event_days
from pipelines.ingest.store import list_days
from pipelines.lake.delta import Lake
from pipelines.lake.projections import read_projections, refresh_projections
from pipelines.sample import generate_store

QUARANTINED_LINES = {
    "aggregate_type_mismatch",
    "data_missing_field",
    "data_not_object",
    "data_wrong_type",
    "empty_aggregate_id",
    "long_line",
    "metadata_not_object",
    "missing_envelope_field",
    "nan_literal",
    "not_json",
    "not_object",
    "null_event_id",
    "recorded_at_not_utc",
    "schema_version_zero",
    "unknown_aggregate_type",
    "unsupported_schema_version",
    "version_bool",
    "version_float",
    "version_string",
    "version_zero",
}
INDEX_PROBLEMS = {
    "index_wrong_lines": "lines_differ",
    "index_file_absent": "file_missing",
    "index_file_not_listed": "file_not_listed",
    "index_wrong_sha256": "sha256_differ",
}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    summary = generate_store(root / "store", events=3000, days=6, seed=11, faults=True)
    lake = Lake(root / "lake")
    load = load_event_days(lake, root / "store", list_days(root / "store"))
    load_content(lake, root / "store")
    refresh_projections(lake)
    return summary, lake, load


def places(summary, *names: str) -> set[tuple[str, int]]:
    found = set()
    for name in names:
        for place in summary.fault_places[name]:
            path, _, line = place.partition(":")
            found.add((path, int(line)))
    return found


def test_bad_lines_are_quarantined_exactly(faulty):
    summary, lake, load = faulty
    quarantine = lake.read("quarantine").filter(pl.col("stage") != "content")
    got = set(quarantine.select("source_file", "line_number").rows())
    assert got == places(summary, *QUARANTINED_LINES)
    assert quarantine["reason"].null_count() == 0 and quarantine["raw_text"].null_count() == 0


def test_every_line_is_accounted_for(faulty):
    summary, lake, load = faulty
    c = load.counts
    quarantined = lake.read("quarantine").filter(pl.col("stage") != "content").height
    assert c["lines"] == lake.read("events").height + quarantined + c["pending"] + c["blank"]
    assert c["lines"] == summary.lines
    assert c["pending"] == len(summary.fault_places["truncated_last_line"]) == 1
    assert c["blank"] == len(summary.fault_places["blank_line"]) + len(
        summary.fault_places["whitespace_line"]
    )


def test_duplicates_and_conflicts(faulty):
    summary, lake, _ = faulty
    events = lake.read("events")
    status = {
        (r["source_file"], r["line_number"]): r["status"] for r in events.iter_rows(named=True)
    }
    for name, expected in (
        ("duplicate_identical", "duplicate"),
        ("duplicate_differing", "duplicate_conflict"),
        ("version_conflict", "version_conflict"),
    ):
        (place,) = places(summary, name)
        assert status[place] == expected, name
    conflicts = lake.read("conflicts")
    assert sorted(conflicts["kind"]) == ["duplicate_conflict", "version_conflict"]
    unknown = events.filter(pl.col("event_type") == "MessagePinned")
    assert unknown.height >= 1 and not unknown["known_type"].any()


def test_index_and_content_reports(faulty):
    summary, lake, _ = faulty
    report = lake.read("index_report")
    for fault, problem in INDEX_PROBLEMS.items():
        (place,) = summary.fault_places[fault]
        index_file, _, name = place.partition("#")
        assert (
            report.filter(
                (pl.col("index_file") == index_file)
                & (pl.col("file") == name)
                & (pl.col("problem") == problem)
            ).height
            == 1
        ), fault
    content = dict(
        lake.read("quarantine")
        .filter(pl.col("stage") == "content")
        .select("source_file", "reason")
        .rows()
    )
    assert content[summary.fault_places["tampered_content"][0]] == "hash_mismatch"
    assert content[summary.fault_places["symlink_in_store"][0]] == "symlink"
    assert content[summary.fault_places["symlink_outside_store"][0]] == "outside_store"
    for place in summary.fault_places["invalid_cid_name"]:
        assert content[place] == "not_a_cid"


def test_fault_messages_in_the_projections(faulty):
    _, lake, _ = faulty
    messages = read_projections(lake)["messages"]
    status = dict(messages.select("message_id", "body_status").rows())
    assert status["msg_fault_tampered"] == "hash_mismatch"
    assert status["msg_fault_symlink"] == status["msg_fault_outside"] == "missing"
    latin1 = messages.filter(pl.col("message_id") == "msg_fault_latin1").row(0, named=True)
    assert latin1["body_utf8_valid"] is False and "\ufffd" in latin1["body"]
    assert not messages["message_id"].str.starts_with("msg_fault_q_").any()
    orphan = messages.filter(pl.col("message_id") == "msg_fault_orphan").row(0, named=True)
    twice = messages.filter(pl.col("message_id") == "msg_fault_twice").row(0, named=True)
    assert orphan["ignored_events"] >= 1 and twice["ignored_events"] >= 1
