"""Read models derived from aggregate states: messages, accounts, rooms, platform_daily, unread.

Pure polars: states (from ``fold.py``), content and each other in, view rows out.
Each function gets complete inputs for the rows it builds.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from pipelines.ingest.catalog import TIME
from pipelines.model.fold import ACCOUNT_STATE_SCHEMA, MESSAGE_STATE_SCHEMA, ROOM_STATE_SCHEMA
from pipelines.model.weeks import week_of

REACTION_COUNT = pl.Struct({"emoji": pl.String(), "count": pl.Int64()})

MESSAGES_SCHEMA = pl.Schema(
    {
        "message_id": pl.String(),
        "account_id": pl.String(),
        "room_id": pl.String(),
        "platform": pl.String(),
        "thread_id": pl.String(),
        "reply_to": pl.String(),
        "depth": pl.Int64(),
        "kind": pl.Int64(),
        "created_at": TIME,
        "content_cid": pl.String(),
        "body": pl.String(),
        "body_status": pl.String(),
        "body_utf8_valid": pl.Boolean(),
        "deleted": pl.Boolean(),
        "deleted_at": TIME,
        "delete_reason": pl.String(),
        "edit_count": pl.Int64(),
        "last_edited_at": TIME,
        "reactions": pl.List(REACTION_COUNT),
        "reaction_count": pl.Int64(),
        "reactors": MESSAGE_STATE_SCHEMA["reactions_current"],
        "tags": MESSAGE_STATE_SCHEMA["tags"],
        "attachments": MESSAGE_STATE_SCHEMA["attachments"],
        "explicit_thread_id": pl.String(),
        "platform_id": pl.String(),
        "url": pl.String(),
        "author_did": pl.String(),
        "imported_at": TIME,
        "schema_version": pl.Int64(),
        "edit_times": MESSAGE_STATE_SCHEMA["edit_times"],
        "reaction_adds": MESSAGE_STATE_SCHEMA["reaction_adds"],
        "ignored_events": pl.Int64(),
        "version": pl.Int64(),
        "created_week": pl.Date(),
    }
)

ACCOUNTS_SCHEMA = pl.Schema(
    {
        "account_id": pl.String(),
        "known": pl.Boolean(),
        "display_name": pl.String(),
        "handle": pl.String(),
        "did": pl.String(),
        "platform": pl.String(),
        "created_at": TIME,
        "message_count": pl.Int64(),
        "thread_count": pl.Int64(),
        "first_message_at": TIME,
        "last_message_at": TIME,
        "reactions_given": pl.Int64(),
        "reactions_received": pl.Int64(),
        "version": pl.Int64(),
    }
)

ROOMS_SCHEMA = pl.Schema(
    {
        "room_id": pl.String(),
        "known": pl.Boolean(),
        "name": pl.String(),
        "type": pl.String(),
        "platform": pl.String(),
        "server_id": pl.String(),
        "server_name": pl.String(),
        "topic": pl.String(),
        "created_at": TIME,
        "member_count": pl.Int64(),
        "members": pl.List(pl.String()),
        "message_count": pl.Int64(),
        "last_message_at": TIME,
        "version": pl.Int64(),
    }
)

PLATFORM_DAILY_SCHEMA = pl.Schema(
    {
        "platform": pl.String(),
        "day": pl.Date(),
        "messages_created": pl.Int64(),
        "messages_edited": pl.Int64(),
        "messages_deleted": pl.Int64(),
        "reactions_added": pl.Int64(),
        "active_accounts": pl.Int64(),
        "new_threads": pl.Int64(),
    }
)

ACCOUNT_DAILY_SCHEMA = pl.Schema(
    {
        "platform": pl.String(),
        "day": pl.Date(),
        "account_id": pl.String(),
        "messages_created": pl.Int64(),
        "reactions_added": pl.Int64(),
    }
)

UNREAD_SCHEMA = pl.Schema(
    {
        "account_id": pl.String(),
        "room_id": pl.String(),
        "unread_count": pl.Int64(),
        "read_up_to": TIME,
    }
)


# The partition of a message (see ``model/weeks.py``).
CREATED_WEEK = week_of("created_at")

# The ``messages`` columns each view reads: a refresh reads no more than these.
ACCOUNTS_INPUT = ("message_id", "account_id", "deleted", "created_at", "reaction_count", "reactors")
ROOMS_INPUT = ("room_id", "deleted", "created_at")
UNREAD_INPUT = ("room_id", "account_id", "deleted", "created_at")
PLATFORM_DAILY_INPUT = (
    "message_id",
    "platform",
    "account_id",
    "created_at",
    "deleted",
    "deleted_at",
    "edit_times",
    "reaction_adds",
)


def build_messages(
    states: pl.DataFrame, threads: pl.DataFrame, bodies: pl.DataFrame
) -> pl.DataFrame:
    """``messages`` rows: message states with their thread and body.

    ``threads`` has ``message_id, thread_id, depth``; ``bodies`` has the content rows
    (``cid, status, text, utf8_valid``) of body files. Body status (decision 16):
    none when deleted, inline for an unedited v1 text, else ok / hash_mismatch /
    missing by the content file of the current CID.
    """
    files = bodies.select(
        pl.col("cid").alias("content_cid"),
        pl.col("status").alias("file_status"),
        pl.col("text").alias("file_text"),
        pl.col("utf8_valid").alias("file_utf8_valid"),
    ).unique("content_cid")
    reactions = (
        states.select("message_id", reaction=pl.col("reactions_current"))
        .explode("reaction")
        .drop_nulls("reaction")
        .group_by("message_id", emoji=pl.col("reaction").struct.field("emoji"))
        .agg(count=pl.len())
        .sort("message_id", "emoji")
        .group_by("message_id", maintain_order=True)
        .agg(reactions=pl.struct("emoji", "count"))
    )
    return (
        states.join(threads, on="message_id", how="left")
        .join(files, on="content_cid", how="left")
        .join(reactions, on="message_id", how="left")
        .with_columns(
            body_status=pl.when(pl.col("deleted"))
            .then(pl.lit("none"))
            .when(pl.col("body_inline").is_not_null())
            .then(pl.lit("inline"))
            .when(pl.col("file_status").is_null())
            .then(pl.lit("missing"))
            .otherwise(pl.col("file_status")),
        )
        .with_columns(
            body=pl.when(pl.col("body_status") == "inline")
            .then(pl.col("body_inline"))
            .when(pl.col("body_status") == "ok")
            .then(pl.col("file_text")),
            body_utf8_valid=pl.when(pl.col("body_status") == "ok").then(pl.col("file_utf8_valid")),
            reactions=pl.col("reactions").fill_null(pl.lit([], dtype=pl.List(REACTION_COUNT))),
            reaction_count=pl.col("reactions_current").list.len().cast(pl.Int64),
            reactors=pl.col("reactions_current"),
            created_week=CREATED_WEEK,
        )
        .select(MESSAGES_SCHEMA.names())
        .cast(MESSAGES_SCHEMA)
        .sort("message_id")
    )


# What ``accounts`` counts over messages and threads (the rest is the account's state).
ACCOUNT_MEASURES_SCHEMA = pl.Schema(
    {
        c: ACCOUNTS_SCHEMA[c]
        for c in (
            "account_id",
            "message_count",
            "thread_count",
            "first_message_at",
            "last_message_at",
            "reactions_given",
            "reactions_received",
        )
    }
)
_ACCOUNT_COUNTS = ("message_count", "thread_count", "reactions_given", "reactions_received")


def build_accounts(
    states: pl.DataFrame,
    referenced: pl.Series,
    messages: pl.DataFrame,
    threads: pl.DataFrame,
) -> pl.DataFrame:
    """``accounts`` rows for created accounts and every account referenced (decision 15).

    Counts are over live messages; reactions given and received count the current
    reactions on live messages (decision 10); thread_count counts threads whose root
    message the account wrote.
    """
    return account_rows(states, referenced, account_measures(messages, threads))


def account_measures(messages: pl.DataFrame, threads: pl.DataFrame) -> pl.DataFrame:
    """Per account, what ``accounts`` counts over ``messages`` and ``threads``."""
    live = messages.filter(~pl.col("deleted"))
    authored = live.group_by("account_id").agg(
        message_count=pl.len(),
        first_message_at=pl.col("created_at").min(),
        last_message_at=pl.col("created_at").max(),
        reactions_received=pl.col("reaction_count").sum(),
    )
    given = (
        live.select(pl.col("reactors").explode())
        .unnest("reactors")
        .drop_nulls("account_id")
        .group_by("account_id")
        .agg(reactions_given=pl.len())
    )
    started = (
        threads.join(
            messages.select(root_message_id="message_id", account_id="account_id"),
            on="root_message_id",
        )
        .group_by("account_id")
        .agg(thread_count=pl.len())
    )
    ids = (
        pl.concat([f.select("account_id") for f in (authored, given, started)])
        .drop_nulls()
        .unique()
    )
    return (
        ids.join(authored, on="account_id", how="left")
        .join(given, on="account_id", how="left")
        .join(started, on="account_id", how="left")
        .with_columns(pl.col(_ACCOUNT_COUNTS).fill_null(0))
        .select(ACCOUNT_MEASURES_SCHEMA.names())
        .cast(ACCOUNT_MEASURES_SCHEMA)
    )


def account_rows(
    states: pl.DataFrame, referenced: pl.Series, measures: pl.DataFrame
) -> pl.DataFrame:
    """``accounts`` rows: one per account with a state or referenced, with its measures
    (zero when it has none)."""
    ids = pl.concat([states["account_id"], referenced.cast(pl.String)]).unique().sort()
    return (
        pl.DataFrame({"account_id": ids})
        .join(states, on="account_id", how="left")
        .join(measures, on="account_id", how="left")
        .with_columns(
            *(pl.col(c).fill_null(0) for c in _ACCOUNT_COUNTS),
            known=pl.col("created").fill_null(False),
        )
        .select(ACCOUNTS_SCHEMA.names())
        .cast(ACCOUNTS_SCHEMA)
        .sort("account_id")
    )


ROOM_MEASURES_SCHEMA = pl.Schema(
    {c: ROOMS_SCHEMA[c] for c in ("room_id", "message_count", "last_message_at")}
)


def build_rooms(
    states: pl.DataFrame, referenced: pl.Series, messages: pl.DataFrame
) -> pl.DataFrame:
    """``rooms`` rows for created rooms and every room referenced; counts of live messages."""
    return room_rows(states, referenced, room_measures(messages))


def room_measures(messages: pl.DataFrame) -> pl.DataFrame:
    """Per room, what ``rooms`` counts over ``messages``."""
    return (
        messages.filter(~pl.col("deleted"))
        .drop_nulls("room_id")
        .group_by("room_id")
        .agg(message_count=pl.len(), last_message_at=pl.col("created_at").max())
        .cast(ROOM_MEASURES_SCHEMA)
    )


def room_rows(states: pl.DataFrame, referenced: pl.Series, measures: pl.DataFrame) -> pl.DataFrame:
    """``rooms`` rows: one per room with a state or referenced, with its measures."""
    ids = pl.concat([states["room_id"], referenced.cast(pl.String)]).unique().sort()
    return (
        pl.DataFrame({"room_id": ids})
        .join(states, on="room_id", how="left")
        .join(measures, on="room_id", how="left")
        .with_columns(
            known=pl.col("created").fill_null(False),
            members=pl.col("members").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            message_count=pl.col("message_count").fill_null(0),
        )
        .with_columns(member_count=pl.col("members").list.len())
        .select(ROOMS_SCHEMA.names())
        .cast(ROOMS_SCHEMA)
        .sort("room_id")
    )


DAILY_KEY = ["platform", "day"]
ACCOUNT_DAILY_KEY = [*DAILY_KEY, "account_id"]
# Per kind of activity (``activities``), the ``platform_daily`` column that counts it.
DAILY_COUNTS = {
    "created": "messages_created",
    "edited": "messages_edited",
    "deleted": "messages_deleted",
    "reacted": "reactions_added",
}


def activities(messages: pl.DataFrame, carry: Sequence[str] = ()) -> dict[str, pl.DataFrame]:
    """Every activity of ``messages`` (``PLATFORM_DAILY_INPUT``) with its platform and the
    UTC day of its own time (decision 13), by kind: ``created`` and ``reacted`` with the
    account that acted, ``edited`` and ``deleted``. ``carry`` columns come along."""
    day = pl.col("at").dt.date().alias("day")
    reacted = (
        messages.select("platform", *carry, adds="reaction_adds")
        .explode("adds")
        .drop_nulls("adds")
        .select(
            "platform",
            *carry,
            pl.col("adds").struct.field("account_id"),
            at=pl.col("adds").struct.field("at"),
        )
    )
    return {
        "created": messages.select(
            "platform", *carry, "account_id", day=pl.col("created_at").dt.date()
        ),
        "edited": messages.select("platform", *carry, at="edit_times")
        .explode("at")
        .drop_nulls("at")
        .select("platform", *carry, day),
        "deleted": messages.filter("deleted").select(
            "platform", *carry, day=pl.col("deleted_at").dt.date()
        ),
        "reacted": reacted.select("platform", *carry, "account_id", day),
    }


def root_messages(threads: pl.DataFrame, messages: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``messages`` that are the root message of one of ``threads``."""
    return threads.select(message_id="root_message_id").join(messages, on="message_id")


def build_account_daily(messages: pl.DataFrame) -> pl.DataFrame:
    """Per platform, UTC day and account: the messages it created and the reactions it
    added that day (decision 13); the accounts active on a platform's day."""
    acts = activities(messages)
    created = acts["created"].group_by(ACCOUNT_DAILY_KEY).agg(messages_created=pl.len())
    reacted = acts["reacted"].group_by(ACCOUNT_DAILY_KEY).agg(reactions_added=pl.len())
    return account_daily_rows(
        created.join(reacted, on=ACCOUNT_DAILY_KEY, how="full", coalesce=True, nulls_equal=True)
    )


def account_daily_rows(counts: pl.DataFrame) -> pl.DataFrame:
    """``account_daily`` rows from (platform, day, account_id, messages_created,
    reactions_added) counts: those with some activity, in key order."""
    return (
        counts.with_columns(pl.col("messages_created", "reactions_added").fill_null(0))
        .filter((pl.col("messages_created") != 0) | (pl.col("reactions_added") != 0))
        .select(ACCOUNT_DAILY_SCHEMA.names())
        .cast(ACCOUNT_DAILY_SCHEMA)
        .sort(ACCOUNT_DAILY_KEY, nulls_last=True)
    )


def build_platform_daily(
    messages: pl.DataFrame, threads: pl.DataFrame, account_daily: pl.DataFrame
) -> pl.DataFrame:
    """Per platform and UTC day of each activity's own time (decision 13); the active
    accounts are ``account_daily``'s (``build_account_daily(messages)``)."""
    acts = activities(messages)
    starts = root_messages(threads, messages.select("message_id", "platform", "created_at")).select(
        "platform", day=pl.col("created_at").dt.date()
    )
    counts = [
        acts[kind].group_by(DAILY_KEY).agg(pl.len().alias(column))
        for kind, column in DAILY_COUNTS.items()
    ]
    counts.append(starts.group_by(DAILY_KEY).agg(new_threads=pl.len()))
    counts.append(account_daily.group_by(DAILY_KEY).agg(active_accounts=pl.len()))
    return platform_daily_rows(counts)


def platform_daily_rows(counts: list[pl.DataFrame]) -> pl.DataFrame:
    """``platform_daily`` rows from frames of (platform, day, some of its count
    columns): a row for every (platform, day) with a count that is not 0."""
    result = pl.concat([c.select(DAILY_KEY) for c in counts]).unique()
    for frame in counts:
        result = result.join(frame, on=DAILY_KEY, how="left", nulls_equal=True)
    measures = [c for c in PLATFORM_DAILY_SCHEMA.names() if c not in DAILY_KEY]
    return (
        result.with_columns(pl.col(measures).fill_null(0))
        .filter(pl.any_horizontal(pl.col(measures) != 0))
        .select(PLATFORM_DAILY_SCHEMA.names())
        .cast(PLATFORM_DAILY_SCHEMA)
        .sort(DAILY_KEY, nulls_last=True)
    )


def read_positions(markers: pl.DataFrame) -> pl.DataFrame:
    """(account_id, room_id, read_up_to): the marker that counts for each pair (the last
    by marker_id)."""
    return (
        markers.sort("marker_id")
        .unique(["account_id", "room_id"], keep="last", maintain_order=True)
        .select("account_id", "room_id", "read_up_to")
    )


def build_unread(
    rooms: pl.DataFrame, markers: pl.DataFrame, messages: pl.DataFrame
) -> pl.DataFrame:
    """Unread counts for the current members of each room (decision 14).

    For a member: the room's live messages by others created after its marker's
    ``read_up_to`` (all of them without a marker).
    """
    members = (
        rooms.select("room_id", account_id=pl.col("members")).explode("account_id").drop_nulls()
    )
    pairs = members.join(read_positions(markers), on=["account_id", "room_id"], how="left")
    live = messages.filter(~pl.col("deleted")).select("room_id", "account_id", "created_at")

    # The room's messages at or before t: cumulative counts at distinct times, found with
    # an as-of join. A marked member's own after t: a join of its own messages (at most
    # one row per live message), cheaper than a cumulative table per (room, account).
    room_cum = (
        live.group_by("room_id", "created_at")
        .agg(n=pl.len())
        .sort("room_id", "created_at")
        .with_columns(upto=pl.col("n").cum_sum().over("room_id"))
    )
    totals = live.group_by("room_id").agg(room_total=pl.len())
    own_totals = live.group_by("room_id", "account_id").agg(own_total=pl.len())

    marked = pairs.filter(pl.col("read_up_to").is_not_null()).sort("read_up_to")
    room_upto = marked.join_asof(
        room_cum.select("room_id", "created_at", room_upto="upto").sort("created_at"),
        left_on="read_up_to",
        check_sortedness=False,
        right_on="created_at",
        by="room_id",
        strategy="backward",
    ).select("account_id", "room_id", "room_upto")
    own_after = (
        marked.join(live, on=["room_id", "account_id"])
        .filter(pl.col("created_at") > pl.col("read_up_to"))
        .group_by("account_id", "room_id")
        .agg(own_after=pl.len())
    )
    return (
        pairs.join(totals, on="room_id", how="left")
        .join(own_totals, on=["room_id", "account_id"], how="left")
        .join(room_upto, on=["account_id", "room_id"], how="left")
        .join(own_after, on=["account_id", "room_id"], how="left")
        .with_columns(pl.col("room_total", "own_total", "room_upto", "own_after").fill_null(0))
        .with_columns(
            # without a marker: all of the room's but its own
            unread_count=pl.when(pl.col("read_up_to").is_null())
            .then(pl.col("room_total") - pl.col("own_total"))
            .otherwise(pl.col("room_total") - pl.col("room_upto") - pl.col("own_after"))
        )
        .select(UNREAD_SCHEMA.names())
        .cast(UNREAD_SCHEMA)
        .sort("account_id", "room_id")
    )


__all__ = [
    "ACCOUNT_STATE_SCHEMA",
    "ROOM_STATE_SCHEMA",
    "build_accounts",
    "build_messages",
    "build_account_daily",
    "build_platform_daily",
    "build_rooms",
    "build_unread",
]
