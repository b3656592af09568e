"""The Dagster code location: assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

from pipelines.assets import catalog, checks, ingest, model, search
from pipelines.assets.maintenance import lake_vacuum, lake_vacuum_schedule
from pipelines.assets.sensors import build_new_event_files_sensor
from pipelines.resources import lakehouse_from_env

all_assets = dg.load_assets_from_modules([ingest, model, catalog, search])
all_checks = dg.load_asset_checks_from_modules([checks])

lakehouse_job = dg.define_asset_job(
    "lakehouse",
    selection=dg.AssetSelection.all(),
    description="Ingest a window of recorded days (one day, or a range with the "
    "dagster/asset_partition_range_start/end tags), the content, and refresh every read model "
    "and the DuckDB catalog. The daily schedule and the new_event_files sensor run it per day.",
    partitions_def=None,
)

daily_ingest_schedule = dg.build_schedule_from_partitioned_job(
    lakehouse_job,
    name="daily_ingest",
    hour_of_day=0,
    minute_of_hour=30,
    description="At 00:30 UTC, ingest the recorded day that just ended (the latest daily "
    "partition) and refresh everything downstream.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

new_event_files = build_new_event_files_sensor(lakehouse_job)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[lakehouse_job, lake_vacuum],
    schedules=[daily_ingest_schedule, lake_vacuum_schedule],
    sensors=[new_event_files],
    resources={"lakehouse": lakehouse_from_env()},
    # One process per run: a step's own process would spend seconds importing polars,
    # deltalake and Dagster for steps that take well under a second; the pools already
    # serialise the lake writers, and event_files spreads parsing over processes itself.
    executor=dg.in_process_executor,
)
