"""The Dagster code location: assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

from pipelines.assets import ingest, model
from pipelines.resources import lakehouse_from_env

all_assets = dg.load_assets_from_modules([ingest, model])

lakehouse_job = dg.define_asset_job(
    "lakehouse",
    selection=dg.AssetSelection.all(),
    description="Ingest a window of recorded days, the content, and refresh every read model.",
    partitions_def=None,
)

defs = dg.Definitions(
    assets=all_assets,
    jobs=[lakehouse_job],
    resources={"lakehouse": lakehouse_from_env()},
)
