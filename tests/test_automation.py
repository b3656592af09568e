"""The new_event_files sensor (cursor diffing) and the daily schedule."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
from conftest import DAY0, StoreWriter, created

from pipelines.assets.sensors import (
    changed_days,
    day_signatures,
    dump_cursor,
    parse_cursor,
    plan_tick,
)
from pipelines.definitions import defs
from pipelines.resources import LakehouseResource

DAY1 = DAY0 + timedelta(days=1)


def tick(store: StoreWriter, tmp_path, cursor: str | None) -> dg.SensorResult:
    sensor = defs.get_repository_def().get_sensor_def("new_event_files")
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={
            "lakehouse": LakehouseResource(
                store_dir=str(store.root), lake_dir=str(tmp_path / "lake")
            )
        },
    )
    return sensor(context)


def requested(result: dg.SensorResult) -> list[str]:
    return [request.partition_key for request in result.run_requests or []]


# -- pure diffing


def test_changed_days_are_new_or_different_signatures():
    previous = {"2025-03-01": "a", "2025-03-02": "b", "2025-02-27": "z"}
    current = {"2025-03-01": "a", "2025-03-02": "c", "2025-03-03": "d"}
    assert changed_days(previous, current) == ["2025-03-02", "2025-03-03"]
    assert changed_days(current, current) == []
    assert changed_days({}, current) == sorted(current)


def test_cursor_round_trip_and_bad_cursors():
    signatures = {"2025-03-02": "b", "2025-03-01": "a"}
    assert parse_cursor(dump_cursor(signatures)) == signatures
    assert dump_cursor(signatures) == '{"2025-03-01":"a","2025-03-02":"b"}'
    for bad in (None, "", "not json", "[1, 2]"):
        assert parse_cursor(bad) == {}


def test_days_that_are_not_partitions_yet_stay_out_of_the_cursor():
    current = {"2025-03-01": "a", "2099-01-01": "b"}
    days, cursor = plan_tick({}, current, lambda day: day < "2099")
    assert days == ["2025-03-01"] and cursor == {"2025-03-01": "a"}
    days, cursor = plan_tick(cursor, current, lambda day: True)  # the day opened
    assert days == ["2099-01-01"] and cursor == current


def test_signatures_change_only_for_the_day_whose_files_change(store: StoreWriter):
    path = store.write(DAY0, [created(store, "m1", "one")])
    store.write(DAY1, [created(store, "m2", "two", DAY1)], gz=True, archive=True)
    before = day_signatures(store.root)
    assert sorted(before) == [DAY0.isoformat(), DAY1.isoformat()]
    assert day_signatures(store.root) == before  # stable

    with path.open("ab") as handle:  # the producer appends a line
        handle.write(b'{"partial": ')
    grown = day_signatures(store.root)
    assert grown[DAY0.isoformat()] != before[DAY0.isoformat()]
    assert grown[DAY1.isoformat()] == before[DAY1.isoformat()]

    index = path.parent / "index.json"
    index.write_text('{"day": "2025-03-01", "files": {}}')
    closed = day_signatures(store.root)
    assert closed[DAY0.isoformat()] != grown[DAY0.isoformat()]

    stat = path.stat()  # rewritten in place with the same size: the mtime tells
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert day_signatures(store.root)[DAY0.isoformat()] != closed[DAY0.isoformat()]


# -- the sensor


def test_sensor_requests_exactly_the_changed_days_then_nothing(store: StoreWriter, tmp_path):
    store.write(DAY0, [created(store, "m1", "one")])
    first = tick(store, tmp_path, None)
    assert requested(first) == [DAY0.isoformat()]
    (request,) = first.run_requests
    assert request.run_key == f"{DAY0.isoformat()}:{parse_cursor(first.cursor)[DAY0.isoformat()]}"

    second = tick(store, tmp_path, first.cursor)
    assert requested(second) == []
    assert second.skip_reason is not None
    assert second.cursor == first.cursor

    store.write(DAY1, [created(store, "m2", "two", DAY1)], name="001.jsonl")
    third = tick(store, tmp_path, second.cursor)
    assert requested(third) == [DAY1.isoformat()]

    store.write(DAY0, [created(store, "m3", "three")], name="002.jsonl")  # new file, old day
    fourth = tick(store, tmp_path, third.cursor)
    assert requested(fourth) == [DAY0.isoformat()]
    assert requested(tick(store, tmp_path, fourth.cursor)) == []


def test_sensor_ignores_today_until_its_partition_exists(store: StoreWriter, tmp_path):
    today = datetime.now(UTC).date()
    store.write(today, [created(store, "m1", "one", today)])
    store.write(DAY0, [created(store, "m2", "two")])
    result = tick(store, tmp_path, None)
    assert requested(result) == [DAY0.isoformat()]
    assert today.isoformat() not in parse_cursor(result.cursor)


def test_sensor_skips_a_store_without_events(tmp_path):
    result = tick(StoreWriter(tmp_path / "empty"), tmp_path, None)
    assert not result.run_requests and "no events/" in result.skip_reason.skip_message


# -- the schedule


@pytest.mark.parametrize(
    ("tick_time", "partition"),
    [
        (datetime(2025, 10, 6, 0, 30, tzinfo=UTC), "2025-10-05"),
        (datetime(2025, 1, 2, 0, 30, tzinfo=UTC), "2025-01-01"),
    ],
)
@pytest.mark.filterwarnings(
    "ignore:Function `JobDefinition.run_request_for_partition`"
)  # Dagster calls it itself
def test_daily_schedule_runs_the_day_that_just_ended(tick_time, partition):
    schedule = defs.get_repository_def().get_schedule_def("daily_ingest")
    assert schedule.cron_schedule == "30 0 * * *"
    assert schedule.job_name == "lakehouse"
    context = dg.build_schedule_context(scheduled_execution_time=tick_time)
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == partition
    assert date.fromisoformat(partition) == tick_time.date() - timedelta(days=1)
