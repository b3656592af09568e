"""``event_keys``: the keys of every ``events`` line, in one file a week.

Two steps need a key of every line of every day: an ingest, to decide whether a new
line repeats an event id or an (aggregate_id, version) slot already recorded, and a
refresh, to find the days that hold an aggregate's events. ``events`` keeps a file a
day, and a scan of any column of it pays about 0.15 ms a file (0.07-0.13 s at a year);
``event_keys`` holds, for each line, its position, 64-bit hashes of its event id, slot
and aggregate id, and its status when not applied, partitioned by week: ~50 files.

It is derived from ``events`` and trusted only when its last commit names the
``events`` version it mirrors and the hash function it was built with (polars does not
promise stable hashes across releases); otherwise the keys are computed from
``events`` and the table is written again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import polars as pl

from pipelines.ingest.resolve import POSITION
from pipelines.lake.delta import Lake
from pipelines.lake.tables import EVENTS, EVENTS_SCHEMA
from pipelines.model.weeks import week_of

EVENT_KEYS = "event_keys"
EVENT_KEYS_SCHEMA = pl.Schema(
    {
        "week": pl.Date(),  # the partition: the Monday of ``day``
        "day": pl.Date(),
        "file_index": pl.Int32(),
        "line_number": pl.Int64(),
        "id": pl.Int64(),  # hash of event_id
        "slot": pl.Int64(),  # hash of (aggregate_id, version)
        "aggregate": pl.Int64(),  # hash of aggregate_id
        "status": pl.String(),  # null when applied
    }
)
# Delta has no unsigned integers: the hashes are stored as their signed bit patterns.
KEY_HASHES = {
    "id": pl.col("event_id").hash().reinterpret(signed=True),
    "slot": pl.struct("aggregate_id", "version").hash().reinterpret(signed=True),
    "aggregate": pl.col("aggregate_id").hash().reinterpret(signed=True),
}


def key_rows(events: pl.LazyFrame) -> pl.LazyFrame:
    """``EVENT_KEYS_SCHEMA`` rows of ``events`` rows."""
    return events.select(
        week=week_of("day"),
        **{c: pl.col(c) for c in POSITION},
        **KEY_HASHES,
        status=pl.when(pl.col("status") != "applied").then("status"),
    )


def aggregate_hashes(ids: pl.Series) -> pl.Series:
    """The ``aggregate`` hashes of aggregate ids."""
    return ids.to_frame("aggregate_id").select(aggregate=KEY_HASHES["aggregate"])["aggregate"]


def _hash_function() -> str:
    """The hashes of fixed keys: a different hash function gives different ones."""
    probe = pl.DataFrame({"event_id": ["e"], "aggregate_id": ["a"], "version": [1]})
    return ",".join(str(v) for v in probe.select(**KEY_HASHES).row(0))


def mirrors(lake: Lake, events_version: int | None) -> bool:
    """Whether ``event_keys`` holds the keys of ``events`` at ``events_version``."""
    if events_version is None or not lake.exists(EVENT_KEYS):
        return False
    meta = lake.commit_metadata(EVENT_KEYS)
    recorded = meta.get("events_version")
    return (
        recorded is not None
        # the same version, or one that reads the same (only a vacuum committed since)
        and (
            recorded == str(events_version)
            or int(recorded) == lake.data_version(EVENTS, events_version)
        )
        and meta.get("hash_function") == _hash_function()
        and lake.column_names(EVENT_KEYS) == EVENT_KEYS_SCHEMA.names()
    )


def scan_keys(lake: Lake, events_version: int | None, mirrored: bool) -> pl.LazyFrame:
    """The keys of every line of ``events`` at ``events_version`` (None: no table yet):
    from ``event_keys`` when it mirrors that version (``mirrors``), else from ``events``."""
    if events_version is None:
        return pl.LazyFrame(schema=EVENT_KEYS_SCHEMA)
    if mirrored:
        return lake.scan(EVENT_KEYS, EVENT_KEYS_SCHEMA)
    return key_rows(lake.scan(EVENTS, EVENTS_SCHEMA, version=events_version))


def rewrite_keys(lake: Lake, events_version: int, rows: pl.DataFrame | None = None) -> None:
    """Write ``event_keys`` whole, mirroring ``events`` at ``events_version``: from
    ``rows`` (``key_rows`` of every line) or, if None, from ``events`` itself."""
    if rows is None:
        rows = key_rows(lake.scan(EVENTS, EVENTS_SCHEMA, version=events_version)).collect()
    lake.write(
        EVENT_KEYS, rows.sort(_ORDER), partition_by=["week"], metadata=_metadata(events_version)
    )


def replace_key_days(
    lake: Lake, events_version: int, days: Iterable[date], rows: pl.DataFrame
) -> None:
    """Bring ``event_keys`` from the ``events`` version it mirrors to ``events_version``,
    when only ``days`` changed in between: ``rows`` are their lines' ``key_rows``."""
    days = sorted(set(days))
    of_days = pl.DataFrame({"day": days}, schema={"day": pl.Date}).select(week_of("day"))
    weeks = of_days["day"].unique().to_list()
    kept = lake.read(
        EVENT_KEYS,
        EVENT_KEYS_SCHEMA,
        where=pl.col("week").is_in(weeks) & ~pl.col("day").is_in(days),
    )
    rows = pl.concat([kept, rows]).sort(_ORDER)
    lake.replace_partitions(EVENT_KEYS, rows, "week", weeks, metadata=_metadata(events_version))


_ORDER = ["week", *POSITION]


def _metadata(events_version: int) -> dict[str, str]:
    return {"events_version": str(events_version), "hash_function": _hash_function()}
