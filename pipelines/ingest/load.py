"""Load recorded days of the store into the lake: raw_events, events and their reports.

``load_event_days`` is the whole ingest of a window of days: read and parse the
files, replace the window's partitions of ``raw_events``, ``quarantine`` and
``index_report``, decide every event's status against all other days, and
replace the window's ``events`` and ``conflicts`` partitions. When the window
changes who came first for an event of another day (an earlier day ingested
late), that day's ``events`` and ``conflicts`` partitions are rewritten too, so
the tables never depend on the order in which days were ingested.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from pipelines.ingest import keys as event_keys
from pipelines.ingest.content import CONTENT_SCHEMA, scan_content
from pipelines.ingest.raw import iter_day_batches
from pipelines.ingest.resolve import (
    KEY_COLUMNS,
    POSITION,
    canonical_content,
    conflict_rows,
    repeated_event_ids,
    resolve_event_status,
    status_of,
)
from pipelines.lake.delta import Lake, in_predicate
from pipelines.lake.tables import (
    CONFLICTS,
    CONTENT,
    EVENTS,
    EVENTS_SCHEMA,
    INDEX_REPORT,
    INDEX_REPORT_SCHEMA,
    LINE_ORDER,
    QUARANTINE,
    RAW_EVENTS,
    RAW_EVENTS_SCHEMA,
)

EVENT_STAGES = ("envelope", "payload")


@dataclass
class EventLoad:
    """What one load did: line counts, statuses of the window's events, days rewritten."""

    days: list[date]
    counts: Counter
    statuses: dict[str, int]
    conflicts: int
    other_days_rewritten: list[date] = field(default_factory=list)
    raw_rows: int = 0
    event_rows: int = 0
    raw_head: pl.DataFrame | None = None
    events_head: pl.DataFrame | None = None


# Two groups' writes (raw_events and events; the reports go once a window): enough to
# overlap commits with parsing, bounded in memory.
_MAX_QUEUED_WRITES = 4


class _BackgroundWrites:
    """Delta writes on one background thread, in submission order (delta-rs releases the
    GIL, so parsing and resolving the next group overlap with writing this one)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delta-write")
        self._pending: list[Future] = []

    def submit(self, write: Callable[..., object], *args: object, **kwargs: object) -> Future:
        """Queue a write; with too many queued, first wait for the oldest (memory bound)."""
        while len(self._pending) >= _MAX_QUEUED_WRITES:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(write, *args, **kwargs))
        return self._pending[-1]

    def wait(self) -> None:
        """Block until every submitted write is committed; re-raise the first failure."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


# Bytes of quarantine, index_report and conflicts rows held before they are written
# (a quarantined line keeps up to 64 KiB of its text, so rows alone would not bound it).
_REPORT_BYTES = 64 << 20


class _Reports:
    """The window's rows of the three small tables (quarantine, index_report, conflicts),
    written together: a group adds a handful of rows to each, and a Delta commit costs
    far more than that, so three commits per window (or per ``_REPORT_BYTES`` held)
    replace three per group. Days are added in order, so the rows stay in table order."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._clear()

    def _clear(self) -> None:
        self.days: list[date] = []
        self.frames: dict[str, list[pl.DataFrame]] = {
            QUARANTINE: [],
            INDEX_REPORT: [],
            CONFLICTS: [],
        }
        self.size = 0

    def add(
        self,
        days: list[date],
        quarantine: pl.DataFrame,
        index_report: pl.DataFrame,
        conflicts: pl.DataFrame,
    ) -> None:
        self.days += days
        self.frames[QUARANTINE].append(
            quarantine.sort("day", "source_file", "line_number", nulls_last=True)
        )
        self.frames[INDEX_REPORT].append(index_report.sort(INDEX_REPORT_SCHEMA.names()))
        self.frames[CONFLICTS].append(conflicts)
        self.size += sum(f.estimated_size() for f in (quarantine, index_report, conflicts))

    def flush(self, submit: Callable[..., None]) -> None:
        """Replace the added days' slices of the three tables (through ``submit``)."""
        if not self.days:
            return
        days, frames = self.days, {name: pl.concat(f) for name, f in self.frames.items()}
        self._clear()
        stages = f"{in_predicate('day', days)} AND {in_predicate('stage', EVENT_STAGES)}"
        submit(self.lake.write, QUARANTINE, frames[QUARANTINE], predicate=stages)
        submit(self.lake.replace_days, INDEX_REPORT, frames[INDEX_REPORT], days)
        submit(self.lake.replace_days, CONFLICTS, frames[CONFLICTS], days)


_NO_STATUSES = pl.DataFrame(
    schema={
        **{c: EVENTS_SCHEMA[c] for c in KEY_COLUMNS},
        "status": pl.String,
        **{f"winner_{c}": EVENTS_SCHEMA[c] for c in POSITION},
    }
)


class _KeyIndex:
    """Every line seen so far (of earlier days and of this window) as its position and
    64-bit hashes of its event id and its (aggregate_id, version) slot: 32 bytes a line,
    whatever its ids, so memory follows a group of rows rather than the whole store.

    Equal keys have equal hashes, so the lines whose hashes repeat include every line
    that shares its id or slot with another; their real keys (``shared_keys``) are read
    back and resolved exactly, so a hash collision costs only a needless lookup.
    ``stored``: the keys of every recorded line (``event_keys.scan_keys``)."""

    def __init__(self, stored: pl.LazyFrame, history: pl.Expr):
        history_lines = stored.filter(history)
        # read on a thread while the first group is parsed (a day's load parses in process)
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="key-index")
        self._history: Future | None = reader.submit(
            pl.collect_all,
            [
                history_lines.select(*POSITION, "id", "slot"),
                # the lines that lost their place: a window that drops a rival gives it back
                history_lines.filter(pl.col("status").is_not_null()).select(*POSITION, "status"),
            ],
        )
        reader.shutdown(wait=False)
        self.keys = pl.DataFrame(schema=_SHARED_SCHEMA)  # real keys of the shared lines read

    def _read(self) -> None:
        if self._history is not None:
            self._lines, self._lost = self._history.result()
            self._history = None

    @property
    def lines(self) -> pl.DataFrame:
        self._read()
        return self._lines

    @property
    def lost(self) -> pl.DataFrame:
        self._read()
        return self._lost

    def add_and_check(self, window: pl.DataFrame) -> bool:
        """Add the lines of ``window``; True if one repeats an id or slot of a line seen."""
        new = window.select(*POSITION, **_line_hashes())
        repeats = bool(
            new["id"].is_duplicated().any()
            or new["slot"].is_duplicated().any()
            # probe the history with the (small) new set, not the other way round
            or self.lines["id"].is_in(new["id"].implode()).any()
            or self.lines["slot"].is_in(new["slot"].implode()).any()
        )
        # chunks, not a copy of the whole history each window
        self._lines = pl.concat([self.lines, new], rechunk=False)
        return repeats

    def shared_keys(self, lake: Lake, window: pl.DataFrame) -> pl.DataFrame:
        """``KEY_COLUMNS`` + source_file of every line seen whose id or slot hash repeats:
        from ``window`` for its lines, else from ``events`` (so the lines of earlier
        groups must be written), each line read once per load."""
        repeated = pl.col("id").is_duplicated() | pl.col("slot").is_duplicated()
        shared = self.lines.filter(repeated).select(POSITION)
        missing = shared.join(self.keys, on=POSITION, how="anti")
        in_hand = window.select(_SHARED_SCHEMA.names()).join(missing, on=POSITION, how="semi")
        elsewhere = missing.join(in_hand, on=POSITION, how="anti")
        stored = (
            lake.scan(EVENTS, EVENTS_SCHEMA)
            .filter(pl.col("day").is_in(elsewhere["day"].unique().implode()))
            .select(_SHARED_SCHEMA.names())
            .join(elsewhere.lazy(), on=POSITION, how="semi")
            .collect(engine="streaming")
            if not elsewhere.is_empty()
            else pl.DataFrame(schema=_SHARED_SCHEMA)
        )
        self.keys = pl.concat([self.keys, in_hand, stored])
        return self.keys


def _line_hashes() -> dict[str, pl.Expr]:
    return {c: event_keys.KEY_HASHES[c] for c in ("id", "slot")}


_SHARED_SCHEMA = pl.Schema({c: EVENTS_SCHEMA[c] for c in [*KEY_COLUMNS, "source_file"]})


def in_line_order(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` sorted by ``LINE_ORDER``, as they are written. The parse yields them in
    that order already, so they are only checked (three narrow columns, ~1 ms) and
    sorted if not: sorting a group of wide rows took 1.4 s of the main process at 1M events."""
    if rows.select(pl.struct(LINE_ORDER)).to_series().is_sorted():
        return rows
    return rows.sort(LINE_ORDER)


def load_event_days(lake: Lake, store: Path, days: list[date], max_rows: int = 50_000) -> EventLoad:
    """Ingest the event files of ``days`` (a window) into the lake; see the module doc.

    Days are processed in order, in groups of about ``max_rows`` rows, so memory is
    bounded by a group, not by the window. A line's status depends only on the lines
    before it, so each group's statuses are final once the groups before it are known.
    """
    days = sorted(set(days))
    # each table opened once (its log read once, not on every write and read): the
    # lake_events pool runs one load at a time, and a write losing a race to another
    # writer of the shared quarantine opens that table again
    lake = lake.for_one_run({})
    # the keys of the other days' lines: ~50 week files of event_keys when it mirrors
    # events (a few hundredths of a second at a year), else every day of events
    events_version = lake.version(EVENTS)
    mirrored = event_keys.mirrors(lake, events_version)
    stored = event_keys.scan_keys(lake, events_version, mirrored)
    seen = _KeyIndex(stored, ~pl.col("day").is_in(days))
    # per commit to events: its future version, its days, its lines' keys
    events_written: list[tuple[Future, list[date], pl.DataFrame]] = []
    load = EventLoad(days=days, counts=Counter(), statuses={}, conflicts=0)
    statuses, keys = _NO_STATUSES, pl.DataFrame(schema=_SHARED_SCHEMA)
    contested = False
    unwritten = set(days)
    writes = _BackgroundWrites()
    reports = _Reports(lake)
    try:
        for group, batch in iter_day_batches(store, days, max_rows=max_rows):
            unwritten -= set(group)
            raw = in_line_order(batch.rows.select(RAW_EVENTS_SCHEMA.names()))
            writes.submit(lake.replace_days, RAW_EVENTS, raw, group)

            window = batch.rows.filter(pl.col("payload_error").is_null())
            if seen.add_and_check(window):  # some id or slot repeats: order those lines
                contested = True
                writes.wait()  # the earlier groups' lines, readable in the lake
                keys = seen.shared_keys(lake, window)
                contents = _contents(lake, window, keys, sorted(unwritten | set(group)))
                statuses = resolve_event_status(keys, contents)
            else:  # every new line is alone so far: all applied
                statuses = _NO_STATUSES
            events = in_line_order(status_of(window, statuses).select(EVENTS_SCHEMA.names()))
            version = writes.submit(lake.replace_days, EVENTS, events, group)
            events_written.append((version, group, event_keys.key_rows(events.lazy()).collect()))
            conflicts = conflict_rows(statuses, keys).filter(pl.col("day").is_in(group))
            reports.add(group, batch.quarantine, batch.index_report, conflicts)
            if reports.size >= _REPORT_BYTES:
                reports.flush(writes.submit)

            load.counts.update(batch.counts)
            for status, n in events.group_by("status").len().iter_rows():
                load.statuses[status] = load.statuses.get(status, 0) + n
            load.conflicts += conflicts.height
            load.raw_rows += raw.height
            load.event_rows += events.height
            if load.raw_head is None or load.raw_head.is_empty():
                load.raw_head, load.events_head = raw.head(5), events.head(5)
        reports.flush(writes.submit)
    finally:
        writes.close()

    lost = seen.lost
    contested = contested or not lost.is_empty()
    if contested:
        if statuses is _NO_STATUSES:  # the last group was clean; earlier ones were not
            nothing_in_hand = pl.DataFrame(schema=RAW_EVENTS_SCHEMA)
            keys = seen.shared_keys(lake, nothing_in_hand)
            statuses = resolve_event_status(keys, _contents(lake, nothing_in_hand, keys, []))
        changed = _rewrite_changed_statuses(lake, lost, statuses, days)
        if changed:
            conflicts = conflict_rows(statuses, keys).filter(pl.col("day").is_in(changed))
            lake.replace_days(CONFLICTS, conflicts, changed)
        load.other_days_rewritten = changed
    _follow_events(lake, events_version, mirrored, events_written, load.other_days_rewritten)
    return load


def _follow_events(
    lake: Lake,
    before: int | None,
    mirrored: bool,
    written: list[tuple[Future, list[date], pl.DataFrame]],
    rewritten: list[date],
) -> None:
    """Bring ``event_keys`` up to date after a load that found ``events`` at version
    ``before`` (``mirrored`` by ``event_keys`` or not) and wrote ``written`` (per commit:
    its future version, its days and its lines' keys), then ``rewritten`` (other days).
    From the keys in hand when no other writer committed to ``events`` in between,
    else from ``events`` itself."""
    now = written[-1][0].result() if written else before
    if now is None:
        return  # no events table
    days = [day for _, group, _ in written for day in group]
    keys = [rows.lazy() for _, _, rows in written]
    commits = len(written)
    if rewritten:
        now, commits = lake.version(EVENTS), commits + 1
        days += rewritten
        keys.append(event_keys.key_rows(lake.scan(EVENTS).filter(pl.col("day").is_in(rewritten))))
    alone = now == (-1 if before is None else before) + commits
    rows = pl.concat([pl.LazyFrame(schema=event_keys.EVENT_KEYS_SCHEMA), *keys]).collect()
    if alone and before is None:  # the lines written are every line
        event_keys.rewrite_keys(lake, now, rows)
    elif alone and mirrored:
        if days:
            event_keys.replace_key_days(lake, now, days, rows)
    else:
        event_keys.rewrite_keys(lake, now)


def _contents(
    lake: Lake, window: pl.DataFrame, keys: pl.DataFrame, skip_days: list[date]
) -> pl.DataFrame:
    """Canonical content of every line whose event_id repeats among ``keys``: from the
    rows in hand, or from ``raw_events`` for the other days (``skip_days`` are not, or
    not yet, written; the others must be)."""
    repeated = repeated_event_ids(keys)
    if repeated.is_empty():
        return pl.DataFrame(
            schema={**{c: EVENTS_SCHEMA[c] for c in POSITION}, "content": pl.String}
        )
    in_window = window.filter(pl.col("event_id").is_in(repeated.implode()))
    stored = lake.read(
        RAW_EVENTS,
        RAW_EVENTS_SCHEMA,
        where=pl.col("event_id").is_in(repeated.implode()) & ~pl.col("day").is_in(skip_days),
    )
    columns = RAW_EVENTS_SCHEMA.names()
    return canonical_content(pl.concat([in_window.select(columns), stored.select(columns)]))


def _rewrite_changed_statuses(
    lake: Lake, lost: pl.DataFrame, statuses: pl.DataFrame, window: list[date]
) -> list[date]:
    """Rewrite the ``events`` partitions of days outside ``window`` where a line's status
    changed (``lost``: the lines that were not applied; every other line was); return
    those days."""
    before = lost.select(*POSITION, old="status")
    after = statuses.filter(~pl.col("day").is_in(window)).select(*POSITION, new="status")
    changed = (
        before.join(after, on=POSITION, how="full", coalesce=True)
        .with_columns(pl.col("old", "new").fill_null("applied"))
        .filter(pl.col("old") != pl.col("new"))
    )
    days = sorted(changed["day"].unique().to_list())
    if not days:
        return []
    stored = lake.read(EVENTS, EVENTS_SCHEMA, where=pl.col("day").is_in(days))
    updated = (
        status_of(stored.drop("status"), statuses).select(EVENTS_SCHEMA.names()).sort(LINE_ORDER)
    )
    lake.replace_days(EVENTS, updated, days)
    return days


@dataclass
class ContentLoad:
    """What one content scan did."""

    read: int
    verified: int
    hash_mismatches: int
    skipped_known: int
    reports: dict[str, int]
    total_rows: int
    head: pl.DataFrame


def load_content(lake: Lake, store: Path) -> ContentLoad:
    """Verify new content files into ``content``; their rejects replace the quarantine's
    "content" rows. Files already verified are not read again (content is immutable)."""
    known = lake.read(CONTENT, CONTENT_SCHEMA, columns=["path", "status"])
    scan = scan_content(store, dict(known.iter_rows()))
    if not scan.content.is_empty():
        lake.write(CONTENT, scan.content, predicate=in_predicate("path", scan.content["path"]))
    quarantine = scan.reports.select(
        day=pl.lit(None, dtype=pl.Date),
        stage=pl.lit("content"),
        source_file="path",
        line_number=pl.lit(None, dtype=pl.Int64),
        event_id=pl.lit(None, dtype=pl.String),
        raw_text="detail",
        reason="reason",
    )
    lake.write(QUARANTINE, quarantine, predicate="stage = 'content'")
    statuses = scan.content["status"]
    return ContentLoad(
        read=scan.content.height,
        verified=int((statuses == "ok").sum()),
        hash_mismatches=int((statuses == "hash_mismatch").sum()),
        skipped_known=scan.skipped_known,
        reports=dict(scan.reports.group_by("reason").len().sort("reason").iter_rows()),
        total_rows=known.height
        + scan.content.height
        - int(known["path"].is_in(scan.content["path"].implode()).sum()),
        head=scan.content.head(5),
    )
