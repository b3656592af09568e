"""The DuckDB catalog asset: one view per Delta table, for notebooks and the DuckDB CLI."""

import dagster as dg

from pipelines.assets.model import DESCRIPTIONS, MODEL
from pipelines.lake.tables import CONTENT, EVENTS
from pipelines.query.catalog import build_catalog, default_catalog_path
from pipelines.resources import LakehouseResource

DUCKDB_CATALOG = "duckdb_catalog"


@dg.asset(
    name=DUCKDB_CATALOG,
    description="A DuckDB file next to the lake (`data/lake.duckdb`, or LAKEHOUSE_CATALOG) "
    "with one view per Delta table over `delta_scan`, so notebooks and the DuckDB CLI query "
    "the lake by table name. Open it with `pipelines.query.catalog.connect()` (loads the "
    "delta extension).",
    group_name=MODEL,
    kinds={"duckdb"},
    owners=["team:data-platform"],
    tags={"layer": "serving"},
    deps=[EVENTS, CONTENT, *DESCRIPTIONS],
)
def duckdb_catalog(lakehouse: LakehouseResource) -> dg.MaterializeResult:
    """Rewrite the catalog file; its views read the tables' current versions at query time."""
    catalog = build_catalog(lakehouse.lake.root, default_catalog_path(lakehouse.lake.root))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(catalog.path)),
            "views": len(catalog.rows),
            "dagster/row_count": len(catalog.rows),
            **{f"rows/{table}": rows for table, rows in catalog.rows.items()},
        }
    )
