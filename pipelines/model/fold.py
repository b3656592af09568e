"""Fold events into aggregate states: messages, accounts, rooms and read markers.

Every function takes applied events (status "applied", known types) of some
aggregates, *all* of each aggregate's events, and returns one state row per
aggregate, grouped by ``keys`` (the aggregate id column, plus ``as_of_day`` when
``snapshots`` folds each day's prefix of the history). Events apply in version
order whatever the day they were recorded (spec "Semantics", decisions 9-17).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from pipelines.ingest.catalog import PAYLOAD_SCHEMA, TIME

MESSAGE_ID = "message_id"
REACTION = pl.Struct({"account_id": pl.String(), "emoji": pl.String()})
REACTION_ADD = pl.Struct({"account_id": pl.String(), "emoji": pl.String(), "at": TIME})

MESSAGE_STATE_SCHEMA = pl.Schema(
    {
        "message_id": pl.String(),
        "version": pl.Int64(),
        "account_id": pl.String(),
        "room_id": pl.String(),
        "platform": pl.String(),
        "platform_id": pl.String(),
        "url": pl.String(),
        "explicit_thread_id": pl.String(),
        "reply_to": pl.String(),
        "kind": pl.Int64(),
        "created_at": TIME,
        "schema_version": pl.Int64(),
        "author_did": pl.String(),
        "imported_at": TIME,
        "tags": pl.List(pl.List(pl.String())),
        "attachments": pl.List(pl.String()),
        "content_cid": pl.String(),
        "body_inline": pl.String(),
        "deleted": pl.Boolean(),
        "deleted_at": TIME,
        "delete_reason": pl.String(),
        "edit_count": pl.Int64(),
        "last_edited_at": TIME,
        "edit_times": pl.List(TIME),
        "reactions_current": pl.List(REACTION),
        "reaction_adds": pl.List(REACTION_ADD),
        "ignored_events": pl.Int64(),
    }
)

ACCOUNT_STATE_SCHEMA = pl.Schema(
    {
        "account_id": pl.String(),
        "version": pl.Int64(),
        "created": pl.Boolean(),
        "display_name": pl.String(),
        "handle": pl.String(),
        "did": pl.String(),
        "platform": pl.String(),
        "created_at": TIME,
    }
)

ROOM_STATE_SCHEMA = pl.Schema(
    {
        "room_id": pl.String(),
        "version": pl.Int64(),
        "created": pl.Boolean(),
        "name": pl.String(),
        "type": pl.String(),
        "platform": pl.String(),
        "server_id": pl.String(),
        "server_name": pl.String(),
        "topic": pl.String(),
        "created_at": TIME,
        "members": pl.List(pl.String()),
    }
)

READ_MARKER_STATE_SCHEMA = pl.Schema(
    {
        "marker_id": pl.String(),
        "version": pl.Int64(),
        "account_id": pl.String(),
        "room_id": pl.String(),
        "read_up_to": TIME,
    }
)


# The events that projections apply: known types, status "applied".
APPLIED = pl.col("known_type") & (pl.col("status") == "applied")


def _of_type(events: pl.DataFrame, aggregate_type: str) -> pl.DataFrame:
    return events.filter((pl.col("aggregate_type") == aggregate_type) & APPLIED)


def fold_messages(events: pl.DataFrame, keys: tuple[str, ...] = ()) -> pl.DataFrame:
    """Message states (MESSAGE_STATE_SCHEMA + ``keys``) from the messages' applied events.

    A message exists once its first MessageCreated (by version) counts; earlier events
    are orphans, a second MessageCreated is ignored (decision 9). After MessageDeleted
    the message keeps its row, and later edits and reactions are ignored; its
    reactions stay as at deletion (decision 10). Reactions are a set of
    (account_id, emoji): only adds of absent pairs and removes of present pairs count.
    """
    by = [MESSAGE_ID, *keys]
    e = (
        _of_type(events, "message")
        .rename({"aggregate_id": MESSAGE_ID})
        .sort([*by, "version"])
        .with_columns(
            created_version=pl.col("version")
            .filter(pl.col("event_type") == "MessageCreated")
            .min()
            .over(by)
        )
        .filter(pl.col("created_version").is_not_null())
    )
    after = e.filter(pl.col("version") > pl.col("created_version")).with_columns(
        delete_version=pl.col("version")
        .filter(pl.col("event_type") == "MessageDeleted")
        .min()
        .over(by)
    )
    effective = after.filter(
        (pl.col("event_type") != "MessageCreated")
        & (pl.col("delete_version").is_null() | (pl.col("version") <= pl.col("delete_version")))
    )

    created = e.filter(
        (pl.col("event_type") == "MessageCreated")
        & (pl.col("version") == pl.col("created_version"))
    ).select(
        *by,
        "account_id",
        "room_id",
        "platform",
        "platform_id",
        "url",
        pl.col("thread_id").alias("explicit_thread_id"),
        "reply_to",
        "kind",
        "created_at",
        "schema_version",
        "author_did",
        "imported_at",
        "tags",
        "attachments",
        pl.col("content_cid").alias("created_cid"),
        pl.col("body_inline").alias("created_body_inline"),
    )
    totals = e.group_by(by).agg(
        version=pl.col("version").filter(pl.col("version") >= pl.col("created_version")).max(),
        considered=pl.len(),
    )
    edits = (
        effective.filter(pl.col("event_type") == "MessageEdited")
        .group_by(by)
        .agg(
            edit_count=pl.len().cast(pl.Int64),
            edited_cid=pl.col("content_cid").last(),
            last_edited_at=pl.col("edited_at").last(),
            edit_times=pl.col("edited_at"),
        )
    )
    deletes = (
        effective.filter(pl.col("event_type") == "MessageDeleted")
        .group_by(by)
        .agg(deleted_at=pl.col("deleted_at").first(), delete_reason=pl.col("reason").first())
    )
    reactions = _fold_reactions(effective, by)
    applied = effective.group_by(by).agg(applied=pl.len())

    # the narrow measures first, then one join with the wide created rows: each join
    # gathers every column of its left side
    measures = (
        totals.join(edits, on=by, how="left")
        .join(deletes, on=by, how="left")
        .join(reactions, on=by, how="left")
        .join(applied, on=by, how="left")
    )
    state = created.join(measures, on=by, how="left").with_columns(
        content_cid=pl.coalesce("edited_cid", "created_cid"),
        body_inline=pl.when(pl.col("edited_cid").is_null()).then(pl.col("created_body_inline")),
        deleted=pl.col("deleted_at").is_not_null(),
        edit_count=pl.col("edit_count").fill_null(0),
        edit_times=pl.col("edit_times").fill_null(pl.lit([], dtype=pl.List(TIME))),
        reactions_current=pl.col("reactions_current").fill_null(
            pl.lit([], dtype=pl.List(REACTION))
        ),
        reaction_adds=pl.col("reaction_adds").fill_null(pl.lit([], dtype=pl.List(REACTION_ADD))),
        # orphans, second creations and events after the deletion
        ignored_events=(pl.col("considered") - 1 - pl.col("applied").fill_null(0)).cast(pl.Int64),
    )
    return state.select(*keys, *MESSAGE_STATE_SCHEMA.names()).sort(by)


def _fold_reactions(effective: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    pair = [*by, "account_id", "emoji"]
    r = (
        effective.filter(pl.col("event_type").is_in(["ReactionAdded", "ReactionRemoved"]))
        .sort([*by, "version"])
        .with_columns(is_add=pl.col("event_type") == "ReactionAdded")
        .with_columns(was_present=pl.col("is_add").shift(1).over(pair).fill_null(False))
    )
    present = (
        r.group_by(pair)
        .agg(present=pl.col("is_add").last())
        .filter("present")
        .sort(pair)
        .group_by(by, maintain_order=True)
        .agg(reactions_current=pl.struct("account_id", "emoji"))
    )
    adds = (
        r.filter(pl.col("is_add") & ~pl.col("was_present"))
        .group_by(by, maintain_order=True)
        .agg(reaction_adds=pl.struct("account_id", "emoji", "at"))
    )
    keys = r.select(by).unique()
    return keys.join(present, on=by, how="left").join(adds, on=by, how="left")


def _last_set(column: str) -> pl.Expr:
    """The value of ``column`` from the last (highest-version) event that carries it."""
    return pl.col(column).drop_nulls().last()


def fold_accounts(events: pl.DataFrame, keys: tuple[str, ...] = ()) -> pl.DataFrame:
    """Account states from AccountCreated/AccountUpdated; each event sets the fields it carries."""
    by = ["account_id", *keys]
    e = _of_type(events, "account").drop("account_id").rename({"aggregate_id": "account_id"})
    return (
        e.sort([*by, "version"])
        .group_by(by)
        .agg(
            version=pl.col("version").max(),
            created=(pl.col("event_type") == "AccountCreated").any(),
            display_name=_last_set("display_name"),
            handle=_last_set("handle"),
            did=_last_set("did"),
            platform=_last_set("platform"),
            created_at=_last_set("created_at"),
        )
        .select(*keys, *ACCOUNT_STATE_SCHEMA.names())
        .sort(by)
    )


def fold_rooms(events: pl.DataFrame, keys: tuple[str, ...] = ()) -> pl.DataFrame:
    """Room states: fields set by RoomCreated/RoomUpdated; members from joins and leaves
    (a member is one whose last MemberJoined/MemberLeft, by version, is a join)."""
    by = ["room_id", *keys]
    e = (
        _of_type(events, "room")
        .drop("room_id")
        .rename({"aggregate_id": "room_id"})
        .sort([*by, "version"])
    )
    fields = e.group_by(by).agg(
        version=pl.col("version").max(),
        created=(pl.col("event_type") == "RoomCreated").any(),
        name=_last_set("name"),
        type=_last_set("room_type"),
        platform=_last_set("platform"),
        server_id=_last_set("server_id"),
        server_name=_last_set("server_name"),
        topic=_last_set("topic"),
        created_at=_last_set("created_at"),
    )
    members = (
        e.filter(pl.col("event_type").is_in(["MemberJoined", "MemberLeft"]))
        .group_by([*by, "account_id"])
        .agg(joined=(pl.col("event_type") == "MemberJoined").last())
        .filter("joined")
        .sort([*by, "account_id"])
        .group_by(by, maintain_order=True)
        .agg(members=pl.col("account_id"))
    )
    return (
        fields.join(members, on=by, how="left")
        .with_columns(pl.col("members").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .select(*keys, *ROOM_STATE_SCHEMA.names())
        .sort(by)
    )


def fold_read_markers(events: pl.DataFrame, keys: tuple[str, ...] = ()) -> pl.DataFrame:
    """Read-marker states: the fields of the marker's highest version (decision 14)."""
    by = ["marker_id", *keys]
    e = _of_type(events, "read_marker").rename({"aggregate_id": "marker_id"})
    return (
        e.sort([*by, "version"])
        .group_by(by)
        .agg(
            version=pl.col("version").last(),
            account_id=pl.col("account_id").last(),
            room_id=pl.col("room_id").last(),
            read_up_to=pl.col("read_up_to").last(),
        )
        .select(*keys, *READ_MARKER_STATE_SCHEMA.names())
        .sort(by)
    )


def referenced_ids(events: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """Accounts and rooms that applied events of known types refer to (decision 15)."""
    known = events.filter(APPLIED)
    accounts = known["account_id"].drop_nulls().unique().sort()
    rooms = (
        known.filter(pl.col("event_type").is_in(["MessageCreated", "ReadMarkerMoved"]))["room_id"]
        .drop_nulls()
        .unique()
        .sort()
    )
    return accounts, rooms


# Per aggregate type: its fold, the id column of its states and their schema.
FOLDS = {
    "message": fold_messages,
    "account": fold_accounts,
    "room": fold_rooms,
    "read_marker": fold_read_markers,
}
STATE_IDS = {
    "message": "message_id",
    "account": "account_id",
    "room": "room_id",
    "read_marker": "marker_id",
}
STATE_SCHEMAS = {
    "message": MESSAGE_STATE_SCHEMA,
    "account": ACCOUNT_STATE_SCHEMA,
    "room": ROOM_STATE_SCHEMA,
    "read_marker": READ_MARKER_STATE_SCHEMA,
}


# Events folded at once: a fold holds several copies of its input, so a large history
# is folded in groups of aggregates (the states do not depend on the grouping).
FOLD_GROUP_ROWS = 250_000


def fold_all(events: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The states of every aggregate in ``events``, by aggregate type."""
    states = {}
    for aggregate_type, fold in FOLDS.items():
        own = events.filter(pl.col("aggregate_type") == aggregate_type)
        groups = -(-own.height // FOLD_GROUP_ROWS)
        if groups <= 1:
            states[aggregate_type] = fold(own)
            continue
        group = pl.col("aggregate_id").hash() % groups  # whole aggregates per group
        states[aggregate_type] = pl.concat(
            [fold(own.filter(group == g)) for g in range(groups)]
        ).sort(STATE_IDS[aggregate_type])
    return states


# The event columns that folds read, besides the payload's.
_EVENT_COLUMNS = {
    "day": pl.Date(),
    "event_type": pl.String(),
    "schema_version": pl.Int64(),
    "aggregate_type": pl.String(),
    "aggregate_id": pl.String(),
    "version": pl.Int64(),
    "known_type": pl.Boolean(),
    "status": pl.String(),
    **PAYLOAD_SCHEMA,
}
# Per aggregate type whose state is the last value set of each field: the event that
# carries the whole state ((if created, else) event type; state column -> event column).
_STATE_EVENT = {
    "account": (
        ("AccountCreated", "AccountUpdated"),
        {c: c for c in ("display_name", "handle", "did", "platform", "created_at")},
    ),
    "room": (
        ("RoomCreated", "RoomUpdated"),
        {"type": "room_type"}
        | {c: c for c in ("name", "platform", "server_id", "server_name", "topic", "created_at")},
    ),
    "read_marker": (
        ("ReadMarkerMoved", "ReadMarkerMoved"),
        {c: c for c in ("account_id", "room_id", "read_up_to")},
    ),
}
CONTINUABLE_TYPES = tuple(_STATE_EVENT)
# The types whose state is their highest version's line whole (not field by field): a
# late line of a lower version folds against the state as it would against the history.
WHOLE_LINE_TYPES = frozenset({"read_marker"})


def state_events(aggregate_type: str, states: pl.DataFrame, day: date) -> pl.DataFrame:
    """Applied events recorded on ``day`` that fold into ``states`` (of accounts, rooms or
    read markers, ``CONTINUABLE_TYPES``): each state as one event at its version, a room's
    members as joins at that version.

    Folding these followed by events of higher versions gives the fold of the whole
    history: each field is the last value set by version, and the state holds, for
    every field, the last value its history set."""
    (created, updated), fields = _STATE_EVENT[aggregate_type]
    id_column = STATE_IDS[aggregate_type]
    event_type = pl.lit(updated)
    if "created" in states.columns:
        event_type = pl.when("created").then(pl.lit(created)).otherwise(event_type)
    frames = [
        states.select(
            aggregate_id=id_column,
            version="version",
            event_type=event_type,
            **{event: pl.col(state) for state, event in fields.items()},
        )
    ]
    if aggregate_type == "room":
        frames.append(
            states.select(
                aggregate_id=id_column,
                version="version",
                event_type=pl.lit("MemberJoined"),
                account_id="members",
            )
            .explode("account_id")
            .drop_nulls("account_id")
        )
    events = pl.concat(frames, how="diagonal").with_columns(
        day=pl.lit(day, pl.Date),
        aggregate_type=pl.lit(aggregate_type),
        known_type=pl.lit(True),
        status=pl.lit("applied"),
    )
    return pl.concat([pl.DataFrame(schema=_EVENT_COLUMNS), events], how="diagonal_relaxed")
