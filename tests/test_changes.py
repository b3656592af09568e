"""Counts adjusted by rewritten rows (model/changes.py) equal counts taken afresh.

Random ``messages`` tables are rewritten at random (rows changed, deleted, added,
removed); the stored measures of the old table, adjusted by the old and new rows of
what was rewritten (and recounted where the functions say so), must equal the measures
of the new table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.model.changes import (
    adjust_account_measures,
    adjust_daily,
    adjust_room_measures,
    adjust_unread,
    count_unread,
    unread_pairs_to_recount,
)
from pipelines.model.fold import MESSAGE_STATE_SCHEMA
from pipelines.model.views import (
    ACCOUNT_MEASURES_SCHEMA,
    PLATFORM_DAILY_INPUT,
    ROOM_MEASURES_SCHEMA,
    UNREAD_SCHEMA,
    account_measures,
    build_account_daily,
    build_platform_daily,
    build_unread,
    room_measures,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PEOPLE = ["a", "b", "c", "d"]
ROOMS = ["r1", "r2"]

message = st.fixed_dictionaries(
    {
        "account_id": st.sampled_from(PEOPLE),
        "room_id": st.sampled_from(ROOMS),
        "minute": st.integers(0, 5),  # few distinct times: ties at first/last are common
        "deleted": st.booleans(),
        "reactors": st.lists(st.sampled_from(PEOPLE), max_size=3, unique=True),
    }
)


def frame(rows: dict[str, dict]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "message_id": message_id,
                "account_id": r["account_id"],
                "room_id": r["room_id"],
                "created_at": T0 + timedelta(minutes=r["minute"]),
                "deleted": r["deleted"],
                "reaction_count": len(r["reactors"]),
                "reactors": [{"account_id": a, "emoji": "+1"} for a in r["reactors"]],
            }
            for message_id, r in sorted(rows.items())
        ],
        schema={
            "message_id": pl.String,
            "account_id": pl.String,
            "room_id": pl.String,
            "created_at": pl.Datetime("us", "UTC"),
            "deleted": pl.Boolean,
            "reaction_count": pl.Int64,
            "reactors": MESSAGE_STATE_SCHEMA["reactions_current"],
        },
    )


histories = st.tuples(
    st.dictionaries(st.sampled_from([f"m{i}" for i in range(8)]), message, max_size=8),
    st.dictionaries(st.sampled_from([f"m{i}" for i in range(10)]), st.none() | message, max_size=6),
)


def rewrite(old: dict, changes: dict) -> tuple[dict, pl.DataFrame, pl.DataFrame]:
    """The new table and the (old rows, new rows) of the rewritten messages."""
    new = {k: v for k, v in old.items() if k not in changes}
    new.update({k: v for k, v in changes.items() if v is not None})
    old_rows = frame({k: v for k, v in old.items() if k in changes})
    new_rows = frame({k: v for k, v in changes.items() if v is not None})
    return new, old_rows, new_rows


def no_threads() -> pl.DataFrame:
    return pl.DataFrame(schema={"root_message_id": pl.String})


def recounted(measures: pl.DataFrame, recount: pl.Series, truth: pl.DataFrame, key: str):
    times = [c for c in measures.columns if c.endswith("_at")]
    fresh = recount.to_frame(key).join(truth.select(key, *times), on=key, how="left")
    return measures.update(fresh, on=key, include_nulls=True)


def every(measures: pl.DataFrame, key: str, ids: list[str]) -> pl.DataFrame:
    """The measures of every id (counts zero where there is no row)."""
    counts = [c for c, t in measures.schema.items() if t == pl.Int64]
    return (
        pl.DataFrame({key: ids})
        .join(measures, on=key, how="left")
        .with_columns(pl.col(counts).fill_null(0))
    )


@settings(max_examples=300, deadline=None)
@given(histories)
def test_adjusted_account_and_room_measures_equal_a_recount(history):
    old, changes = history
    new, old_rows, new_rows = rewrite(old, changes)
    empty = pl.Series(dtype=pl.String)

    truth = account_measures(frame(new), no_threads())
    stored = account_measures(frame(old), no_threads())
    measures, recount = adjust_account_measures(stored, old_rows, new_rows, empty, empty)
    measures = recounted(measures, recount, truth, "account_id")
    assert every(measures, "account_id", PEOPLE).equals(
        every(truth.cast(ACCOUNT_MEASURES_SCHEMA), "account_id", PEOPLE)
    )

    truth = room_measures(frame(new))
    measures, recount = adjust_room_measures(room_measures(frame(old)), old_rows, new_rows)
    measures = recounted(measures, recount, truth, "room_id")
    assert every(measures, "room_id", ROOMS).equals(
        every(truth.cast(ROOM_MEASURES_SCHEMA), "room_id", ROOMS)
    )


markers = st.dictionaries(
    st.tuples(st.sampled_from(PEOPLE), st.sampled_from(ROOMS)), st.integers(0, 6), max_size=5
)


@settings(max_examples=300, deadline=None)
@given(histories, markers, markers)
def test_adjusted_unread_equals_a_recount(history, old_marks, new_marks):
    old, changes = history
    new, old_rows, new_rows = rewrite(old, changes)
    rooms = pl.DataFrame({"room_id": ROOMS, "members": [PEOPLE[:3], PEOPLE[1:]]})

    def marker_rows(marks: dict) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    "marker_id": f"{a}/{r}",
                    "account_id": a,
                    "room_id": r,
                    "read_up_to": T0 + timedelta(minutes=m),
                }
                for (a, r), m in sorted(marks.items())
            ],
            schema={
                "marker_id": pl.String,
                "account_id": pl.String,
                "room_id": pl.String,
                "read_up_to": pl.Datetime("us", "UTC"),
            },
        )

    moved = {k: v for k, v in new_marks.items() if old_marks.get(k) != v}
    current = {**old_marks, **new_marks}
    stored = build_unread(rooms, marker_rows(old_marks), frame(old))
    truth = build_unread(rooms, marker_rows(current), frame(new))

    members = rooms.select("room_id", account_id="members").explode("account_id")
    recount = unread_pairs_to_recount(members, stored, marker_rows(moved))
    adjusted = adjust_unread(members, stored, recount, old_rows, new_rows)
    positions = recount.join(
        marker_rows(current).select("account_id", "room_id", "read_up_to"),
        on=["account_id", "room_id"],
        how="left",
    )
    # as a refresh reads them: only the messages after the earliest position
    marked = positions["read_up_to"].null_count() == 0 and not positions.is_empty()
    since = positions["read_up_to"].min() if marked else None
    after = frame(new).filter(pl.col("created_at") > since) if since is not None else frame(new)
    counted = count_unread(positions, after)
    result = pl.concat([adjusted, counted]).sort("account_id", "room_id")
    assert result.equals(truth.cast(UNREAD_SCHEMA).sort("account_id", "room_id"))


activity = st.fixed_dictionaries(
    {
        "account_id": st.sampled_from([*PEOPLE, None]),
        "platform": st.sampled_from(["slack", "matrix", None]),
        "day": st.integers(0, 3),
        "edits": st.lists(st.integers(0, 3), max_size=3),
        "deleted": st.none() | st.integers(0, 3),
        "adds": st.lists(
            st.tuples(st.sampled_from([*PEOPLE, None]), st.integers(0, 3)), max_size=3
        ),
        "root": st.booleans(),
    }
)
activity_histories = st.tuples(
    st.dictionaries(st.sampled_from([f"m{i}" for i in range(8)]), activity, max_size=8),
    st.dictionaries(
        st.sampled_from([f"m{i}" for i in range(10)]), st.none() | activity, max_size=6
    ),
)


def activity_frame(rows: dict[str, dict]) -> pl.DataFrame:
    def at(day: int, hour: int = 12) -> datetime:
        return T0 + timedelta(days=day, hours=hour)

    return pl.DataFrame(
        [
            {
                "message_id": message_id,
                "platform": r["platform"],
                "account_id": r["account_id"],
                "created_at": at(r["day"]),
                "deleted": r["deleted"] is not None,
                "deleted_at": None if r["deleted"] is None else at(r["deleted"], 23),
                "edit_times": [at(d, 13) for d in r["edits"]],
                "reaction_adds": [
                    {"account_id": a, "emoji": "+1", "at": at(d, 14)} for a, d in r["adds"]
                ],
            }
            for message_id, r in sorted(rows.items())
        ],
        schema={c: MESSAGE_STATE_SCHEMA[c] for c in PLATFORM_DAILY_INPUT},
    )


def roots_of(rows: dict[str, dict]) -> pl.DataFrame:
    return pl.DataFrame(
        {"root_message_id": [k for k, r in sorted(rows.items()) if r["root"]]},
        schema={"root_message_id": pl.String},
    )


@settings(max_examples=300, deadline=None)
@given(activity_histories)
def test_adjusted_daily_counts_equal_a_recount(history):
    old, changes = history
    new = {k: v for k, v in old.items() if k not in changes}
    new.update({k: v for k, v in changes.items() if v is not None})
    old_rows = activity_frame({k: v for k, v in old.items() if k in changes})
    new_rows = activity_frame({k: v for k, v in changes.items() if v is not None})

    def tables(rows: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
        accounts = build_account_daily(activity_frame(rows))
        return build_platform_daily(activity_frame(rows), roots_of(rows), accounts), accounts

    def starts(rows: pl.DataFrame, of: dict) -> pl.DataFrame:
        return rows.filter(pl.col("message_id").is_in([k for k, r in of.items() if r["root"]]))

    stored_daily, stored_accounts = tables(old)
    daily, accounts, keys = adjust_daily(
        stored_daily,
        stored_accounts,
        old_rows,
        new_rows,
        starts(old_rows, old),
        starts(new_rows, {k: v for k, v in changes.items() if v is not None}),
    )
    truth_daily, truth_accounts = tables(new)
    for stored, adjusted, truth, key in (
        (stored_daily, daily, truth_daily, ["platform", "day"]),
        (stored_accounts, accounts, truth_accounts, ["platform", "day", "account_id"]),
    ):
        kept = stored.join(keys, on=["platform", "day"], how="anti", nulls_equal=True)
        result = pl.concat([kept, adjusted]).sort(key, nulls_last=True)
        assert result.equals(truth.sort(key, nulls_last=True))
