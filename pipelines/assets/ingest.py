"""Ingest assets: event files to raw_events and events; content files to content."""

import dagster as dg

from pipelines.assets.metadata import table_metadata
from pipelines.ingest.content import CONTENT_SCHEMA
from pipelines.ingest.load import load_content, load_event_days
from pipelines.lake.tables import CONTENT, EVENTS, EVENTS_SCHEMA, RAW_EVENTS, RAW_EVENTS_SCHEMA
from pipelines.partitions import recorded_days, window_days
from pipelines.resources import LakehouseResource

INGEST = "ingest"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RAW_EVENTS,
            description=(
                "Every envelope-valid line of the day's event files, with its source file and "
                "line number; bad lines go to the `quarantine` table, index.json "
                "disagreements to `index_report`."
            ),
            group_name=INGEST,
            kinds={"delta", "polars"},
            owners=["team:data-platform"],
            tags={"layer": "bronze"},
            metadata={"partition_expr": "day"},
        ),
        dg.AssetSpec(
            EVENTS,
            description=(
                "The typed event stream: payloads checked against the catalog, v1 upcast to v2, "
                "each line's status decided against all days (applied, duplicate, "
                "duplicate_conflict, version_conflict); conflicts in the `conflicts` table."
            ),
            group_name=INGEST,
            kinds={"delta", "polars"},
            owners=["team:data-platform"],
            tags={"layer": "silver"},
            deps=[RAW_EVENTS],
            metadata={"partition_expr": "day"},
        ),
    ],
    partitions_def=recorded_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="lake_events",
)
def event_files(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    """Parse the window's event files once and write both tables."""
    load = load_event_days(lakehouse.lake, lakehouse.store, window_days(context))
    counts = {f"lines/{k}": int(v) for k, v in sorted(load.counts.items())}
    yield dg.MaterializeResult(
        asset_key=RAW_EVENTS,
        metadata={
            **table_metadata(load.raw_head, RAW_EVENTS_SCHEMA, total_rows=load.raw_rows),
            **counts,
        },
    )
    yield dg.MaterializeResult(
        asset_key=EVENTS,
        metadata={
            **table_metadata(load.events_head, EVENTS_SCHEMA, total_rows=load.event_rows),
            **{f"status/{k}": v for k, v in sorted(load.statuses.items())},
            "conflicts": load.conflicts,
            "other_days_rewritten": ", ".join(map(str, load.other_days_rewritten)) or "none",
        },
    )


@dg.asset(
    name=CONTENT,
    description=(
        "Every file under content/by-cid/ and content/blobs/, verified against the CID in its "
        "name; body text for good .md files. Incremental: a verified file is never read again. "
        "Rejects (hash mismatch, non-CID names, symlinks) go to the `quarantine` table."
    ),
    group_name=INGEST,
    kinds={"delta", "polars"},
    owners=["team:data-platform"],
    tags={"layer": "bronze"},
    pool="lake_content",
)
def content(lakehouse: LakehouseResource) -> dg.MaterializeResult:
    load = load_content(lakehouse.lake, lakehouse.store)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(load.head, CONTENT_SCHEMA, total_rows=load.total_rows),
            "files_read": load.read,
            "verified": load.verified,
            "hash_mismatches": load.hash_mismatches,
            "skipped_already_verified": load.skipped_known,
            **{f"ignored/{reason}": n for reason, n in load.reports.items()},
        }
    )
