"""Names and schemas of the lake's tables: the project's public interface.

One place defines each table's columns; readers of an absent table get an
empty frame with these columns, and writers cast to them.
"""

from __future__ import annotations

import polars as pl

from pipelines.ingest.catalog import PAYLOAD_SCHEMA
from pipelines.ingest.parse import LINE_SCHEMA

UTC_US = pl.Datetime("us", "UTC")

RAW_EVENTS = "raw_events"
EVENTS = "events"
QUARANTINE = "quarantine"
INDEX_REPORT = "index_report"
CONFLICTS = "conflicts"
CONTENT = "content"

# Where a line was read: the recorded day, the file's place in that day's reading
# order, the file, then the line's own columns (the envelope and the line itself).
RAW_EVENTS_SCHEMA = pl.Schema(
    {
        "day": pl.Date(),
        "file_index": pl.Int32(),
        "source_file": pl.String(),
        **LINE_SCHEMA,
    }
)

# How the spec's decision 1 orders lines: "first" always means first in this order.
LINE_ORDER = ("day", "file_index", "line_number")

EVENTS_SCHEMA = pl.Schema(
    {
        **{k: v for k, v in RAW_EVENTS_SCHEMA.items() if k != "line"},
        "known_type": pl.Boolean(),
        "status": pl.String(),
        **PAYLOAD_SCHEMA,
        "actor": pl.String(),
        "source": pl.String(),
    }
)

QUARANTINE_SCHEMA = pl.Schema(
    {
        "day": pl.Date(),
        "stage": pl.String(),
        "source_file": pl.String(),
        "line_number": pl.Int64(),
        "event_id": pl.String(),
        "raw_text": pl.String(),
        "reason": pl.String(),
    }
)

INDEX_REPORT_SCHEMA = pl.Schema(
    {
        "day": pl.Date(),
        "index_file": pl.String(),
        "file": pl.String(),
        "problem": pl.String(),
        "expected": pl.String(),
        "actual": pl.String(),
    }
)

CONFLICTS_SCHEMA = pl.Schema(
    {
        "day": pl.Date(),
        "kind": pl.String(),
        "event_id": pl.String(),
        "aggregate_id": pl.String(),
        "version": pl.Int64(),
        "source_file": pl.String(),
        "line_number": pl.Int64(),
        "winner_event_id": pl.String(),
        "winner_day": pl.Date(),
        "winner_source_file": pl.String(),
        "winner_line_number": pl.Int64(),
    }
)
