"""Data-quality checks: each passes on clean data and fails on a store with its fault.

The rules are tested on tiny stores built here (one fault each: exactly the
matching check fails), on stores from the sample generator (clean: all pass;
``--faults``: every check with a generator fault fails), and through Dagster
(blocking checks stop the read models).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest
from conftest import DAY0, StoreWriter, created, ms

from pipelines import quality
from pipelines.assets import checks, ingest, model
from pipelines.assets.catalog import duckdb_catalog
from pipelines.definitions import all_checks
from pipelines.ingest.load import load_content, load_event_days
from pipelines.ingest.store import list_days
from pipelines.lake.delta import Lake
from pipelines.lake.projections import refresh_projections
from pipelines.resources import LakehouseResource

PROJECT = Path(__file__).resolve().parents[1]
DAY1 = DAY0 + timedelta(days=1)
RULES: dict[str, Callable[[Lake], quality.Outcome]] = {
    "quarantine_rate": quality.quarantine_rate,
    "index_json": quality.index_mismatches,
    "conflicts": quality.event_conflicts,
    "version_gaps": quality.event_version_gaps,
    "cids": quality.cid_verification,
    "orphans": quality.orphaned_content,
    "unknown_references": quality.unknown_references,
}


def outcomes(lake: Lake) -> dict[str, quality.Outcome]:
    """Every rule's outcome; the recount gives one per read model (``recount/<table>``)."""
    result = {name: rule(lake) for name, rule in RULES.items()}
    result |= {f"recount/{t}": o for t, o in quality.recount_projections(lake).items()}
    return result


def failing(lake: Lake) -> set[str]:
    return {name for name, outcome in outcomes(lake).items() if not outcome.passed}


def build_lake(store: Path, lake: Lake) -> Lake:
    """Ingest every day and the content, then refresh the read models (no Dagster)."""
    load_event_days(lake, store, list_days(store))
    load_content(lake, store)
    refresh_projections(lake)
    return lake


def write_index(path: Path, lines_delta: int = 0) -> None:
    """index.json for the day folder of ``path`` (one file), optionally miscounting lines."""
    data = path.read_bytes()
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    index = {
        "day": "-".join(path.parent.parts[-3:]),
        "files": {
            path.name: {
                "lines": lines + lines_delta,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        },
        "total_lines": lines + lines_delta,
    }
    (path.parent / "index.json").write_bytes(orjson.dumps(index))


def clean_days(w: StoreWriter, extra0: list | None = None, extra1: list | None = None) -> Path:
    """Two days of a consistent little world: accounts, a room, messages, an edit, a reply,
    a reaction. Returns the first day's file (closed with a correct index.json)."""
    at = ms(DAY0)
    accounts = [
        w.event(
            "AccountCreated",
            "account",
            a,
            1,
            {"display_name": a, "platform": "telegram", "created_at": at},
        )
        for a in ("acct_a", "acct_b")
    ]
    room = w.event(
        "RoomCreated",
        "room",
        "room_1",
        1,
        {"name": "general", "type": "group", "platform": "telegram", "created_at": at},
    )
    joined = w.event("MemberJoined", "room", "room_1", 2, {"account_id": "acct_b", "at": at})
    first = created(w, "m1", "hello there", DAY0, 10)
    reply = created(w, "m2", "hi back", DAY0, 20, account="acct_b", reply_to="m1")
    day0 = w.write(DAY0, [*accounts, room, joined, first, reply, *(extra0 or [])])
    write_index(day0)
    edit = w.event(
        "MessageEdited",
        "message",
        "m1",
        2,
        {"content_cid": w.body("hello there, edited"), "edited_at": ms(DAY1, 5)},
        DAY1,
        5,
    )
    reaction = w.event(
        "ReactionAdded",
        "message",
        "m2",
        2,
        {"account_id": "acct_a", "emoji": "👍", "at": ms(DAY1, 6)},
        DAY1,
        6,
    )
    third = created(w, "m3", "later", DAY1, 30, room="room_1")
    w.write(DAY1, [edit, reaction, third, *(extra1 or [])], gz=True)
    return day0


# -- one fault per store: exactly the matching check fails


def fault_none(w: StoreWriter) -> None:
    clean_days(w)


def fault_quarantine(w: StoreWriter) -> None:
    clean_days(w, extra1=["{not json", '{"event_id": 7}'])


def fault_index(w: StoreWriter) -> None:
    write_index(clean_days(w), lines_delta=2)


def fault_conflict(w: StoreWriter) -> None:
    clash = w.event("MessageDeleted", "message", "m2", 2, {"deleted_at": ms(DAY1, 9)}, DAY1, 9)
    clean_days(w, extra1=[clash])  # m2 version 2 is already the reaction


def fault_gap(w: StoreWriter) -> None:
    late = w.event(
        "ReactionAdded",
        "message",
        "m3",
        3,
        {"account_id": "acct_b", "emoji": "🎉", "at": ms(DAY1, 40)},
        DAY1,
        40,
    )
    clean_days(w, extra1=[late])  # m3 has version 1 only


def fault_hash(w: StoreWriter) -> None:
    clean_days(w)
    cid = next(cid for cid, text in w.texts.items() if text == "later")
    path = w.root / "content" / "by-cid" / f"{cid}.md"
    path.write_bytes(path.read_bytes() + b" (tampered)")


def fault_orphan(w: StoreWriter) -> None:
    clean_days(w)
    w.body("a body no event names")


def fault_unknown(w: StoreWriter) -> None:
    stranger = created(w, "m9", "who am I", DAY1, 50, account="acct_ghost", room="room_void")
    clean_days(w, extra1=[stranger])


FAULTS = {
    "none": (fault_none, set()),
    "quarantine": (fault_quarantine, {"quarantine_rate"}),
    "index": (fault_index, {"index_json"}),
    "conflict": (fault_conflict, {"conflicts"}),
    "gap": (fault_gap, {"version_gaps"}),
    "hash_mismatch": (fault_hash, {"cids"}),
    "orphan": (fault_orphan, {"orphans"}),
    "unknown_refs": (fault_unknown, {"unknown_references"}),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_exactly_the_matching_check_fails(fault, store: StoreWriter, lake: Lake):
    make, expected = FAULTS[fault]
    make(store)
    build_lake(store.root, lake)
    assert failing(lake) == expected


def test_recount_fails_when_a_read_model_disagrees_with_the_events(store, lake):
    clean_days(store)
    build_lake(store.root, lake)
    messages = pl.read_delta(str(lake.path("messages")))
    lake.write(
        "messages", messages.filter(pl.col("message_id") != "m3"), partition_by=["created_week"]
    )
    threads = pl.read_delta(str(lake.path("threads")))
    lake.write("threads", threads.with_columns(message_count=pl.col("message_count") * 2))
    assert failing(lake) == {"recount/messages", "recount/threads"}
    outcome = quality.recount_projections(lake)["messages"]
    assert "rows 2 vs 3" in outcome.summary and "live 2 vs 3" in outcome.summary
    assert outcome.sample.filter(pl.col("stored") != pl.col("recount")).height == 2


def test_recount_compares_with_the_events_the_read_models_were_built_from(store, lake):
    """A run that ingests a day after another run's refresh is not a disagreement."""
    clean_days(store)
    load_event_days(lake, store.root, [DAY0])
    load_content(lake, store.root)
    refresh_projections(lake)
    built_from = lake.version("events")
    load_event_days(lake, store.root, [DAY1])  # newer events, read models not refreshed
    assert lake.version("events") > built_from
    outcomes_now = quality.recount_projections(lake)
    assert all(outcome.passed for outcome in outcomes_now.values())
    assert outcomes_now["messages"].counts["events_version"] == built_from
    refresh_projections(lake)
    assert quality.recount_projections(lake)["messages"].counts["events_version"] > built_from


def test_recount_fails_when_read_models_are_missing(store, lake):
    clean_days(store)
    load_event_days(lake, store.root, list_days(store.root))
    load_content(lake, store.root)
    assert not quality.recount_projections(lake)["messages"].passed


def test_outcomes_carry_counts_and_offending_rows(store, lake):
    fault_conflict(store)
    build_lake(store.root, lake)
    outcome = quality.event_conflicts(lake)
    assert outcome.counts["conflicts"] == 1 and outcome.counts["version_conflict"] == 1
    assert outcome.sample["aggregate_id"].to_list() == ["m2"]
    assert "1 conflicting lines" in outcome.summary


def test_orphans_named_by_a_quarantined_line_fail_even_under_the_share(store, lake):
    bad = created(store, "m8", "body of a rejected event", DAY1, 60)
    bad["version"] = "one"  # envelope reject: the body stays behind
    clean_days(store, extra1=[bad])
    build_lake(store.root, lake)
    outcome = quality.orphaned_content(lake, max_share=1.0)
    assert not outcome.passed and outcome.counts["of_rejected_events"] == 1


def test_thresholds_come_from_the_environment(store, lake, monkeypatch):
    fault_quarantine(store)
    build_lake(store.root, lake)
    assert not quality.quarantine_rate(lake).passed
    monkeypatch.setenv(quality.MAX_QUARANTINE_RATE_ENV, "0.5")
    outcome = quality.quarantine_rate(lake)
    assert outcome.passed and outcome.counts["max_rate"] == 0.5
    monkeypatch.setenv(quality.MAX_QUARANTINE_RATE_ENV, "5%")
    with pytest.raises(ValueError):
        quality.quarantine_rate(lake)
    monkeypatch.setenv(quality.MAX_QUARANTINE_RATE_ENV, "2")
    with pytest.raises(ValueError, match="between 0 and 1"):
        quality.quarantine_rate(lake)


def test_check_wrappers_report_severity_and_metadata(store, lake):
    fault_orphan(store)
    build_lake(store.root, lake)
    resource = LakehouseResource(store_dir=str(store.root), lake_dir=str(lake.root))
    result = checks.orphaned_content_check(lakehouse=resource)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["orphans"].value == 1 and "sample" in result.metadata
    result = checks.cids_verified_check(lakehouse=resource)
    assert result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    recount = list(checks.recount_checks(lakehouse=resource))
    assert {r.asset_key.to_user_string() for r in recount} == set(quality.RECOUNTED)
    assert all(r.passed and r.check_name == checks.RECOUNT for r in recount)


# -- through Dagster: blocking checks keep bad data out of the read models


def run_job(store: Path, lake: Path) -> dg.ExecuteInProcessResult:
    """The ingest and model assets (not search) with every check, over all days of ``store``."""
    days = list_days(store)
    assets = [*dg.load_assets_from_modules([ingest, model]), duckdb_catalog]
    return dg.materialize(
        [*assets, *all_checks],
        resources={"lakehouse": LakehouseResource(store_dir=str(store), lake_dir=str(lake))},
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
        raise_on_error=False,
    )


def evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }


def test_dagster_run_passes_every_check_on_a_clean_store(store, tmp_path):
    fault_none(store)
    result = run_job(store.root, tmp_path / "lake")
    assert result.success
    assert len(evaluations(result)) == 12 and all(evaluations(result).values())
    assert (tmp_path / "lake.duckdb").is_file()
    (daily,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("platform_daily")
    ]
    plot = daily.metadata["activity_by_platform"].value
    assert plot.startswith("![") and "(data:image/png;base64," in plot


def test_a_failing_blocking_check_stops_the_read_models(store, tmp_path):
    fault_index(store)
    result = run_job(store.root, tmp_path / "lake")
    assert not result.success
    assert evaluations(result)[("events", "index_json_matches")] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw_events", "events", "content"} <= materialized
    assert not materialized & {"messages", "threads", "duckdb_catalog"}
    assert not Lake(tmp_path / "lake").exists("messages")


# -- stores from the sample generator


def generated_lake(root: Path, faults: bool) -> Lake:
    store = root / "store"
    args = ["--out", str(store), "--events", "2500", "--days", "5", "--seed", "7"]
    subprocess.run(
        [sys.executable, "-m", "pipelines.sample", *args, *(["--faults"] if faults else [])],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )
    return build_lake(store, Lake(root / "lake"))


@pytest.fixture(scope="module")
def clean_sample(tmp_path_factory) -> Lake:
    return generated_lake(tmp_path_factory.mktemp("clean"), faults=False)


@pytest.fixture(scope="module")
def faulty_sample(tmp_path_factory) -> Lake:
    return generated_lake(tmp_path_factory.mktemp("faulty"), faults=True)


def test_every_check_passes_on_a_clean_generated_store(clean_sample):
    assert failing(clean_sample) == set()


def test_generator_faults_fail_their_checks(faulty_sample):
    # The generator has no fault for unknown references and none that corrupts a read
    # model; the tiny stores above cover those two.
    assert failing(faulty_sample) == {
        "quarantine_rate",
        "index_json",
        "conflicts",
        "version_gaps",
        "cids",
        "orphans",
    }
