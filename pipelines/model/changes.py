"""Keep the views that count over messages up to date from the rows a refresh rewrote.

A refresh replaces some ``messages`` rows (the old rows) by others (the new rows), and
some ``threads`` rows likewise. A count then changes by what the new rows add minus
what the old rows added: each function sums over the old rows with sign -1 and the new
rows with sign +1 and adds that to the stored value. That needs no other message, so a
day's refresh costs what the day touched, not what the busy rooms and accounts hold.
A minimum or maximum cannot be taken back that way: when the old rows may have held it,
the function says so and the caller recounts it.

The stored values must reflect exactly the old rows (the refresh that wrote them also
wrote those rows); ``project_all`` remains the definition, and the property tests
compare the two.
"""

from __future__ import annotations

import polars as pl

from pipelines.model.views import (
    ACCOUNT_DAILY_KEY,
    ACCOUNT_MEASURES_SCHEMA,
    DAILY_COUNTS,
    DAILY_KEY,
    PLATFORM_DAILY_INPUT,
    ROOM_MEASURES_SCHEMA,
    UNREAD_SCHEMA,
    account_daily_rows,
    activities,
    platform_daily_rows,
)

_PAIR = ["account_id", "room_id"]


def signed_rows(old: pl.DataFrame, new: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``columns`` of the old rows with ``sign`` -1 and of the new rows with ``sign`` +1."""
    return pl.concat(
        [
            old.select(columns).with_columns(sign=pl.lit(-1, pl.Int64)),
            new.select(columns).with_columns(sign=pl.lit(1, pl.Int64)),
        ]
    )


def adjust_account_measures(
    stored: pl.DataFrame,
    old_rows: pl.DataFrame,
    new_rows: pl.DataFrame,
    old_root_authors: pl.Series,
    new_root_authors: pl.Series,
) -> tuple[pl.DataFrame, pl.Series]:
    """The measures of ``accounts`` (``account_measures``) after the old ``messages``
    rows were replaced by the new ones and the threads whose roots the old authors
    wrote by those the new authors wrote (one author per thread).

    ``stored`` holds the measures as of the old rows for every account concerned (an
    account without a row has none). Returns the measures and the accounts whose
    first or last message time must be recounted, because an old row held it.
    """
    live = signed_rows(
        old_rows, new_rows, ["account_id", "created_at", "reaction_count", "reactors", "deleted"]
    ).filter(~pl.col("deleted"))
    authored = live.group_by("account_id").agg(
        message_count=pl.col("sign").sum(),
        reactions_received=(pl.col("sign") * pl.col("reaction_count")).sum(),
        added_first=pl.col("created_at").filter(pl.col("sign") > 0).min(),
        added_last=pl.col("created_at").filter(pl.col("sign") > 0).max(),
    )
    given = (
        live.select("sign", "reactors")
        .explode("reactors")
        .select("sign", pl.col("reactors").struct.field("account_id"))
        .drop_nulls("account_id")
        .group_by("account_id")
        .agg(reactions_given=pl.col("sign").sum())
    )
    started = (
        pl.concat(
            [
                old_root_authors.to_frame("account_id").with_columns(sign=pl.lit(-1, pl.Int64)),
                new_root_authors.to_frame("account_id").with_columns(sign=pl.lit(1, pl.Int64)),
            ]
        )
        .drop_nulls("account_id")
        .group_by("account_id")
        .agg(thread_count=pl.col("sign").sum())
    )
    changes = (
        pl.concat([f.select("account_id") for f in (authored, given, started)])
        .drop_nulls()
        .unique()
        .join(authored, on="account_id", how="left")
        .join(given, on="account_id", how="left")
        .join(started, on="account_id", how="left")
    )
    counts = ["message_count", "thread_count", "reactions_given", "reactions_received"]
    measures = (
        stored.select(ACCOUNT_MEASURES_SCHEMA.names())
        .join(changes, on="account_id", how="full", coalesce=True)
        .with_columns(
            *(pl.col(c).fill_null(0) + pl.col(f"{c}_right").fill_null(0) for c in counts),
            first_message_at=pl.min_horizontal("first_message_at", "added_first"),
            last_message_at=pl.max_horizontal("last_message_at", "added_last"),
        )
        .select(ACCOUNT_MEASURES_SCHEMA.names())
        .cast(ACCOUNT_MEASURES_SCHEMA)
    )
    return measures, _extremes_lost(
        live, stored, "account_id", ["first_message_at", "last_message_at"]
    )


def adjust_room_measures(
    stored: pl.DataFrame, old_rows: pl.DataFrame, new_rows: pl.DataFrame
) -> tuple[pl.DataFrame, pl.Series]:
    """The measures of ``rooms`` (``room_measures``) after the old ``messages`` rows were
    replaced by the new ones. ``stored`` as in ``adjust_account_measures``; returns the
    measures and the rooms whose last message time must be recounted."""
    live = signed_rows(old_rows, new_rows, ["room_id", "created_at", "deleted"]).filter(
        ~pl.col("deleted")
    )
    changes = (
        live.drop_nulls("room_id")
        .group_by("room_id")
        .agg(
            added=pl.col("sign").sum(),
            added_last=pl.col("created_at").filter(pl.col("sign") > 0).max(),
        )
    )
    measures = (
        stored.select(ROOM_MEASURES_SCHEMA.names())
        .join(changes, on="room_id", how="full", coalesce=True)
        .with_columns(
            message_count=pl.col("message_count").fill_null(0) + pl.col("added").fill_null(0),
            last_message_at=pl.max_horizontal("last_message_at", "added_last"),
        )
        .select(ROOM_MEASURES_SCHEMA.names())
        .cast(ROOM_MEASURES_SCHEMA)
    )
    return measures, _extremes_lost(live, stored, "room_id", ["last_message_at"])


def adjust_daily(
    stored_daily: pl.DataFrame,
    stored_accounts: pl.DataFrame,
    old_rows: pl.DataFrame,
    new_rows: pl.DataFrame,
    old_starts: pl.DataFrame,
    new_starts: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``platform_daily`` and ``account_daily`` after the old ``messages`` rows were
    replaced by the new ones, and the threads started at ``old_starts`` by those started
    at ``new_starts`` (platform, created_at of each root message).

    ``stored_daily`` and ``stored_accounts`` hold the rows as of the old rows, for every
    (platform, day) concerned at least. Returns the rows of the (platform, day) keys
    that changed (a key left without activity has none), and those keys."""
    signed = signed_rows(old_rows, new_rows, list(PLATFORM_DAILY_INPUT))
    acts = activities(signed, carry=["sign"])
    starts = signed_rows(old_starts, new_starts, ["platform", "created_at"]).select(
        "platform", "sign", day=pl.col("created_at").dt.date()
    )
    changes = [
        acts[kind].group_by(DAILY_KEY).agg(pl.col("sign").sum().alias(column))
        for kind, column in DAILY_COUNTS.items()
    ]
    changes.append(starts.group_by(DAILY_KEY).agg(new_threads=pl.col("sign").sum()))
    keys = pl.concat([c.select(DAILY_KEY) for c in changes]).unique()

    def on_keys(stored: pl.DataFrame) -> pl.DataFrame:
        return stored.join(keys, on=DAILY_KEY, how="semi", nulls_equal=True)

    accounts = account_daily_rows(
        pl.concat(
            [
                on_keys(stored_accounts).select(
                    *ACCOUNT_DAILY_KEY, "messages_created", "reactions_added"
                ),
                *(
                    acts[kind].group_by(ACCOUNT_DAILY_KEY).agg(pl.col("sign").sum().alias(column))
                    for kind, column in (
                        ("created", "messages_created"),
                        ("reacted", "reactions_added"),
                    )
                ),
            ],
            how="diagonal",
        )
        .group_by(ACCOUNT_DAILY_KEY)
        .agg(pl.col("messages_created", "reactions_added").sum())
    )
    measures = [*DAILY_COUNTS.values(), "new_threads"]
    counts = (
        pl.concat([on_keys(stored_daily).select(*DAILY_KEY, *measures), *changes], how="diagonal")
        .group_by(DAILY_KEY)
        .agg(pl.col(measures).sum())
    )
    active = accounts.group_by(DAILY_KEY).agg(active_accounts=pl.len())
    return platform_daily_rows([counts, active]), accounts, keys


def _extremes_lost(
    live: pl.DataFrame, stored: pl.DataFrame, key: str, extremes: list[str]
) -> pl.Series:
    """The ``key`` values whose stored first/last time (``extremes``) an old live row held
    and fewer live rows hold afterwards: their time must be recounted."""
    held = (
        live.join(stored.select(key, *extremes), on=key)
        .filter(pl.any_horizontal(*(pl.col("created_at") == pl.col(c) for c in extremes)))
        .group_by(key, "created_at")
        .agg(net=pl.col("sign").sum())
        .filter(pl.col("net") < 0)
    )
    return held[key].unique().sort()


def unread_pairs_to_recount(
    members: pl.DataFrame, stored: pl.DataFrame, marker_pairs: pl.DataFrame
) -> pl.DataFrame:
    """The (account_id, room_id) members whose unread count must be counted afresh: new
    members (no stored row) and those whose read marker changed."""
    return pl.concat(
        [
            members.join(stored.select(_PAIR), on=_PAIR, how="anti"),
            members.join(marker_pairs.select(_PAIR), on=_PAIR, how="semi"),
        ]
    ).unique()


def adjust_unread(
    members: pl.DataFrame,
    stored: pl.DataFrame,
    recount: pl.DataFrame,
    old_rows: pl.DataFrame,
    new_rows: pl.DataFrame,
) -> pl.DataFrame:
    """``unread`` rows of the current ``members`` (account_id, room_id) not in
    ``recount``: the stored count (``stored``, as of the old rows, for the rooms
    concerned) plus the change the rewritten messages make to it (decision 14: live
    messages by others after the member's ``read_up_to``, all of them without one)."""
    kept = members.join(stored, on=_PAIR).join(recount.select(_PAIR), on=_PAIR, how="anti")
    live = signed_rows(old_rows, new_rows, ["room_id", "account_id", "created_at", "deleted"])
    change = (
        live.filter(~pl.col("deleted"))
        .select("room_id", "created_at", "sign", author="account_id")
        .join(kept.select(*_PAIR, "read_up_to"), on="room_id")
        .filter(
            pl.col("author").ne_missing(pl.col("account_id"))
            & (pl.col("read_up_to").is_null() | (pl.col("created_at") > pl.col("read_up_to")))
        )
        .group_by(_PAIR)
        .agg(change=pl.col("sign").sum())
    )
    return (
        kept.join(change, on=_PAIR, how="left")
        .with_columns(unread_count=pl.col("unread_count") + pl.col("change").fill_null(0))
        .select(UNREAD_SCHEMA.names())
        .cast(UNREAD_SCHEMA)
    )


def count_unread(pairs: pl.DataFrame, messages: pl.DataFrame) -> pl.DataFrame:
    """``unread`` rows for ``pairs`` (account_id, room_id, read_up_to) counted directly
    over ``messages`` (room_id, account_id, created_at, deleted), which must hold every
    message of each pair's room created after its ``read_up_to`` (all of them without
    one). Equal to ``build_unread`` for those pairs."""
    # each room's messages before all of its pairs' positions count for none: dropped
    # before the join that pairs every message with every member of its room
    bounds = pairs.group_by("room_id").agg(
        since=pl.col("read_up_to").min(), unmarked=pl.col("read_up_to").null_count() > 0
    )
    counts = (
        messages.filter(~pl.col("deleted"))
        .join(bounds, on="room_id")
        .filter(pl.col("unmarked") | (pl.col("created_at") > pl.col("since")))
        .select("room_id", "created_at", author="account_id")
        .join(pairs.select(_PAIR + ["read_up_to"]), on="room_id")
        .filter(
            pl.col("author").ne_missing(pl.col("account_id"))
            & (pl.col("read_up_to").is_null() | (pl.col("created_at") > pl.col("read_up_to")))
        )
        .group_by(_PAIR)
        .agg(unread_count=pl.len())
    )
    return (
        pairs.join(counts, on=_PAIR, how="left")
        .with_columns(pl.col("unread_count").fill_null(0))
        .select(UNREAD_SCHEMA.names())
        .cast(UNREAD_SCHEMA)
    )
