"""Plots shown in the Dagster UI: PNG images embedded as base64 in markdown metadata."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import dagster as dg
import polars as pl
from matplotlib.figure import Figure

from pipelines.lake.delta import Lake
from pipelines.lake.projections import SCHEMAS

PLATFORM_DAILY = "platform_daily"
RECENT_DAYS = 60


def png_markdown(figure: Figure, alt: str) -> str:
    """The figure as a markdown image with an inline base64 PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"


def platform_activity_figure(platform_daily: pl.DataFrame, days: int = RECENT_DAYS) -> Figure:
    """Messages created per UTC day, one line per platform, over the last ``days`` days that
    ``platform_daily`` covers (imported history reaches years back and would flatten them)."""
    figure = Figure(figsize=(9, 3.6))
    axes = figure.add_subplot()
    daily = platform_daily.drop_nulls(["platform", "day"]).sort("platform", "day")
    if not daily.is_empty():
        daily = daily.filter(pl.col("day") > daily["day"].max() - timedelta(days=days))
    for (platform,), rows in daily.group_by("platform", maintain_order=True):
        axes.plot(
            rows["day"].to_list(), rows["messages_created"].to_list(), marker=".", label=platform
        )
    axes.set_title(f"Messages created per day and platform (last {days} days)")
    axes.set_ylabel("messages created")
    axes.grid(alpha=0.3)
    if not daily.is_empty():
        axes.legend(loc="upper left", fontsize="small", ncols=3)
    figure.autofmt_xdate()
    return figure


def platform_activity_metadata(lake: Lake) -> dict[str, dg.MetadataValue]:
    """Metadata for the platform_daily materialization: the activity plot of the whole table."""
    daily = lake.read(
        PLATFORM_DAILY, SCHEMAS[PLATFORM_DAILY], columns=["platform", "day", "messages_created"]
    )
    figure = platform_activity_figure(daily)
    return {
        "activity_by_platform": dg.MetadataValue.md(
            png_markdown(figure, "messages created per day and platform")
        )
    }
