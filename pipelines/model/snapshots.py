"""Snapshots: each aggregate's state at the end of every recorded day on which it changed.

The state at the end of day D is the fold of the aggregate's applied events
recorded on days <= D, in version order (so a late, lower version recorded on D
rewrites the state from D on). The state is stored as JSON text.
"""

from __future__ import annotations

import polars as pl

from pipelines.model.fold import FOLDS, STATE_IDS

SNAPSHOTS_SCHEMA = pl.Schema(
    {
        "aggregate_type": pl.String(),
        "aggregate_id": pl.String(),
        "as_of_day": pl.Date(),
        "version": pl.Int64(),
        "state": pl.String(),
    }
)
# Bound on the rows of one (aggregate x earlier event) expansion, to bound memory.
_CHUNK_ROWS = 2_000_000


def snapshot_points(events: pl.DataFrame) -> pl.DataFrame:
    """(aggregate_type, aggregate_id, as_of_day): the days on which each aggregate changed."""
    return (
        events.filter(pl.col("known_type") & (pl.col("status") == "applied"))
        .select("aggregate_type", "aggregate_id", as_of_day="day")
        .unique()
    )


def build_snapshots(events: pl.DataFrame) -> pl.DataFrame:
    """Snapshot rows for every aggregate that ``events`` (all of their events) contains."""
    applied = events.filter(pl.col("known_type") & (pl.col("status") == "applied"))
    frames = []
    for aggregate_type, fold in FOLDS.items():
        id_column = STATE_IDS[aggregate_type]
        own = applied.filter(pl.col("aggregate_type") == aggregate_type)
        if own.is_empty():
            continue
        points = snapshot_points(own).select("aggregate_id", "as_of_day")
        for chunk in _chunks(own, points):
            expanded = chunk.join(points, on="aggregate_id").filter(
                pl.col("day") <= pl.col("as_of_day")
            )
            states = fold(expanded, keys=("as_of_day",))
            frames.append(
                states.select(
                    aggregate_type=pl.lit(aggregate_type),
                    aggregate_id=pl.col(id_column),
                    as_of_day="as_of_day",
                    version="version",
                    state=pl.struct(pl.exclude("as_of_day")).struct.json_encode(),
                )
            )
    if not frames:
        return pl.DataFrame(schema=SNAPSHOTS_SCHEMA)
    return (
        pl.concat(frames).cast(SNAPSHOTS_SCHEMA).sort("aggregate_type", "aggregate_id", "as_of_day")
    )


def _chunks(events: pl.DataFrame, points: pl.DataFrame):
    """Split the aggregates so that each chunk's expansion stays under _CHUNK_ROWS rows."""
    cost = (
        events.group_by("aggregate_id")
        .agg(n=pl.len())
        .join(points.group_by("aggregate_id").agg(p=pl.len()), on="aggregate_id")
        .sort("aggregate_id")
        .with_columns(chunk=((pl.col("n") * pl.col("p")).cum_sum() // _CHUNK_ROWS))
    )
    for (_,), ids in cost.group_by("chunk", maintain_order=True):
        yield events.filter(pl.col("aggregate_id").is_in(ids["aggregate_id"].implode()))
