"""The daily partitions: one per recorded day (the date of an event file's directory)."""

from __future__ import annotations

import os
from datetime import date

import dagster as dg

DEFAULT_START_DATE = "2025-01-01"


def partition_start_date() -> str:
    """First recorded day that can be ingested; set with LAKEHOUSE_START_DATE."""
    start = os.environ.get("LAKEHOUSE_START_DATE", DEFAULT_START_DATE)
    date.fromisoformat(start)  # fail early on a malformed setting
    return start


recorded_days = dg.DailyPartitionsDefinition(start_date=partition_start_date())


def window_days(context: dg.AssetExecutionContext) -> list[date]:
    """The recorded days of a run: one partition or a whole single-run range."""
    return [date.fromisoformat(key) for key in context.partition_keys]
