"""Vacuum: replaced files go, tables and the incremental refresh stay as they were."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipelines.assets.maintenance import lake_vacuum
from pipelines.ingest import keys as event_keys
from pipelines.ingest.load import load_content, load_event_days
from pipelines.ingest.store import list_days
from pipelines.lake.delta import Lake
from pipelines.lake.maintenance import delta_tables_under, vacuum_lake
from pipelines.lake.projections import read_projections, refresh_projections
from pipelines.lake.tables import EVENTS
from pipelines.quality import recount_projections
from pipelines.query.state import table_as_of
from pipelines.resources import LakehouseResource
from pipelines.sample.generator import generate_store
from pipelines.search.documents import changed_weeks


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vacuum") / "store"
    generate_store(root, 3_000, 6, 3, date(2025, 10, 1))
    return root


def run_days(lake: Lake, store: Path, days: list[date]) -> bool:
    """Ingest and refresh one day at a time; whether every refresh was incremental."""
    incremental = []
    for day in days:
        load_event_days(lake, store, [day])
        load_content(lake, store)
        incremental.append(not refresh_projections(lake).full)
    return all(incremental)


def data_files(lake: Lake) -> int:
    return sum(1 for f in lake.root.rglob("*.parquet") if "_delta_log" not in f.parts)


def rebuilt(store: Path, root: Path) -> dict:
    lake = Lake(root)
    load_event_days(lake, store, list_days(store))
    load_content(lake, store)
    refresh_projections(lake)
    return read_projections(lake)


def test_a_vacuum_deletes_replaced_files_and_the_next_refresh_stays_incremental(
    sample_store, tmp_path
):
    days = list_days(sample_store)
    lake = Lake(tmp_path / "lake")
    run_days(lake, sample_store, days[:-1])
    before = read_projections(lake)
    files = data_files(lake)

    assert all(v.files == 0 for v in vacuum_lake(lake, 1_000))  # all younger than that
    dry = vacuum_lake(lake, 0, dry_run=True)
    assert data_files(lake) == files
    done = vacuum_lake(lake, 0)
    assert [(v.table, v.files, v.bytes) for v in done] == [(v.table, v.files, v.bytes) for v in dry]
    assert sum(v.files for v in done) == files - data_files(lake) > 0
    assert {"messages", "threads", "accounts"} <= {v.table for v in done if v.files}
    assert all(v.files == 0 for v in vacuum_lake(lake, 0, dry_run=True))

    after = read_projections(lake)
    for name, frame in before.items():
        assert after[name].equals(frame), name
    # the replaced versions are gone; the current ones read
    with pytest.raises(FileNotFoundError):
        table_as_of(lake, "messages", 1)
    # a vacuum's commits change no rows: the recorded versions still hold
    assert event_keys.mirrors(lake, lake.version(EVENTS))
    assert all(o.passed for o in recount_projections(lake).values())

    assert run_days(lake, sample_store, days[-1:])
    for name, frame in rebuilt(sample_store, tmp_path / "rebuilt").items():
        assert read_projections(lake)[name].equals(frame), name


def test_a_refresh_whose_change_feed_was_vacuumed_rebuilds_the_same_tables(sample_store, tmp_path):
    days = list_days(sample_store)
    lake = Lake(tmp_path / "lake")
    run_days(lake, sample_store, days[:-1])
    # the last day ingested twice, then vacuumed before any refresh: the feed's first
    # file (replaced by the second ingest) is gone
    for _ in range(2):
        load_event_days(lake, sample_store, days[-1:])
    load_content(lake, sample_store)
    assert any(v.table == EVENTS and v.files for v in vacuum_lake(lake, 0))
    assert refresh_projections(lake).full
    for name, frame in rebuilt(sample_store, tmp_path / "rebuilt").items():
        assert read_projections(lake)[name].equals(frame), name


def test_the_lake_vacuum_job_reports_what_it_deletes(sample_store, tmp_path):
    lake = Lake(tmp_path / "lake")
    run_days(lake, sample_store, list_days(sample_store)[:3])
    resource = LakehouseResource(store_dir=str(sample_store), lake_dir=str(lake.root))
    files = data_files(lake)

    def run(**config):
        result = lake_vacuum.execute_in_process(
            resources={"lakehouse": resource},
            run_config={"ops": {"vacuum_tables": {"config": config}}},
        )
        assert result.success
        (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        return {k: v.value for k, v in output.event_specific_data.metadata.items()}

    dry = run(retain_hours=0, dry_run=True)
    assert dry["files"] > 0 and data_files(lake) == files
    assert run()["files"] == 0  # the resource's week of retention keeps them all
    assert run(retain_hours=0)["files"] == dry["files"] == files - data_files(lake)
    assert "search/documents" not in delta_tables_under(lake.root)  # no search index here


def test_a_negative_retention_is_refused(tmp_path):
    with pytest.raises(ValueError, match="retain_hours"):
        vacuum_lake(Lake(tmp_path), -1)


def test_the_search_index_compares_every_week_when_its_feed_was_vacuumed(sample_store, tmp_path):
    days = list_days(sample_store)
    lake = Lake(tmp_path / "lake")
    run_days(lake, sample_store, days[:-2])
    indexed = lake.version("messages")
    run_days(lake, sample_store, days[-2:])
    assert changed_weeks(lake, indexed, lake.version("messages"))
    vacuum_lake(lake, 0)  # the week the first of those runs wrote, replaced by the second
    assert changed_weeks(lake, indexed, lake.version("messages")) is None
