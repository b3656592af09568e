"""The Dagster code location: assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

from pipelines.assets import ingest
from pipelines.resources import lakehouse_from_env

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingest]),
    resources={"lakehouse": lakehouse_from_env()},
)
