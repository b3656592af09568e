"""Keep the projection tables in the lake up to date with ``events`` and ``content``.

``refresh_projections`` rebuilds every read model from the applied events and
the verified bodies and replaces each table whole. Each table's commit records
the ``events`` and ``content`` versions it reflects.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.ingest.content import CONTENT_SCHEMA
from pipelines.lake.delta import Lake
from pipelines.lake.tables import CONTENT, EVENTS, EVENTS_SCHEMA
from pipelines.model.project import project_all
from pipelines.model.snapshots import build_snapshots

PROJECTIONS = (
    "messages",
    "threads",
    "accounts",
    "rooms",
    "platform_daily",
    "unread",
    "read_markers",
)
SNAPSHOTS = "snapshots"
PARTITIONS = {"messages": ["created_month"], SNAPSHOTS: ["aggregate_type"]}


@dataclass
class ProjectionRefresh:
    tables: dict[str, pl.DataFrame]
    versions: dict[str, str]


def read_bodies(lake: Lake) -> pl.DataFrame:
    """Verified and rejected body files: cid, status, text, utf8_valid."""
    return lake.read(
        CONTENT,
        CONTENT_SCHEMA,
        columns=["cid", "status", "text", "utf8_valid"],
        where=pl.col("kind") == "body",
    )


def read_applied_events(lake: Lake) -> pl.DataFrame:
    return lake.read(
        EVENTS, EVENTS_SCHEMA, where=pl.col("known_type") & (pl.col("status") == "applied")
    )


def refresh_projections(lake: Lake, with_snapshots: bool = True) -> ProjectionRefresh:
    """Rebuild every projection (and the snapshots) from the lake's events and content."""
    versions = {
        "events_version": str(lake.version(EVENTS)),
        "content_version": str(lake.version(CONTENT)),
    }
    events = read_applied_events(lake)
    tables = project_all(events, read_bodies(lake))
    if with_snapshots:
        tables[SNAPSHOTS] = build_snapshots(events)
    for name, frame in tables.items():
        lake.write(name, frame, partition_by=PARTITIONS.get(name), metadata=versions)
    return ProjectionRefresh(tables=tables, versions=versions)
