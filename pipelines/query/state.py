"""State as of a time: one aggregate at a recorded instant, any projection at the end
of a day, and any table at a Delta version or timestamp.

"Recorded up to T" means: lines of recorded days before T's day, and lines of T's
day whose ``recorded_at`` is at most T. An aggregate's state as of T is the
latest snapshot before T's day plus that day's events replayed on top, which is
what a full replay of the events recorded up to T gives (tests check it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from pipelines.lake.delta import Lake
from pipelines.lake.projections import SCHEMAS, SNAPSHOTS, read_applied_events, read_bodies
from pipelines.model.fold import APPLIED, FOLDS, STATE_SCHEMAS, referenced_ids
from pipelines.model.project import message_links, project_from_states
from pipelines.model.replay import apply_events
from pipelines.model.snapshots import STATE_COLUMNS
from pipelines.model.threads import resolve_threads
from pipelines.model.views import build_messages


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _states(aggregate_type: str, snapshots: pl.DataFrame) -> pl.DataFrame:
    """Snapshot rows of one aggregate type to its state rows."""
    column = STATE_COLUMNS[aggregate_type]
    return snapshots.select(column).unnest(column).cast(STATE_SCHEMAS[aggregate_type])


def recorded_up_to(at: datetime) -> pl.Expr:
    at = _utc(at)
    return (pl.col("day") < at.date()) | (
        (pl.col("day") == at.date()) & (pl.col("recorded_at") <= at)
    )


def aggregate_state(
    lake: Lake, aggregate_type: str, aggregate_id: str, at: datetime
) -> dict | None:
    """The state of one aggregate from the events recorded up to ``at`` (None if none)."""
    at = _utc(at)
    snapshot = (
        lake.scan(SNAPSHOTS, SCHEMAS[SNAPSHOTS])
        .filter(
            (pl.col("aggregate_type") == aggregate_type)
            & (pl.col("aggregate_id") == aggregate_id)
            & (pl.col("as_of_day") < at.date())
        )
        .sort("as_of_day")
        .tail(1)
        .collect()
    )
    same_day = read_applied_events(
        lake,
        (pl.col("day") == at.date())
        & (pl.col("aggregate_id") == aggregate_id)
        & (pl.col("aggregate_type") == aggregate_type)
        & (pl.col("recorded_at") <= at),
    )
    if not snapshot.is_empty():
        state = _states(aggregate_type, snapshot).row(0, named=True)
        if same_day.is_empty() or same_day["version"].min() > state["version"]:
            return apply_events(aggregate_type, state, same_day.iter_rows(named=True))
    # No snapshot to continue from, or a late lower version: replay this aggregate's history.
    history = read_applied_events(
        lake,
        (pl.col("aggregate_id") == aggregate_id)
        & (pl.col("aggregate_type") == aggregate_type)
        & recorded_up_to(at),
    )
    states = FOLDS[aggregate_type](history)
    return states.row(0, named=True) if not states.is_empty() else None


def states_as_of(lake: Lake, day: date) -> dict[str, pl.DataFrame]:
    """Every aggregate's state at the end of ``day``, from the snapshots alone."""
    key = ["aggregate_type", "aggregate_id", "as_of_day"]
    snapshots = lake.scan(SNAPSHOTS, SCHEMAS[SNAPSHOTS]).filter(pl.col("as_of_day") <= day)
    # the day of each latest snapshot first: gathering states is what costs
    latest = (
        snapshots.group_by("aggregate_type", "aggregate_id")
        .agg(pl.col("as_of_day").max())
        .collect()
    )
    states = {}
    for kind, column in STATE_COLUMNS.items():
        rows = (
            snapshots.filter(pl.col("aggregate_type") == kind)
            .select(*key, column)
            .join(latest.lazy(), on=key, how="semi")
            .sort("aggregate_id")
            .collect()
        )
        states[kind] = _states(kind, rows)
    return states


def projections_as_of(lake: Lake, day: date) -> dict[str, pl.DataFrame]:
    """Every projection as it stood at the end of recorded ``day``.

    States come from the snapshots; bodies from today's ``content`` (content
    files are immutable, so a body verified now was the same then, if present).
    """
    states = states_as_of(lake, day)
    messages = build_messages(
        states["message"], resolve_threads(message_links(states["message"])), read_bodies(lake)
    )
    references = lake.scan("events", None).filter((pl.col("day") <= day) & APPLIED)
    events = references.select(
        "account_id", "room_id", "event_type", "known_type", "status"
    ).collect()
    return project_from_states(messages, states, referenced_ids(events))


def table_as_of(lake: Lake, table: str, version: int | str | datetime) -> pl.DataFrame:
    """A lake table at a Delta version (int) or timestamp (RFC 3339 string or datetime)."""
    if isinstance(version, datetime):
        version = _utc(version).isoformat()
    return lake.scan(table, version=version).collect()
