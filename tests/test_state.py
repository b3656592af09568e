"""State as of a time equals a full replay of the events recorded up to that time."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, time
from pathlib import Path

import polars as pl
from conftest import StoreWriter
from hypothesis import HealthCheck, given, settings
from test_property import build_events, history, scatter

from pipelines.ingest.load import load_content, load_event_days
from pipelines.ingest.store import list_days
from pipelines.lake.delta import Lake
from pipelines.lake.projections import read_applied_events, read_bodies, refresh_projections
from pipelines.model.project import project_all
from pipelines.query.state import (
    FOLDS,
    aggregate_state,
    projections_as_of,
    recorded_up_to,
    table_as_of,
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history)
def test_state_as_of_equals_replay_of_events_recorded_until_then(h):
    with tempfile.TemporaryDirectory() as tmp:
        w = StoreWriter(Path(tmp) / "store")
        scatter(w, build_events(w, h), h["seed"])
        lake = Lake(Path(tmp) / "lake")
        for day in list_days(w.root):  # day by day, so snapshots and versions accumulate
            load_event_days(lake, w.root, [day])
            load_content(lake, w.root)
            refresh_projections(lake)
        events = read_applied_events(lake)
        aggregates = events.select("aggregate_type", "aggregate_id").unique().rows()
        for day in list_days(w.root):
            for clock in (time(11), time(12)):  # scatter records every line at noon
                at = datetime.combine(day, clock, tzinfo=UTC)
                known = events.filter(recorded_up_to(at))
                for kind, aggregate_id in aggregates:
                    replay = FOLDS[kind](known.filter(pl.col("aggregate_id") == aggregate_id))
                    expected = replay.row(0, named=True) if not replay.is_empty() else None
                    assert aggregate_state(lake, kind, aggregate_id, at) == expected
            as_of = projections_as_of(lake, day)
            full = project_all(events.filter(pl.col("day") <= day), read_bodies(lake))
            for name, frame in full.items():
                assert as_of[name].rows() == frame.rows(), (day, name)


def test_table_as_of_a_delta_version(store, lake):
    from conftest import DAY0, created

    store.write(DAY0, [created(store, "m1", "first")])
    load_event_days(lake, store.root, [DAY0])
    first_version = lake.version("events")
    store.write(DAY0, [created(store, "m2", "second")], name="002.jsonl")
    load_event_days(lake, store.root, [DAY0])
    assert table_as_of(lake, "events", first_version)["aggregate_id"].to_list() == ["m1"]
    assert sorted(table_as_of(lake, "events", lake.version("events"))["aggregate_id"]) == [
        "m1",
        "m2",
    ]
