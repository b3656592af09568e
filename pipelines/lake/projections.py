"""Keep the projection tables in the lake up to date with ``events`` and ``content``.

Every projection commit records the ``events`` and ``content`` versions it
reflects. A refresh reads what changed since then from the two tables' change
feeds, refolds only the aggregates concerned, and rewrites only the rows that
depend on them. Without a usable record (first run, a feed whose files were
vacuumed) it rebuilds everything: the rows of ``project_all``, the definition of
the read models, built group by group of messages; tests check that both paths
give the same tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, timedelta

import polars as pl

from pipelines.ingest import keys as event_keys
from pipelines.ingest.content import CONTENT_SCHEMA
from pipelines.lake.delta import Lake, contiguous
from pipelines.lake.tables import CONTENT, EVENTS, EVENTS_SCHEMA
from pipelines.model.changes import (
    adjust_account_measures,
    adjust_daily,
    adjust_room_measures,
    adjust_unread,
    count_unread,
    unread_pairs_to_recount,
)
from pipelines.model.fold import (
    ACCOUNT_STATE_SCHEMA,
    APPLIED,
    CONTINUABLE_TYPES,
    READ_MARKER_STATE_SCHEMA,
    ROOM_STATE_SCHEMA,
    STATE_IDS,
    STATE_SCHEMAS,
    WHOLE_LINE_TYPES,
    fold_accounts,
    fold_all,
    fold_messages,
    fold_read_markers,
    fold_rooms,
    referenced_ids,
    state_events,
)
from pipelines.model.project import (
    VIEWS_INPUT,
    message_links,
    project_from_states,
    views_from_messages,
)
from pipelines.model.snapshots import SNAPSHOTS_SCHEMA, build_snapshots
from pipelines.model.threads import (
    THREADS_INPUT,
    THREADS_SCHEMA,
    build_threads,
    reply_descendants,
    resolve_threads,
)
from pipelines.model.views import (
    ACCOUNT_DAILY_SCHEMA,
    ACCOUNT_MEASURES_SCHEMA,
    ACCOUNTS_SCHEMA,
    CREATED_WEEK,
    DAILY_KEY,
    MESSAGES_SCHEMA,
    PLATFORM_DAILY_INPUT,
    PLATFORM_DAILY_SCHEMA,
    ROOM_MEASURES_SCHEMA,
    ROOMS_SCHEMA,
    UNREAD_INPUT,
    UNREAD_SCHEMA,
    account_rows,
    build_messages,
    read_positions,
    room_rows,
    root_messages,
)

SNAPSHOTS = "snapshots"
SCHEMAS = {
    "messages": MESSAGES_SCHEMA,
    "threads": THREADS_SCHEMA,
    "accounts": ACCOUNTS_SCHEMA,
    "rooms": ROOMS_SCHEMA,
    "platform_daily": PLATFORM_DAILY_SCHEMA,
    "account_daily": ACCOUNT_DAILY_SCHEMA,
    "unread": UNREAD_SCHEMA,
    "read_markers": READ_MARKER_STATE_SCHEMA,
    SNAPSHOTS: SNAPSHOTS_SCHEMA,
}
PROJECTIONS = tuple(SCHEMAS)
# Projections without partitions, read several times a refresh by key: each is read
# whole once (thousands of rows), and the reads filter those rows.
SMALL_TABLES = ("accounts", "rooms", "platform_daily", "account_daily", "unread", "read_markers")
PARTITIONS = {"messages": "created_week", "threads": "started_week", SNAPSHOTS: "as_of_day"}
KEYS = {
    "messages": ["message_id"],
    "threads": ["thread_id"],
    "accounts": ["account_id"],
    "rooms": ["room_id"],
    "platform_daily": ["platform", "day"],
    "account_daily": ["platform", "day", "account_id"],
    "unread": ["account_id", "room_id"],
    "read_markers": ["marker_id"],
    SNAPSHOTS: ["aggregate_type", "aggregate_id", "as_of_day"],
}


@dataclass
class ProjectionRefresh:
    """What a refresh wrote: per table the rows written (all of them when ``full``) and
    the first of them."""

    full: bool
    versions: dict[str, str]
    rows_written: dict[str, int] = field(default_factory=dict)
    heads: dict[str, pl.DataFrame] = field(default_factory=dict)
    changed_aggregates: int = 0

    def wrote(self, table: str, rows: pl.DataFrame) -> None:
        self.rows_written[table] = rows.height
        self.heads[table] = _head(rows)


def _head(rows: pl.DataFrame) -> pl.DataFrame:
    """The first five rows, copied: a slice would keep every buffer of ``rows`` alive."""
    head = rows.head(5)
    return pl.DataFrame(head.rows(), schema=head.schema, orient="row")


def read_bodies(lake: Lake, cids: pl.Series | None = None) -> pl.DataFrame:
    """Body files' verification rows (cid, status, text, utf8_valid), optionally for some CIDs."""
    where = pl.col("kind") == "body"
    if cids is not None:
        where &= pl.col("cid").is_in(cids.implode())
    columns = ["cid", "status", "text", "utf8_valid"]
    return lake.read(CONTENT, CONTENT_SCHEMA, columns=columns, where=where)


def read_applied_events(
    lake: Lake, where: pl.Expr | None = None, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    condition = APPLIED if where is None else APPLIED & where
    return lake.read(EVENTS, EVENTS_SCHEMA, columns=columns, where=condition)


def refresh_projections(lake: Lake, full: bool = False) -> ProjectionRefresh:
    """Bring every projection up to date; incrementally when the last refresh is known."""
    # each table's log is read once for the run, not once per read (40-60 ms for
    # `messages` at 1M) and its writes commit on threads while it goes on, its reads
    # seeing them at once; a concurrent ingest must not slip in between versions and reads
    lake = lake.for_one_run({}, read_whole=SMALL_TABLES, write_behind=True)
    pins = lake.pin_latest([EVENTS, CONTENT])
    versions = {"events_version": str(pins[EVENTS]), "content_version": str(pins[CONTENT])}
    try:
        changes = None if full else _changes_since_last_refresh(lake)
        if changes is None:
            refresh = _rebuild(lake, versions)
        else:
            refresh = _refresh_incrementally(lake, versions, *changes)
    except BaseException:
        with suppress(Exception):  # the writes already behind still end before this run
            lake.flush()
        raise
    lake.flush()
    return refresh


# What folds and snapshots read of ``events`` (not where a line came from).
FOLD_COLUMNS = [
    c
    for c in EVENTS_SCHEMA.names()
    if c
    not in {
        "file_index",
        "source_file",
        "line_number",
        "event_id",
        "recorded_at",
        "actor",
        "source",
    }
]


# Message events a rebuild carries through at once (read, fold, snapshots, ``messages``
# rows): its memory follows one group of whole messages, not the whole history.
REBUILD_GROUP_ROWS = 200_000
# ``messages`` rows (with their bodies) a rebuild builds and writes at once.
REBUILD_MESSAGE_ROWS = 100_000


def _rebuild(lake: Lake, versions: dict[str, str]) -> ProjectionRefresh:
    """Every projection from all applied events: the rows of ``project_all`` and of
    ``build_snapshots``. Messages go through in groups of whole aggregates, each read,
    folded and snapshotted alone, its snapshots and ``messages`` rows written as an
    append; the other views are built from the ``messages`` columns they read."""
    refresh = ProjectionRefresh(full=True, versions=versions)
    snapshots = _PartWriter(lake, SNAPSHOTS, versions)
    states, message_states, referenced = _fold_in_groups(
        lake, lambda events, final: snapshots.add(build_snapshots(events, final_states=final))
    )
    snapshots.close(refresh)

    threads = resolve_threads(pl.concat([message_links(s) for s in message_states]))
    bodies = read_bodies(lake)
    messages = _PartWriter(lake, "messages", versions)
    narrow = []
    # regrouped by week (as build_messages derives created_week), so that each
    # partition is still written in one file
    for states_of_weeks in _whole_partitions(message_states, CREATED_WEEK, REBUILD_MESSAGE_ROWS):
        rows = build_messages(states_of_weeks, threads, bodies)
        del states_of_weeks
        messages.add(rows)
        narrow.append(rows.select(VIEWS_INPUT))
        del rows
    messages.close(refresh)
    del threads, bodies

    views = views_from_messages(pl.concat(narrow), states, referenced)
    del narrow, states
    while views:  # each view leaves memory once written
        name, frame = views.popitem()
        _write_whole(lake, name, frame, versions)
        refresh.wrote(name, frame)
        del frame
    return refresh


def replay_projections(lake: Lake, bodies: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Every projection table from all applied events (as ``lake`` is pinned) and the
    ``bodies`` rows, as ``project_all`` gives them, but folding the messages a group at a
    time as a rebuild does, so the history's events are never all in memory."""
    states, message_states, referenced = _fold_in_groups(lake)
    states["message"] = pl.concat(message_states)
    del message_states
    threads = resolve_threads(message_links(states["message"]))
    messages = build_messages(states["message"], threads, bodies)
    return project_from_states(messages, states, referenced)


def _fold_in_groups(
    lake: Lake,
    each: Callable[[pl.DataFrame, dict[str, pl.DataFrame]], None] = lambda events, final: None,
) -> tuple[dict[str, pl.DataFrame], list[pl.DataFrame], tuple[pl.Series, pl.Series]]:
    """Fold every applied event: the other aggregates at once, the messages in groups of
    whole messages (``_message_groups``), so the history's events are never all in
    memory. ``each(events, final states by type)`` sees every batch before it is
    dropped. Returns the other aggregates' states by type, the message states of each
    group, and the (accounts, rooms) that applied events refer to."""
    others = read_applied_events(lake, pl.col("aggregate_type") != "message", FOLD_COLUMNS)
    references = [referenced_ids(others)]
    states = fold_all(others)
    each(others, states)
    del others
    message_states = []
    for days, ids in _message_groups(lake, REBUILD_GROUP_ROWS):
        events = _group_events(lake, days, ids)
        references.append(referenced_ids(events))
        message_states.append(fold_messages(events))
        each(events, {"message": message_states[-1]})
        del events
    referenced = tuple(pl.concat(ids).unique().sort() for ids in zip(*references, strict=True))
    return states, message_states, referenced


def _group_events(lake: Lake, days: tuple[date, date], ids: pl.Series) -> pl.DataFrame:
    """The applied events of the messages ``ids``, all recorded in ``days`` (first, last):
    only those days' files are read."""
    where = (pl.col("aggregate_type") == "message") & pl.col("day").is_between(*days)
    return read_applied_events(lake, where & _isin("aggregate_id", ids), FOLD_COLUMNS)


def _message_groups(lake: Lake, max_rows: int) -> list[tuple[tuple[date, date], pl.Series]]:
    """Messages in groups of about ``max_rows`` applied events, in the order of the day
    each was first recorded: (the first and last day that hold an event of the group,
    the group's message ids); one group at least. Groups in time order keep each group's
    snapshots on few days, so a day's snapshots are in few files (hash groups put a file
    of every group on every day), and each group's events on few days' files."""
    firsts = (
        lake.scan(EVENTS, EVENTS_SCHEMA)
        .filter(APPLIED & (pl.col("aggregate_type") == "message"))
        .group_by("aggregate_id")
        .agg(first=pl.col("day").min(), last=pl.col("day").max(), events=pl.len())
        .sort("first", "aggregate_id")
        .with_columns(group=(pl.col("events").cum_sum() - pl.col("events")) // max_rows)
        .collect()
    )
    groups = [
        ((members["first"].min(), members["last"].max()), members["aggregate_id"])
        for members in firsts.partition_by("group", maintain_order=True)
    ]
    # one group, even if empty
    return groups or [((date.min, date.max), pl.Series(dtype=pl.String))]


def _whole_partitions(
    frames: list[pl.DataFrame], partition: pl.Expr, max_rows: int
) -> Iterator[pl.DataFrame]:
    """The rows of ``frames`` (emptied on the way), regrouped into groups of whole
    partitions (``partition`` gives a row's), consecutive in partition order, of about
    ``max_rows`` rows each; one group at least, maybe empty."""
    empty = frames[0].clear()
    sizes = (
        pl.concat([frame.group_by(key=partition).len() for frame in frames])
        .group_by("key")
        .agg(pl.col("len").sum())
        .sort("key", nulls_last=True)
    )
    group_of = sizes.select("key", group=(pl.col("len").cum_sum() - pl.col("len")) // max_rows)
    pieces = []
    while frames:
        tagged = (
            frames.pop(0).with_columns(key=partition).join(group_of, on="key", nulls_equal=True)
        )
        pieces.append(tagged.drop("key").partition_by("group", as_dict=True, include_key=False))
    groups = group_of["group"].unique().sort().to_list()
    if not groups:
        yield empty
    for group in groups:
        # in one chunk: the joins that build rows from them gather nested columns
        yield contiguous(pl.concat([part.pop((group,)) for part in pieces if (group,) in part]))


class _PartWriter:
    """Writes a table whole in parts with disjoint keys, each sorted by key: the first
    part replaces the table, the others append. Read back sorted by key, the table
    equals one written whole. Only ``close`` records ``versions``, in a last commit of
    its own, so a rebuild stopped half-way is not taken for a finished one."""

    def __init__(self, lake: Lake, table: str, versions: dict[str, str]):
        self.lake, self.table, self.versions = lake, table, versions
        partition = PARTITIONS.get(table)
        self.partition_by = [partition] if partition else None
        self.rows = 0
        self.heads: list[pl.DataFrame] = []

    def add(self, rows: pl.DataFrame) -> None:
        rows = rows.select(SCHEMAS[self.table].names())
        if not self.heads:
            self.lake.write(self.table, rows, partition_by=self.partition_by)
        else:
            self.lake.append(self.table, rows, partition_by=self.partition_by)
        self.rows += rows.height
        self.heads.append(_head(rows))

    def close(self, refresh: ProjectionRefresh) -> None:
        if not self.heads:
            self.add(pl.DataFrame(schema=SCHEMAS[self.table]))
        self.lake.append(
            self.table,
            pl.DataFrame(schema=SCHEMAS[self.table]),
            partition_by=self.partition_by,
            metadata=self.versions,
        )
        refresh.rows_written[self.table] = self.rows
        refresh.heads[self.table] = _head(pl.concat(self.heads).sort(KEYS[self.table]))


def _write_whole(lake: Lake, table: str, rows: pl.DataFrame, versions: dict[str, str]) -> None:
    partition = PARTITIONS.get(table)
    lake.write(table, rows, partition_by=[partition] if partition else None, metadata=versions)


def _last_versions(lake: Lake) -> tuple[int, int] | None:
    """The events and content versions of the last refresh, if every table has them."""
    recorded = set()
    # the tables opened side by side (delta-rs reads logs without the GIL), kept for the run
    with ThreadPoolExecutor(max_workers=4) as pool:
        metas = dict(zip(PROJECTIONS, pool.map(lake.commit_metadata, PROJECTIONS), strict=True))
    for name in PROJECTIONS:
        meta = metas[name]
        if "events_version" not in meta:
            return None
        if lake.partition_columns(name) != ([PARTITIONS[name]] if name in PARTITIONS else []):
            return None  # written by an earlier layout: rebuild
        if set(lake.column_names(name)) != set(SCHEMAS[name].names()):
            return None  # columns of an earlier release: rebuild
        recorded.add((meta["events_version"], meta["content_version"]))
    if len(recorded) != 1:
        return None  # a refresh stopped half-way: start again from scratch
    events_version, content_version = recorded.pop()
    return int(events_version), -1 if content_version == "None" else int(content_version)


def _change_feed(lake: Lake, table: str, since: int, columns: list[str]) -> pl.DataFrame | None:
    """Rows inserted or deleted in ``table`` after version ``since`` (None if unreadable:
    then the refresh rebuilds, which gives the same tables)."""
    current = lake.read_version(table)
    if current is None or current <= since:
        return pl.DataFrame()
    return lake.change_feed(table, since, current, columns)


def _changes_since_last_refresh(lake: Lake) -> tuple[pl.DataFrame, pl.Series, bool] | None:
    """(changed aggregates with the recorded days of their changed lines, new body CIDs,
    whether any event line was removed or rewritten rather than only added)."""
    last = _last_versions(lake)
    if last is None:
        return None
    events = _change_feed(
        lake, EVENTS, last[0], ["aggregate_type", "aggregate_id", "day", "_change_type"]
    )
    content = _change_feed(lake, CONTENT, last[1], ["cid", "kind"])
    if events is None or content is None:
        return None
    changed = (
        events.select("aggregate_type", "aggregate_id", "day").unique()
        if not events.is_empty()
        else pl.DataFrame(
            schema={"aggregate_type": pl.String, "aggregate_id": pl.String, "day": pl.Date}
        )
    )
    cids = content["cid"].unique() if not content.is_empty() else pl.Series("cid", [], pl.String)
    removed = not events.is_empty() and bool((events["_change_type"] != "insert").any())
    return changed, cids, removed


def _ids(changed: pl.DataFrame, aggregate_type: str) -> pl.Series:
    return changed.filter(pl.col("aggregate_type") == aggregate_type)["aggregate_id"].unique()


def _isin(column: str, values: pl.Series) -> pl.Expr:
    return pl.col(column).is_in(values.drop_nulls().unique().implode())


def _mask(frame: pl.DataFrame, column: str, values: pl.Series) -> pl.Series:
    """Whether each row's ``column`` is in ``values`` (never null)."""
    return frame.select(_isin(column, values).fill_null(False)).to_series()


def _refresh_incrementally(
    lake: Lake, versions: dict[str, str], changed: pl.DataFrame, new_cids: pl.Series, removed: bool
) -> ProjectionRefresh:
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="refresh") as beside:
        return _refresh_changed(lake, beside, versions, changed, new_cids, removed)


def _refresh_changed(
    lake: Lake,
    beside: ThreadPoolExecutor,
    versions: dict[str, str],
    changed: pl.DataFrame,
    new_cids: pl.Series,
    removed: bool,
) -> ProjectionRefresh:
    """``_refresh_incrementally``, with the steps that need nothing else of it done on
    three threads ``beside`` it (polars and delta-rs release the GIL): the read of the
    index of every message, the snapshots' fold, the new ``read_markers``, ``rooms``
    and ``unread`` (while the threads are rebuilt here), ``accounts`` and the daily
    tables (so that none queues behind a large fold). Writes are issued from this
    thread only, in a fixed order."""
    refresh = ProjectionRefresh(full=False, versions=versions)
    refresh.changed_aggregates = changed.select("aggregate_id").n_unique()

    index = beside.submit(lake.read, "messages", MESSAGES_SCHEMA, columns=MESSAGE_INDEX_COLUMNS)
    since = changed.group_by(_AGGREGATE).agg(since=pl.col("day").min())
    snapshotted = _snapshots_since(lake, since)
    continued = [] if removed else _continued_from_state(lake, changed, since, snapshotted)
    naming = beside.submit(_messages_naming, lake, new_cids) if not new_cids.is_empty() else None
    stored = index.result()
    with_new_body = naming.result() if naming else pl.Series("message_id", [], pl.String)
    touched = pl.concat([_ids(changed, "message"), with_new_body]).unique()
    aggregates = pl.concat(
        [
            changed.filter(pl.col("aggregate_type") != "message").select(
                "aggregate_type", "aggregate_id"
            ),
            touched.to_frame("aggregate_id").select(
                aggregate_type=pl.lit("message"), aggregate_id="aggregate_id"
            ),
        ]
    ).unique()
    new_events = _events_to_refold(lake, aggregates, continued)
    # nothing to snapshot when only content arrived (no state changed)
    snapshots = (
        None if since.is_empty() else beside.submit(build_snapshots, new_events, since=since)
    )
    old_messages, new_messages, locator = _refresh_messages(
        lake,
        stored,
        touched,
        new_events.filter(pl.col("aggregate_type") == "message"),
        versions,
    )
    refresh.wrote("messages", new_messages)
    rewritten = pl.concat([old_messages, new_messages])

    marker_ids = _ids(changed, "read_marker")
    old_markers = lake.read(
        "read_markers", READ_MARKER_STATE_SCHEMA, where=_isin("marker_id", marker_ids)
    )
    markers = fold_read_markers(new_events)
    room_ids = (
        pl.concat(
            [
                _ids(changed, "room"),
                rewritten["room_id"],
                old_markers["room_id"],
                markers["room_id"],
            ]
        )
        .drop_nulls()
        .unique()
    )
    # read markers, rooms and unread need nothing of the threads: built beside them
    markers_and_rooms = beside.submit(
        _marker_and_room_tables,
        lake,
        (old_markers, markers),
        marker_ids,
        room_ids,
        changed,
        new_events,
        removed,
        (old_messages, new_messages),
        locator,
    )

    thread_ids = rewritten["thread_id"].drop_nulls().unique()
    stored_threads = beside.submit(_read_threads, lake, stored, thread_ids)
    new_threads = build_threads(
        _read_messages(lake, locator, "thread_id", thread_ids, THREADS_INPUT)
    )
    old_threads = stored_threads.result()
    _upsert_partitions(lake, "threads", new_threads, old_threads, versions)
    refresh.wrote("threads", new_threads)
    threads = pl.concat([old_threads, new_threads])
    # the root messages of the threads rewritten: their authors' thread_count and days
    roots = _read_messages(
        lake, locator, "message_id", threads["root_message_id"], PLATFORM_DAILY_INPUT
    )
    thread_roots = _thread_roots(old_threads, new_threads, roots, old_messages)

    account_ids = (
        pl.concat(
            [
                _ids(changed, "account"),
                rewritten["account_id"],
                _reactor_ids(rewritten),
                new_events["account_id"],
                roots["account_id"],
            ]
        )
        .drop_nulls()
        .unique()
    )
    # accounts and the daily tables are built beside (they read disjoint tables);
    # every write stays here, in this order
    accounts = beside.submit(
        _account_table,
        lake,
        account_ids,
        changed,
        new_events,
        removed,
        (old_messages, new_messages),
        tuple(r["account_id"] for r in thread_roots),
        locator,
    )
    daily = beside.submit(_adjusted_daily, lake, (old_messages, new_messages), thread_roots)
    refresh.wrote(SNAPSHOTS, _refresh_snapshots(lake, since, snapshotted, snapshots, versions))
    for tables in (markers_and_rooms, accounts, daily):
        for table, rows, changed_rows in tables.result():
            lake.write(table, rows, metadata=versions)
            refresh.wrote(table, changed_rows)
    return refresh


_AGGREGATE = ["aggregate_type", "aggregate_id"]


def _snapshots_since(lake: Lake, since: pl.DataFrame) -> pl.DataFrame:
    """The stored snapshots (aggregate_type, aggregate_id, as_of_day, since) of the
    aggregates in ``since`` (aggregate_type, aggregate_id, since) on or after their
    ``since`` day."""
    if since.is_empty():
        return pl.DataFrame(schema={**since.schema, "as_of_day": pl.Date})
    return (
        lake.scan(SNAPSHOTS, SCHEMAS[SNAPSHOTS])
        .filter(pl.col("as_of_day") >= since["since"].min())  # prunes day partitions
        .select(*_AGGREGATE, "as_of_day")
        .join(since.lazy(), on=_AGGREGATE)
        .filter(pl.col("as_of_day") >= pl.col("since"))
        .collect()
    )


def _events_to_refold(
    lake: Lake, aggregates: pl.DataFrame, continued: list[pl.DataFrame]
) -> pl.DataFrame:
    """Applied events (``FOLD_COLUMNS``) that fold into the current states of
    ``aggregates`` (aggregate_type, aggregate_id), and into their snapshots from their
    first changed day on: those of ``continued`` (``_continued_from_state``, or [] when
    a line was removed) for the aggregates it holds, all their events for the others,
    read from the days that hold one."""
    done = pl.concat(
        [pl.DataFrame(schema=aggregates.schema), *(f.select(_AGGREGATE) for f in continued)]
    )
    rest = aggregates.join(done.unique(), on=_AGGREGATE, how="anti")
    return pl.concat([*continued, _all_events_of(lake, rest)])


def _continued_from_state(
    lake: Lake, changed: pl.DataFrame, since: pl.DataFrame, snapshotted: pl.DataFrame
) -> list[pl.DataFrame]:
    """For the changed accounts, rooms and read markers that can continue from their
    stored state, that state as events (``state_events``) then the events of their
    changed days; one frame per aggregate type. When lines were only added, an
    aggregate continues if its changed days hold only versions above its stored state
    and it has no snapshot after its first changed day (``since``; ``snapshotted``:
    ``_snapshots_since``): a day's refresh does not read a year of a busy read marker."""
    continuable = pl.col("aggregate_type").is_in(CONTINUABLE_TYPES)
    candidates = changed.filter(continuable)
    if candidates.is_empty():
        return []
    since = since.filter(continuable)
    first = since["since"].min()
    if first <= date.min:
        return []
    days_events = read_applied_events(
        lake,
        pl.col("day").is_in(candidates["day"].unique().implode())
        & _isin("aggregate_id", candidates["aggregate_id"]),
        FOLD_COLUMNS,
    ).join(candidates, on=[*_AGGREGATE, "day"], how="semi")
    # a snapshot after the first changed day: a later day holds events
    changed_later = snapshotted.filter(pl.col("as_of_day") > pl.col("since")).select(_AGGREGATE)
    lowest = days_events.group_by(_AGGREGATE).agg(lowest=pl.col("version").min())
    frames = []
    for kind in CONTINUABLE_TYPES:
        ids = since.filter(pl.col("aggregate_type") == kind)["aggregate_id"]
        if ids.is_empty():
            continue
        stored = _stored_states(lake, kind, ids)
        eligible = (
            ids.to_frame("aggregate_id")
            .with_columns(aggregate_type=pl.lit(kind))
            .join(changed_later, on=_AGGREGATE, how="anti")
            .join(lowest, on=_AGGREGATE, how="left")
            .join(
                stored.select(aggregate_id=STATE_IDS[kind], stored_version="version"),
                on="aggregate_id",
                how="left",
            )
            .filter(
                pl.col("lowest").is_null()
                | pl.col("stored_version").is_null()
                | (pl.col("lowest") > pl.col("stored_version"))
                | pl.lit(kind in WHOLE_LINE_TYPES)
            )
        )["aggregate_id"]
        if eligible.is_empty():
            continue
        before = state_events(
            kind, stored.filter(_isin(STATE_IDS[kind], eligible)), first - timedelta(days=1)
        ).select(FOLD_COLUMNS)
        after = days_events.filter(
            (pl.col("aggregate_type") == kind) & _isin("aggregate_id", eligible)
        )
        frames.append(pl.concat([before, after.select(FOLD_COLUMNS)]))
    return frames


def _all_events_of(lake: Lake, aggregates: pl.DataFrame) -> pl.DataFrame:
    """Every applied event (``FOLD_COLUMNS``) of ``aggregates`` (aggregate_type,
    aggregate_id), read from only the days that hold one (``_days_holding``), which
    costs less than filtering every day's file."""
    if aggregates.is_empty():
        return pl.DataFrame(schema={c: EVENTS_SCHEMA[c] for c in FOLD_COLUMNS})
    ids = aggregates["aggregate_id"].unique()
    days = _days_holding(lake, ids)
    where = pl.col("day").is_in(days.implode()) & _isin("aggregate_id", ids)
    return _with_keys(read_applied_events(lake, where, FOLD_COLUMNS), _AGGREGATE, aggregates)


def _days_holding(lake: Lake, ids: pl.Series) -> pl.Series:
    """The recorded days that hold a line of an aggregate in ``ids``: from the aggregate
    hashes of ``event_keys`` when it mirrors the ``events`` read (then a hash collision
    may add a day), else from two columns of every day of ``events``. The filter runs in
    the scan: only the matching lines' days are kept."""
    version = lake.read_version(EVENTS)
    if event_keys.mirrors(lake, version):
        wanted = pl.col("aggregate").is_in(event_keys.aggregate_hashes(ids).implode())
        return lake.read(event_keys.EVENT_KEYS, columns=["day"], where=wanted)["day"].unique()
    wanted = _isin("aggregate_id", ids)
    return lake.read(EVENTS, EVENTS_SCHEMA, columns=["day"], where=wanted)["day"].unique()


def _refresh_messages(
    lake: Lake,
    stored: pl.DataFrame,
    touched: pl.Series,
    events: pl.DataFrame,
    versions: dict[str, str],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Refold the ``touched`` messages (changed, or whose body arrived) from ``events``
    (all of their applied events), re-thread their reply descendants, and upsert them.
    ``stored`` is ``MESSAGE_INDEX_COLUMNS`` of the whole table before the refresh.
    Returns the old and the new rows of every message touched, and where every message
    now is (``LOCATOR_COLUMNS`` of the whole table, for ``_read_messages`` and
    ``_with_recounted_times``)."""
    states = fold_messages(events)
    # each pass over the index (every message) is done once
    is_touched = _mask(stored, "message_id", touched)
    stored_touched = stored.filter(is_touched)
    relinked = _relinked(stored_touched, states)
    # a touched message whose links stayed keeps its thread and depth, unless it lies
    # below a relinked one (then the walk from that one re-threads it)
    touched_links = message_links(states).join(
        stored_touched.filter(~_isin("message_id", relinked)).select(
            "message_id", "thread_id", "depth"
        ),
        on="message_id",
        how="left",
    )
    links = pl.concat([stored.filter(~is_touched).select(_LINKS), touched_links])
    rethread = reply_descendants(links, relinked)
    in_rethread = _mask(links, "message_id", rethread)
    to_resolve = links.filter(in_rethread)
    threads = pl.concat(
        [
            resolve_threads(
                to_resolve,
                # the settled messages a walk up from a re-threaded one can reach
                settled=links.filter(
                    ~in_rethread & _isin("message_id", to_resolve["reply_to"])
                ).select("message_id", "thread_id", "depth"),
            ),
            touched_links.filter(~_isin("message_id", rethread)).select(
                "message_id", "thread_id", "depth"
            ),
        ]
    )
    affected = pl.concat([touched, rethread]).unique()
    is_affected = is_touched | _mask(stored, "message_id", rethread)
    # the weeks that hold them, whole: the upsert rewrites them (read once, not twice)
    weeks = stored.filter(is_affected)["created_week"]
    partitions = lake.read("messages", MESSAGES_SCHEMA, where=_isin("created_week", weeks))
    old_rows = partitions.filter(_isin("message_id", affected))
    refolded = build_messages(states, threads, read_bodies(lake, states["content_cid"]))
    moved = (
        old_rows.filter(
            ~_isin("message_id", states["message_id"]) & _isin("message_id", threads["message_id"])
        )
        .drop("thread_id", "depth")
        .join(threads, on="message_id")
        .select(MESSAGES_SCHEMA.names())
    )
    new_rows = pl.concat([refolded, moved]).sort("message_id")
    _upsert_partitions(lake, "messages", new_rows, old_rows, versions, read=partitions)
    # the old rows are the stored ones of the affected messages
    locator = pl.concat(
        [stored.filter(~is_affected).select(LOCATOR_COLUMNS), new_rows.select(LOCATOR_COLUMNS)]
    )
    return old_rows, new_rows, locator


_LINKS = ["message_id", "explicit_thread_id", "reply_to", "thread_id", "depth"]


def _relinked(stored: pl.DataFrame, states: pl.DataFrame) -> pl.Series:
    """The ids of the messages whose reply links (existence, explicit_thread_id,
    reply_to) differ between ``stored`` index rows and refolded ``states``: only their
    descendants can change thread or depth."""
    both = stored.select("message_id", "explicit_thread_id", "reply_to", old=pl.lit(True)).join(
        message_links(states).with_columns(new=pl.lit(True)),
        on="message_id",
        how="full",
        coalesce=True,
        suffix="_new",
    )
    same = (
        pl.col("old").is_not_null()
        & pl.col("new").is_not_null()
        & pl.col("explicit_thread_id").eq_missing(pl.col("explicit_thread_id_new"))
        & pl.col("reply_to").eq_missing(pl.col("reply_to_new"))
    )
    return both.filter(~same)["message_id"]


def _upsert_partitions(
    lake: Lake,
    table: str,
    new_rows: pl.DataFrame,
    old_rows: pl.DataFrame,
    versions: dict[str, str],
    read: pl.DataFrame | None = None,
) -> None:
    """Replace ``old_rows`` by ``new_rows`` in a partitioned table, rewriting only the
    partitions either touches (each partition is written whole and sorted). ``read``:
    whole partitions as stored, already read (not read again)."""
    partition, keys = PARTITIONS[table], KEYS[table]
    parts = pl.concat([old_rows[partition], new_rows[partition]]).drop_nulls().unique().sort()
    if parts.is_empty():
        _write_versions_only(lake, table, versions)
        return
    have = read.filter(_isin(partition, parts)) if read is not None else None
    unread = parts if have is None else parts.filter(~parts.is_in(have[partition].implode()))
    kept = lake.read(table, SCHEMAS[table], where=_isin(partition, unread))
    if have is not None:
        kept = pl.concat([have, kept.select(have.columns)])
    kept = _without_keys(kept, keys, old_rows, new_rows)
    rows = pl.concat([kept.select(new_rows.columns), new_rows]).sort([partition, *keys])
    lake.replace_partitions(table, rows, partition, parts.to_list(), metadata=versions)


# Enough of every ``messages`` row to tell which partition holds it, and to recount the
# first and last live message times of an account or a room without a scan.
LOCATOR_COLUMNS = [
    "message_id",
    "thread_id",
    "created_week",
    "account_id",
    "room_id",
    "created_at",
    "deleted",
]
# What a refresh reads of every ``messages`` row, once: the locator and the reply links
# that re-threading walks.
MESSAGE_INDEX_COLUMNS = [*LOCATOR_COLUMNS, "explicit_thread_id", "reply_to", "depth"]


def _messages_naming(lake: Lake, cids: pl.Series) -> pl.Series:
    """The ids of the messages whose current body is one of ``cids`` (late body files):
    read only when some arrived, as content CIDs are the widest column of the index."""
    return lake.read(
        "messages", MESSAGES_SCHEMA, columns=["message_id"], where=_isin("content_cid", cids)
    )["message_id"]


def _read_messages(
    lake: Lake,
    locator: pl.DataFrame,
    column: str,
    values: pl.Series,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """``messages`` rows whose ``column`` (message_id or thread_id) is in ``values``,
    reading only the partitions that ``locator`` (those columns of the whole table, as
    it is now) says hold them: a narrow scan of ~200 week files costs as much as the
    rows themselves."""
    weeks = locator.filter(_isin(column, values))["created_week"]
    where = _isin("created_week", weeks) & _isin(column, values)
    return lake.read("messages", MESSAGES_SCHEMA, columns=columns, where=where)


def _read_threads(lake: Lake, stored: pl.DataFrame, thread_ids: pl.Series) -> pl.DataFrame:
    """The stored ``threads`` rows of ``thread_ids``, reading only the partitions that can
    hold them: a thread starts in the week of its root, one of its messages, so in a
    ``created_week`` of its rows in ``stored`` (the index of the ``messages`` written
    with those threads) rather than in any of ~200 week files."""
    weeks = stored.filter(_isin("thread_id", thread_ids))["created_week"]
    where = _isin("started_week", weeks) & _isin("thread_id", thread_ids)
    return lake.read("threads", THREADS_SCHEMA, where=where)


# A small table's refresh: (table, its rows to write whole, the rows that changed).
TableRows = tuple[str, pl.DataFrame, pl.DataFrame]


def _replaced_keys(lake: Lake, table: str, new_rows: pl.DataFrame, keys: pl.DataFrame) -> TableRows:
    """An unpartitioned table (small: rewritten whole, sorted) with the rows of ``keys``
    (some may vanish) replaced by ``new_rows``."""
    key_columns = KEYS[table]
    current = lake.read(table, SCHEMAS[table])
    kept = _without_keys(current, key_columns, keys, new_rows)
    rows = pl.concat([kept, new_rows.select(SCHEMAS[table].names()).cast(SCHEMAS[table])]).sort(
        key_columns
    )
    return table, rows, new_rows


def _without_keys(rows: pl.DataFrame, keys: list[str], *others: pl.DataFrame) -> pl.DataFrame:
    """``rows`` but those whose ``keys`` one of ``others`` holds (keys are never null).
    Filtered by a mask: an anti join gathers every column, 15x slower on ``messages``."""
    return rows.filter(~_keys_in(keys, others))


def _with_keys(rows: pl.DataFrame, keys: list[str], *others: pl.DataFrame) -> pl.DataFrame:
    """``rows`` whose ``keys`` one of ``others`` holds (a semi join, by a mask)."""
    return rows.filter(_keys_in(keys, others))


def _keys_in(keys: list[str], frames: Sequence[pl.DataFrame]) -> pl.Expr:
    held = pl.concat([frame.select(keys) for frame in frames]).unique()
    if len(keys) == 1:
        return pl.col(keys[0]).is_in(held[keys[0]].implode())
    return pl.struct(keys).is_in(held.select(pl.struct(keys)).to_series().implode())


def _write_versions_only(lake: Lake, table: str, versions: dict[str, str]) -> None:
    empty = pl.DataFrame(schema=SCHEMAS[table])
    lake.replace_partitions(table, empty, PARTITIONS[table], [], metadata=versions)


def _reactor_ids(messages: pl.DataFrame) -> pl.Series:
    reactors = messages.select(pl.col("reactors").explode()).drop_nulls()
    return (
        reactors.unnest("reactors")["account_id"]
        if not reactors.is_empty()
        else pl.Series([], dtype=pl.String)
    )


def _states(
    lake: Lake,
    kind: str,
    ids: pl.Series,
    changed: pl.DataFrame,
    new_events: pl.DataFrame,
    fold,
    schema: pl.Schema,
) -> pl.DataFrame:
    """States of ``ids``: refolded where the aggregate changed, else as stored in its table."""
    key = STATE_IDS[kind]
    refolded = fold(new_events.filter(pl.col("aggregate_type") == kind))
    stored = _stored_states(lake, kind, ids).filter(~_isin(key, _ids(changed, kind)))
    return pl.concat([refolded.select(schema.names()), stored]).sort(key)


def _stored_states(lake: Lake, kind: str, ids: pl.Series) -> pl.DataFrame:
    """The states (``STATE_SCHEMAS[kind]``) of ``ids`` that their table holds (those of
    aggregates that have one: a row of an account only referenced holds none)."""
    key, schema = STATE_IDS[kind], STATE_SCHEMAS[kind]
    table = f"{kind}s"
    rows = lake.read(table, SCHEMAS[table], where=_isin(key, ids) & pl.col("version").is_not_null())
    return rows.rename({"known": "created"}, strict=False).select(schema.names()).cast(schema)


def _referenced(
    lake: Lake,
    column: str,
    ids: pl.Series,
    event_types: list[str] | None,
    new_events: pl.DataFrame,
    removed: bool,
) -> pl.Series:
    """Which of ``ids`` some applied event refers to. When lines were only added, that is
    the ids already referenced (a row without state) plus those the new events name."""
    chosen = pl.col("event_type").is_in(event_types) if event_types else pl.lit(True)
    if removed:
        return read_applied_events(lake, _isin(column, ids) & chosen)[column].unique()
    table = "accounts" if column == "account_id" else "rooms"
    before = lake.read(table, SCHEMAS[table], columns=[column], where=_isin(column, ids))
    return pl.concat([before[column], new_events.filter(chosen)[column]]).drop_nulls().unique()


def _thread_roots(
    old_threads: pl.DataFrame,
    new_threads: pl.DataFrame,
    roots: pl.DataFrame,
    old_messages: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The root messages (account_id, platform, created_at) of the old and of the new
    threads, one per thread with a root in ``messages``, as they were before and after
    the refresh (``roots`` holds the current rows of both sets' roots)."""
    columns = ["message_id", "account_id", "platform", "created_at"]
    before = pl.concat(
        [
            old_messages.select(columns),
            roots.filter(~_isin("message_id", old_messages["message_id"])).select(columns),
        ]
    )
    return root_messages(old_threads, before), root_messages(new_threads, roots.select(columns))


def _account_table(
    lake: Lake,
    ids: pl.Series,
    changed: pl.DataFrame,
    new_events: pl.DataFrame,
    removed: bool,
    rewritten: tuple[pl.DataFrame, pl.DataFrame],
    root_authors: tuple[pl.Series, pl.Series],
    locator: pl.DataFrame,
) -> list[TableRows]:
    """``accounts`` with the rows of ``ids`` replaced: states refolded or as stored,
    measures adjusted by the rewritten (old, new) messages and the (old, new) threads'
    root authors."""
    states = _states(lake, "account", ids, changed, new_events, fold_accounts, ACCOUNT_STATE_SCHEMA)
    referenced = _referenced(lake, "account_id", ids, None, new_events, removed)
    stored = lake.read(
        "accounts",
        ACCOUNTS_SCHEMA,
        columns=ACCOUNT_MEASURES_SCHEMA.names(),
        where=_isin("account_id", ids),
    )
    measures, recount = adjust_account_measures(stored, *rewritten, *root_authors)
    measures = _with_recounted_times(locator, measures, "account_id", recount)
    rows = account_rows(states, referenced, measures).filter(_isin("account_id", ids))
    return [_replaced_keys(lake, "accounts", rows, ids.to_frame("account_id"))]


def _with_recounted_times(
    locator: pl.DataFrame, measures: pl.DataFrame, key: str, recount: pl.Series
) -> pl.DataFrame:
    """``measures`` with the first/last live message times (those of its columns) of
    the ``key`` values in ``recount`` counted afresh from ``locator`` (every message)."""
    if recount.is_empty():
        return measures
    extremes = {"first_message_at": pl.min, "last_message_at": pl.max}
    times = (
        locator.filter(_isin(key, recount) & ~pl.col("deleted"))
        .group_by(key)
        .agg(how("created_at").alias(c) for c, how in extremes.items() if c in measures.columns)
    )
    fresh = recount.to_frame(key).join(times, on=key, how="left")
    return measures.update(
        fresh.cast(measures.select(fresh.columns).schema), on=key, include_nulls=True
    )


def _unread_rows(
    lake: Lake,
    rooms: pl.DataFrame,
    stored: pl.DataFrame,
    read_markers: pl.DataFrame,
    marker_rows: pl.DataFrame,
    old_messages: pl.DataFrame,
    new_messages: pl.DataFrame,
) -> pl.DataFrame:
    """``unread`` rows of the current members of ``rooms``: counted afresh for new
    members and moved markers, else the stored count adjusted by the rewritten
    messages. ``read_markers``: that table as refreshed; ``marker_rows``: the old and
    new states of the changed markers."""
    members = (
        rooms.select("room_id", account_id=pl.col("members")).explode("account_id").drop_nulls()
    )
    recount = unread_pairs_to_recount(members, stored, marker_rows)
    adjusted = adjust_unread(members, stored, recount, old_messages, new_messages)
    if recount.is_empty():
        return adjusted
    rooms_read = _isin("room_id", recount["room_id"])
    pairs = recount.join(
        read_positions(read_markers.filter(rooms_read)),
        on=["account_id", "room_id"],
        how="left",
    )
    # Only the messages after the earliest position are needed (partition-pruned by week).
    since = pairs["read_up_to"].min() if pairs["read_up_to"].null_count() == 0 else None
    if since is not None:
        rooms_read &= (pl.col("created_week") >= since.date() - timedelta(days=6)) & (
            pl.col("created_at") > since
        )
    messages = lake.read("messages", MESSAGES_SCHEMA, columns=UNREAD_INPUT, where=rooms_read)
    counted = count_unread(pairs, messages)
    return pl.concat([adjusted, counted]).sort("account_id", "room_id")


def _room_rows(
    lake: Lake,
    ids: pl.Series,
    changed: pl.DataFrame,
    new_events: pl.DataFrame,
    removed: bool,
    rewritten: tuple[pl.DataFrame, pl.DataFrame],
    locator: pl.DataFrame,
) -> pl.DataFrame:
    """``rooms`` rows for ``ids``: states refolded or as stored, measures adjusted by the
    rewritten (old, new) messages."""
    states = _states(lake, "room", ids, changed, new_events, fold_rooms, ROOM_STATE_SCHEMA)
    referenced = _referenced(
        lake, "room_id", ids, ["MessageCreated", "ReadMarkerMoved"], new_events, removed
    )
    stored = lake.read(
        "rooms", ROOMS_SCHEMA, columns=ROOM_MEASURES_SCHEMA.names(), where=_isin("room_id", ids)
    )
    measures, recount = adjust_room_measures(stored, *rewritten)
    measures = _with_recounted_times(locator, measures, "room_id", recount)
    return room_rows(states, referenced, measures).filter(_isin("room_id", ids))


def _marker_and_room_tables(
    lake: Lake,
    marker_states: tuple[pl.DataFrame, pl.DataFrame],
    marker_ids: pl.Series,
    room_ids: pl.Series,
    changed: pl.DataFrame,
    new_events: pl.DataFrame,
    removed: bool,
    rewritten: tuple[pl.DataFrame, pl.DataFrame],
    locator: pl.DataFrame,
) -> list[TableRows]:
    """``read_markers`` with the changed markers' (old, new) states, ``rooms`` with the
    rows of ``room_ids`` and ``unread`` with the rows of their members replaced."""
    old_markers, markers = marker_states
    marker_table = _replaced_keys(lake, "read_markers", markers, marker_ids.to_frame("marker_id"))
    _, marker_table_rows, _ = marker_table
    rooms = _room_rows(lake, room_ids, changed, new_events, removed, rewritten, locator)
    stored_unread = lake.read("unread", UNREAD_SCHEMA, where=_isin("room_id", room_ids))
    unread = _unread_rows(
        lake, rooms, stored_unread, marker_table_rows, pl.concat([old_markers, markers]), *rewritten
    )
    return [
        marker_table,
        _replaced_keys(lake, "rooms", rooms, room_ids.to_frame("room_id")),
        _replaced_keys(lake, "unread", unread, stored_unread),
    ]


def _adjusted_daily(
    lake: Lake,
    rewritten: tuple[pl.DataFrame, pl.DataFrame],
    thread_roots: tuple[pl.DataFrame, pl.DataFrame],
) -> list[TableRows]:
    """``platform_daily`` and ``account_daily`` adjusted by the rewritten (old, new)
    messages and the (old, new) threads' root messages: per table, its new rows (to
    write whole) and the rows that changed."""
    stored_daily = lake.read("platform_daily", PLATFORM_DAILY_SCHEMA)
    stored_accounts = lake.read("account_daily", ACCOUNT_DAILY_SCHEMA)
    daily, accounts, keys = adjust_daily(
        stored_daily,
        stored_accounts,
        *(rows.select(PLATFORM_DAILY_INPUT) for rows in rewritten),
        *thread_roots,
    )
    tables = []
    for table, rows, stored in (
        ("platform_daily", daily, stored_daily),
        ("account_daily", accounts, stored_accounts),
    ):
        kept = stored.join(keys, on=DAILY_KEY, how="anti", nulls_equal=True)
        tables.append((table, pl.concat([kept, rows]).sort(KEYS[table], nulls_last=True), rows))
    return tables


def _refresh_snapshots(
    lake: Lake,
    since: pl.DataFrame,
    snapshotted: pl.DataFrame,
    fresh: Future[pl.DataFrame] | None,
    versions: dict[str, str],
) -> pl.DataFrame:
    """Replace the changed aggregates' snapshots from their earliest changed day on
    (``since``; earlier snapshots only depend on earlier days, which did not change):
    those stored (``snapshotted``) by ``fresh`` (``build_snapshots`` of every applied
    event of the changed aggregates, from ``since``; None if no aggregate changed)."""
    if fresh is None:
        _write_versions_only(lake, SNAPSHOTS, versions)
        return pl.DataFrame(schema=SNAPSHOTS_SCHEMA)
    rows = fresh.result()
    _upsert_partitions(lake, SNAPSHOTS, rows, snapshotted.drop("since"), versions)
    return rows


def read_projections(lake: Lake, version: int | str | None = None) -> dict[str, pl.DataFrame]:
    """Every projection table, sorted by its key (optionally as of a Delta version/time)."""
    return {
        name: lake.scan(name, SCHEMAS[name], version=version).collect().sort(KEYS[name])
        for name in PROJECTIONS
    }
