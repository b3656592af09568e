"""Search assets: body embeddings and the full-text + vector index of the live messages."""

from datetime import date

import dagster as dg

from pipelines.assets.metadata import column_schema, preview
from pipelines.resources import LakehouseResource
from pipelines.search.build import FULLTEXT_DIR, search_dir, update_embeddings, update_index
from pipelines.search.documents import DOCUMENTS, DOCUMENTS_SCHEMA, MESSAGES
from pipelines.search.embed import EMBEDDINGS, EMBEDDINGS_SCHEMA, MODEL_ID

SEARCH = "search"
SEARCH_INDEX = "search_index"


def _weeks(weeks: list[date] | None) -> str:
    return "all" if weeks is None else ", ".join(map(str, weeks)) or "none"


@dg.asset(
    name=EMBEDDINGS,
    description=(
        "One all-MiniLM-L6-v2 vector (int8 ONNX, 384 float32, unit length) per distinct body "
        "of a live message, keyed by content CID: a body is embedded once, ever. Incremental: "
        "only bodies of messages partitions changed since the last run are looked at."
    ),
    group_name=SEARCH,
    kinds={"onnx", "delta"},
    owners=["team:data-platform"],
    tags={"layer": "gold"},
    deps=[MESSAGES],
    automation_condition=dg.AutomationCondition.eager(),
    pool="lake_search",
)
def embeddings(lakehouse: LakehouseResource) -> dg.MaterializeResult:
    update = update_embeddings(lakehouse.lake)
    rate = update.embedded / update.seconds_embedding if update.seconds_embedding else 0.0
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": update.total,
            "dagster/column_schema": column_schema(EMBEDDINGS_SCHEMA),
            "embedded": update.embedded,
            "bodies_seen": update.bodies_seen,
            "bodies_per_second": round(rate, 1),
            "messages_version": str(update.messages_version),
            "weeks_scanned": _weeks(update.weeks),
            "model": MODEL_ID,
        }
    )


@dg.asset(
    name=SEARCH_INDEX,
    description=(
        "Search index of the live messages (latest body after edits, deleted ones never): "
        "tantivy BM25 full text with phrases, prefixes and filters, plus exact k-NN over the "
        "embeddings, under <lake>/search/. Incremental: documents of changed messages "
        "partitions are diffed against search/documents and only the difference is applied."
    ),
    group_name=SEARCH,
    kinds={"tantivy", "numpy", "delta"},
    owners=["team:data-platform"],
    tags={"layer": "gold"},
    deps=[MESSAGES, EMBEDDINGS],
    automation_condition=dg.AutomationCondition.eager(),
    pool="lake_search",
)
def search_index(lakehouse: LakehouseResource) -> dg.MaterializeResult:
    lake = lakehouse.lake
    update = update_index(lake)
    state = update.state
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": state.documents,
            "dagster/column_schema": column_schema(DOCUMENTS_SCHEMA),
            "preview": preview(update.sample),
            "refresh": "full rebuild" if update.rebuilt else "incremental",
            "weeks_compared": _weeks(update.weeks),
            "documents_added": update.added,
            "documents_removed": update.removed,
            "vectors": state.vectors,
            "vectors_added": update.vectors_added,
            "vectors_removed": update.vectors_removed,
            "messages_version": str(state.messages_version),
            "embeddings_version": str(state.embeddings_version),
            "fulltext_path": dg.MetadataValue.path(str(search_dir(lake) / FULLTEXT_DIR)),
            "documents_path": dg.MetadataValue.path(str(lake.path(DOCUMENTS))),
        }
    )
