"""The Dagster assets end to end: a single-run range backfill, then the read models."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import polars as pl
from conftest import DAY0, created

from pipelines.assets import ingest, model
from pipelines.resources import LakehouseResource

DAY1 = DAY0 + timedelta(days=1)


def test_range_backfill_in_one_run_then_projections(store, tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_START_DATE", "2025-01-01")
    store.write(DAY0, [created(store, "m1", "hello"), "{broken"])
    store.write(DAY1, [created(store, "m2", "world", DAY1, reply_to="m1")])
    resources = {
        "lakehouse": LakehouseResource(store_dir=str(store.root), lake_dir=str(tmp_path / "lake"))
    }
    ingest_run = dg.materialize(
        [ingest.event_files, ingest.content],
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": DAY0.isoformat(),
            "dagster/asset_partition_range_end": DAY1.isoformat(),
        },
    )
    assert ingest_run.success
    events = [
        e
        for e in ingest_run.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("events")
    ]
    assert sorted(e.partition for e in events) == [DAY0.isoformat(), DAY1.isoformat()]
    assert events[0].materialization.metadata["dagster/row_count"].value == 2

    model_run = dg.materialize([model.projections], resources=resources)
    assert model_run.success
    threads = pl.read_delta(str(tmp_path / "lake" / "threads"))
    assert threads.select("thread_id", "message_count").rows() == [("m1", 2)]
    quarantine = pl.read_delta(str(tmp_path / "lake" / "quarantine"))
    assert quarantine["line_number"].to_list() == [2]
