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


# About two groups' writes: enough to overlap commits with parsing, bounded in memory.
_MAX_QUEUED_WRITES = 10


class _BackgroundWrites:
    """Delta writes on one background thread, in submission order (delta-rs releases the
    GIL, so parsing and resolving the next group overlap with writing this one)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delta-write")
        self._pending: list[Future] = []

    def submit(self, write: Callable[..., object], *args: object, **kwargs: object) -> None:
        """Queue a write; with too many queued, first wait for the oldest (memory bound)."""
        while len(self._pending) >= _MAX_QUEUED_WRITES:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(write, *args, **kwargs))

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
        submit(
            self.lake.write,
            CONFLICTS,
            frames[CONFLICTS],
            predicate=in_predicate("day", days),
            partition_by=["day"],
        )


_NO_STATUSES = pl.DataFrame(
    schema={
        **{c: EVENTS_SCHEMA[c] for c in KEY_COLUMNS},
        "status": pl.String,
        **{f"winner_{c}": EVENTS_SCHEMA[c] for c in POSITION},
    }
)


class _KeyIndex:
    """64-bit hashes of the event ids and (aggregate_id, version) slots seen so far, to
    tell cheaply whether new lines share either with an earlier line (the rare case that
    needs ordering). A hash collision only costs an unnecessary resolution."""

    def __init__(self, keys: pl.DataFrame):
        self.ids, self.slots = self._hashes(keys)

    @staticmethod
    def _hashes(keys: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
        ids = keys["event_id"].hash().rename("id")
        slots = keys.select(pl.struct("aggregate_id", "version").hash()).to_series()
        return ids, slots.rename("slot")

    def add_and_check(self, keys: pl.DataFrame) -> bool:
        """Add the keys of new lines; True if one repeats among them or an earlier line's."""
        ids, slots = self._hashes(keys)
        repeats = bool(
            ids.is_duplicated().any()
            or slots.is_duplicated().any()
            # probe the history with the (small) new set, not the other way round
            or self.ids.is_in(ids.implode()).any()
            or self.slots.is_in(slots.implode()).any()
        )
        self.ids = pl.concat([self.ids, ids], rechunk=True)
        self.slots = pl.concat([self.slots, slots], rechunk=True)
        return repeats


def load_event_days(lake: Lake, store: Path, days: list[date], max_rows: int = 50_000) -> EventLoad:
    """Ingest the event files of ``days`` (a window) into the lake; see the module doc.

    Days are processed in order, in groups of about ``max_rows`` rows, so memory is
    bounded by a group, not by the window. A line's status depends only on the lines
    before it, so each group's statuses are final once the groups before it are known.
    """
    days = sorted(set(days))
    history = lake.read(
        EVENTS,
        EVENTS_SCHEMA,
        columns=[*KEY_COLUMNS, "source_file", "status"],
        where=~pl.col("day").is_in(days),
    )
    candidates = history.drop("status")
    seen = _KeyIndex(candidates)
    # A history line that lost its place may win it back if this window drops its rival.
    contested = bool((history["status"] != "applied").any())
    load = EventLoad(days=days, counts=Counter(), statuses={}, conflicts=0)
    statuses = _NO_STATUSES
    unwritten = set(days)
    writes = _BackgroundWrites()
    reports = _Reports(lake)
    try:
        for group, batch in iter_day_batches(store, days, max_rows=max_rows):
            unwritten -= set(group)
            raw = batch.rows.select(RAW_EVENTS_SCHEMA.names()).sort(LINE_ORDER)
            writes.submit(lake.replace_days, RAW_EVENTS, raw, group)

            window = batch.rows.filter(pl.col("payload_error").is_null())
            candidates = pl.concat([candidates, window.select(*KEY_COLUMNS, "source_file")])
            if seen.add_and_check(window):  # some id or slot repeats: order those lines
                contested = True
                contents = _contents(
                    lake, window, candidates, sorted(unwritten | set(group)), writes.wait
                )
                statuses = resolve_event_status(candidates, contents)
            else:  # every new line is alone so far: all applied
                statuses = _NO_STATUSES
            events = status_of(window, statuses).select(EVENTS_SCHEMA.names()).sort(LINE_ORDER)
            writes.submit(lake.replace_days, EVENTS, events, group)
            conflicts = conflict_rows(statuses, candidates).filter(pl.col("day").is_in(group))
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

    if contested:
        if statuses is _NO_STATUSES:  # the last group was clean; earlier ones were not
            nothing_in_hand = pl.DataFrame(schema=RAW_EVENTS_SCHEMA)
            contents = _contents(lake, nothing_in_hand, candidates, [], lambda: None)
            statuses = resolve_event_status(candidates, contents)
        changed = _rewrite_changed_statuses(lake, history, statuses)
        if changed:
            conflicts = conflict_rows(statuses, candidates).filter(pl.col("day").is_in(changed))
            lake.write(
                CONFLICTS, conflicts, predicate=in_predicate("day", changed), partition_by=["day"]
            )
        load.other_days_rewritten = changed
    return load


def _contents(
    lake: Lake,
    window: pl.DataFrame,
    candidates: pl.DataFrame,
    skip_days: list[date],
    flush: Callable[[], None],
) -> pl.DataFrame:
    """Canonical content of every line whose event_id repeats: from the rows in hand, or
    from ``raw_events`` for the other days (``skip_days`` are not, or not yet, written).
    ``flush`` makes earlier groups' writes visible before ``raw_events`` is read."""
    repeated = repeated_event_ids(candidates)
    if repeated.is_empty():
        return pl.DataFrame(
            schema={**{c: EVENTS_SCHEMA[c] for c in POSITION}, "content": pl.String}
        )
    flush()
    in_window = window.filter(pl.col("event_id").is_in(repeated.implode()))
    stored = lake.read(
        RAW_EVENTS,
        RAW_EVENTS_SCHEMA,
        where=pl.col("event_id").is_in(repeated.implode()) & ~pl.col("day").is_in(skip_days),
    )
    columns = RAW_EVENTS_SCHEMA.names()
    return canonical_content(pl.concat([in_window.select(columns), stored.select(columns)]))


def _rewrite_changed_statuses(
    lake: Lake, history: pl.DataFrame, statuses: pl.DataFrame
) -> list[date]:
    """Rewrite the ``events`` partitions of other days whose statuses changed; return them."""
    changed = (
        history.join(statuses.select(*POSITION, new_status="status"), on=POSITION, how="left")
        .with_columns(pl.col("new_status").fill_null("applied"))
        .filter(pl.col("status") != pl.col("new_status"))
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
