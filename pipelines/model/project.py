"""The full replay: applied events and content in, every read model out.

``project_all`` is the definition of what the projections contain; the
incremental refresh (``pipelines/lake/projections.py``) must give the same rows.
"""

from __future__ import annotations

import polars as pl

from pipelines.model.fold import fold_all, referenced_ids
from pipelines.model.threads import THREADS_INPUT, build_threads, resolve_threads
from pipelines.model.views import (
    ACCOUNTS_INPUT,
    PLATFORM_DAILY_INPUT,
    ROOMS_INPUT,
    UNREAD_INPUT,
    build_account_daily,
    build_accounts,
    build_messages,
    build_platform_daily,
    build_rooms,
    build_unread,
)


def message_links(states: pl.DataFrame) -> pl.DataFrame:
    return states.select("message_id", "explicit_thread_id", "reply_to")


def project_all(
    events: pl.DataFrame, bodies: pl.DataFrame, states: dict[str, pl.DataFrame] | None = None
) -> dict[str, pl.DataFrame]:
    """Every projection table from all events (any status) and the body content rows.

    ``states`` are the events' aggregate states (``fold_all(events)``) if already folded.
    """
    states = states if states is not None else fold_all(events)
    messages = build_messages(
        states["message"], resolve_threads(message_links(states["message"])), bodies
    )
    return project_from_states(messages, states, referenced_ids(events))


def project_from_states(
    messages: pl.DataFrame,
    states: dict[str, pl.DataFrame],
    referenced: tuple[pl.Series, pl.Series],
) -> dict[str, pl.DataFrame]:
    """Every projection, given the ``messages`` rows, the other aggregates' states (by
    aggregate type) and the (accounts, rooms) that applied events refer to."""
    return {"messages": messages, **views_from_messages(messages, states, referenced)}


# The ``messages`` columns that the views built from it read.
VIEWS_INPUT = tuple(
    dict.fromkeys(
        [*THREADS_INPUT, *ACCOUNTS_INPUT, *ROOMS_INPUT, *PLATFORM_DAILY_INPUT, *UNREAD_INPUT]
    )
)


def views_from_messages(
    messages: pl.DataFrame,
    states: dict[str, pl.DataFrame],
    referenced: tuple[pl.Series, pl.Series],
) -> dict[str, pl.DataFrame]:
    """Every view but ``messages``, from all ``messages`` rows (``VIEWS_INPUT`` columns
    suffice), the other aggregates' states and the (accounts, rooms) referenced."""
    referenced_accounts, referenced_rooms = referenced
    marker_states = states["read_marker"]
    threads = build_threads(messages)
    rooms = build_rooms(states["room"], referenced_rooms, messages)
    account_daily = build_account_daily(messages)
    return {
        "threads": threads,
        "accounts": build_accounts(states["account"], referenced_accounts, messages, threads),
        "rooms": rooms,
        "platform_daily": build_platform_daily(messages, threads, account_daily),
        "account_daily": account_daily,
        "unread": build_unread(rooms, marker_states, messages),
        "read_markers": marker_states,
    }
