"""Model assets: the read models, rebuilt from events and content after each ingest."""

import dagster as dg

from pipelines.assets.metadata import table_metadata
from pipelines.assets.plots import platform_activity_metadata
from pipelines.lake.projections import SCHEMAS, SNAPSHOTS, refresh_projections
from pipelines.lake.tables import CONTENT, EVENTS
from pipelines.resources import LakehouseResource

MODEL = "model"
DESCRIPTIONS = {
    "messages": "Current state of every message: body (after edits), deletion tombstone, "
    "reactions, thread, edit count. Partitioned by created_week.",
    "threads": "One row per thread: root, live message and participant counts, first/last "
    "times, depth and a Merkle root over the live messages' content CIDs.",
    "accounts": "Every account created or referenced, with live message, thread and "
    "reaction counts.",
    "rooms": "Every room created or referenced, with current members and live message counts.",
    "platform_daily": "Per platform and UTC day: messages created, edited, deleted, reactions "
    "added, active accounts and new threads.",
    "account_daily": "Per platform, UTC day and account: messages created and reactions added; "
    "the active accounts that platform_daily counts.",
    "unread": "Unread live messages per current room member, after its read marker.",
    "read_markers": "Each read marker's latest position (highest version).",
    SNAPSHOTS: "State of every aggregate at the end of each recorded day on which it changed; "
    "the base of state-as-of queries.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            description=text,
            group_name=MODEL,
            kinds={"delta", "polars"},
            owners=["team:data-platform"],
            tags={"layer": "gold"},
            deps=[EVENTS, CONTENT],
            automation_condition=dg.AutomationCondition.eager(),
        )
        for name, text in DESCRIPTIONS.items()
    ],
    pool="lake_projections",
)
def projections(lakehouse: LakehouseResource):
    """Fold the applied events into every read model and replace the tables."""
    lake = lakehouse.lake
    refresh = refresh_projections(lake)
    for name, head in refresh.heads.items():
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                **table_metadata(head, SCHEMAS[name], total_rows=lake.row_count(name)),
                "rows_rewritten": refresh.rows_written[name],
                "refresh": "full rebuild" if refresh.full else "incremental",
                "changed_aggregates": refresh.changed_aggregates,
                **refresh.versions,
                **(platform_activity_metadata(lake) if name == "platform_daily" else {}),
            },
        )
