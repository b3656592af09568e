"""Decide which events count: duplicates by event_id, conflicts by (aggregate_id, version).

The rules (spec "Duplicates", "Conflicts", decisions 1, 3, 7, 8):
- lines are ordered by (day, file_index, line_number); "first" means first in it;
- among lines with one ``event_id`` the first counts; a later one is a ``duplicate``
  when its content equals the first's, else a ``duplicate_conflict``;
- among the events that count by id, the first per ``(aggregate_id, version)``
  is ``applied``; a later one is a ``version_conflict``.
Statuses depend only on the set of lines, never on the order they were ingested.
"""

from __future__ import annotations

import orjson
import polars as pl

POSITION = ["day", "file_index", "line_number"]
KEY_COLUMNS = [*POSITION, "event_id", "aggregate_id", "version"]


def repeated_event_ids(candidates: pl.DataFrame) -> pl.Series:
    """The event ids that occur on more than one line (their content must be compared)."""
    return candidates.filter(pl.col("event_id").is_duplicated())["event_id"].unique().sort()


def canonical_content(rows: pl.DataFrame) -> pl.DataFrame:
    """``POSITION`` + ``content``: each line's JSON value in a canonical text (decision 7:
    key order and spacing do not matter; ``1``, ``1.0`` and ``true`` stay different)."""
    content = [
        orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS).decode()
        for line in rows["line"]
    ]
    return rows.select(POSITION).with_columns(content=pl.Series(content, dtype=pl.String))


def resolve_event_status(candidates: pl.DataFrame, contents: pl.DataFrame) -> pl.DataFrame:
    """Status and winner of every candidate line.

    ``candidates`` has ``KEY_COLUMNS`` for every event line (payload-valid) of every day.
    ``contents`` has ``POSITION`` + ``content`` for at least the lines whose event_id repeats.
    Returns, for the lines that share their event_id or their (aggregate_id, version)
    slot with another line, ``KEY_COLUMNS`` + ``status`` + ``winner_day``,
    ``winner_file_index``, ``winner_line_number`` (the line that won this line's id or
    slot; null when the line itself is applied), sorted by position. **Every line not in
    the result is applied**: it shares nothing, so nothing comes before it.
    """
    keys = candidates.select(KEY_COLUMNS)
    shared = keys.select(
        pl.col("event_id").is_duplicated() | pl.struct("aggregate_id", "version").is_duplicated()
    ).to_series()
    return _resolve_shared(keys.filter(shared), contents).sort(POSITION)


def status_of(rows: pl.DataFrame, statuses: pl.DataFrame) -> pl.DataFrame:
    """Join helper: ``rows`` with a ``status`` column taken from ``statuses`` (default applied)."""
    if statuses.is_empty():  # every line of most groups: no join (and no reordering)
        return rows.with_columns(status=pl.lit("applied", dtype=pl.String))
    return rows.join(statuses.select(*POSITION, "status"), on=POSITION, how="left").with_columns(
        pl.col("status").fill_null("applied")
    )


def _resolve_shared(keys: pl.DataFrame, contents: pl.DataFrame) -> pl.DataFrame:
    ordered = keys.sort(POSITION)
    by_id = ordered.with_columns(
        [pl.col(c).first().over("event_id").alias(f"id_{c}") for c in POSITION]
    ).with_columns(is_first_id=pl.col("line_number").cum_count().over("event_id") == 1)

    winners = by_id.filter("is_first_id")
    by_slot = winners.with_columns(
        [pl.col(c).first().over("aggregate_id", "version").alias(f"slot_{c}") for c in POSITION]
    ).with_columns(
        is_first_slot=pl.col("line_number").cum_count().over("aggregate_id", "version") == 1
    )

    content = contents.select([*POSITION, "content"]).unique(POSITION)
    first_content = content.rename({c: f"id_{c}" for c in POSITION}).rename(
        {"content": "first_content"}
    )
    losers_by_id = (
        by_id.filter(~pl.col("is_first_id"))
        .join(content, on=POSITION, how="left")
        .join(first_content, on=[f"id_{c}" for c in POSITION], how="left")
        .select(
            *KEY_COLUMNS,
            status=pl.when(pl.col("content") == pl.col("first_content"))
            .then(pl.lit("duplicate"))
            .otherwise(pl.lit("duplicate_conflict")),
            **{f"winner_{c}": pl.col(f"id_{c}") for c in POSITION},
        )
    )
    by_slot_status = by_slot.select(
        *KEY_COLUMNS,
        status=pl.when("is_first_slot")
        .then(pl.lit("applied"))
        .otherwise(pl.lit("version_conflict")),
        **{
            f"winner_{c}": pl.when("is_first_slot").then(None).otherwise(pl.col(f"slot_{c}"))
            for c in POSITION
        },
    )
    return pl.concat([by_slot_status, losers_by_id])


def conflict_rows(statuses: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """The ``conflicts`` table rows: losing lines whose content differs from the winner's.

    ``candidates`` supplies ``source_file`` for both the loser and the winner line.
    """
    losers = statuses.filter(pl.col("status").is_in(["duplicate_conflict", "version_conflict"]))
    # only the lines involved: candidates span the whole history
    involved = pl.concat(
        [
            losers.select(POSITION),
            losers.select(pl.col(f"winner_{c}").alias(c) for c in POSITION),
        ]
    )
    files = candidates.select([*POSITION, "source_file"])
    files = files.join(involved, on=POSITION, how="semi") if involved.height else files.clear()
    winner_files = files.rename({c: f"winner_{c}" for c in [*POSITION, "source_file"]})
    winner_ids = statuses.select(
        *[pl.col(c).alias(f"winner_{c}") for c in POSITION], winner_event_id=pl.col("event_id")
    )
    return (
        losers.join(files, on=POSITION, how="left")
        .join(winner_files, on=[f"winner_{c}" for c in POSITION], how="left")
        .join(winner_ids, on=[f"winner_{c}" for c in POSITION], how="left")
        .select(
            "day",
            kind=pl.col("status"),
            event_id="event_id",
            aggregate_id="aggregate_id",
            version="version",
            source_file="source_file",
            line_number="line_number",
            winner_event_id="winner_event_id",
            winner_day="winner_day",
            winner_source_file="winner_source_file",
            winner_line_number="winner_line_number",
        )
        .sort(POSITION[0], "source_file", "line_number")
    )


def version_gaps(applied: pl.DataFrame) -> pl.DataFrame:
    """Aggregates whose applied versions skip numbers: aggregate_id, missing versions."""
    return (
        applied.group_by("aggregate_type", "aggregate_id")
        .agg(versions=pl.col("version").unique().sort())
        .with_columns(
            missing=pl.int_ranges(1, pl.col("versions").list.max() + 1)
            .list.set_difference(pl.col("versions"))
            .list.sort()
        )
        .filter(pl.col("missing").list.len() > 0)
        .select("aggregate_type", "aggregate_id", "missing")
        .sort("aggregate_id")
    )
