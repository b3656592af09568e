"""Data-quality rules over the lake, as pure functions (no Dagster).

Each rule reads what it needs from a ``Lake`` and returns an ``Outcome``: whether
the rule holds, the counts behind the verdict, and a few offending rows. The
Dagster asset checks (``pipelines/assets/checks.py``) only turn outcomes into
check results; tests call these functions directly.

Thresholds that are a matter of taste come from environment variables, read when
a rule runs (so a deployment can change them without a code change):

| variable | default | rule |
|---|---|---|
| ``LAKEHOUSE_MAX_QUARANTINE_RATE`` | ``0.001`` | share of event lines quarantined |
| ``LAKEHOUSE_MAX_ORPHAN_SHARE`` | ``0.001`` | share of content files no event references |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import polars as pl

from pipelines.ingest.content import CONTENT_SCHEMA
from pipelines.ingest.resolve import version_gaps
from pipelines.lake.delta import Lake
from pipelines.lake.projections import SCHEMAS, replay_projections
from pipelines.lake.tables import (
    CONFLICTS,
    CONFLICTS_SCHEMA,
    CONTENT,
    EVENTS,
    EVENTS_SCHEMA,
    INDEX_REPORT,
    INDEX_REPORT_SCHEMA,
    QUARANTINE,
    QUARANTINE_SCHEMA,
    RAW_EVENTS,
    RAW_EVENTS_SCHEMA,
)

MAX_QUARANTINE_RATE_ENV = "LAKEHOUSE_MAX_QUARANTINE_RATE"
DEFAULT_MAX_QUARANTINE_RATE = 0.001
MAX_ORPHAN_SHARE_ENV = "LAKEHOUSE_MAX_ORPHAN_SHARE"
DEFAULT_MAX_ORPHAN_SHARE = 0.001
SAMPLE_ROWS = 10
EVENT_STAGES = ("envelope", "payload")
CID_PATTERN = re.compile(r"bafkrei[a-z2-7]{52}")
RECOUNTED = ("messages", "threads", "accounts", "rooms", "platform_daily")


@dataclass(frozen=True)
class Outcome:
    """A rule's verdict: ``passed``, the ``counts`` behind it and up to SAMPLE_ROWS bad rows."""

    passed: bool
    summary: str
    counts: dict[str, int | float] = field(default_factory=dict)
    sample: pl.DataFrame | None = None


def threshold_from_env(name: str, default: float) -> float:
    """A share in [0, 1] from the environment variable ``name`` (``default`` when unset)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={raw!r}: expected a share between 0 and 1")
    return value


def _sample(frame: pl.DataFrame) -> pl.DataFrame | None:
    return None if frame.is_empty() else frame.head(SAMPLE_ROWS)


# -- ingest


def quarantine_rate(lake: Lake, max_rate: float | None = None) -> Outcome:
    """Quarantined event lines / all event lines, over every ingested day.

    Event lines are the envelope-valid lines (``raw_events``) plus the envelope
    rejects; quarantined ones are envelope and payload rejects (content rejects are
    the CID rule's business). Passes when the rate is at most ``max_rate``
    (default: LAKEHOUSE_MAX_QUARANTINE_RATE, else 0.1%).
    """
    if max_rate is None:
        max_rate = threshold_from_env(MAX_QUARANTINE_RATE_ENV, DEFAULT_MAX_QUARANTINE_RATE)
    rejected = lake.read(
        QUARANTINE,
        QUARANTINE_SCHEMA,
        columns=["day", "stage", "reason"],
        where=pl.col("stage").is_in(EVENT_STAGES),
    )
    envelope_rejects = int((rejected["stage"] == "envelope").sum())
    lines = lake.row_count(RAW_EVENTS) + envelope_rejects
    rate = rejected.height / lines if lines else 0.0
    by_day = (
        lake.scan(RAW_EVENTS, RAW_EVENTS_SCHEMA)
        .group_by("day")
        .agg(rows=pl.len())
        .collect()
        .join(
            rejected.group_by("day").agg(
                quarantined=pl.len(), envelope=(pl.col("stage") == "envelope").sum()
            ),
            on="day",
            how="full",
            coalesce=True,
        )
        .fill_null(0)
        .with_columns(rate=pl.col("quarantined") / (pl.col("rows") + pl.col("envelope")))
    )
    worst = by_day["rate"].max() if not by_day.is_empty() else 0.0
    reasons = (
        rejected.group_by("stage", "reason").agg(lines=pl.len()).sort("lines", descending=True)
    )
    passed = rate <= max_rate
    return Outcome(
        passed=passed,
        summary=f"{rejected.height} of {lines} event lines quarantined ({rate:.3%}; "
        f"limit {max_rate:.3%})",
        counts={
            "lines": lines,
            "quarantined": rejected.height,
            "rate": round(rate, 6),
            "max_rate": max_rate,
            "worst_day_rate": round(float(worst or 0.0), 6),
        },
        sample=_sample(reasons),
    )


def index_mismatches(lake: Lake) -> Outcome:
    """Passes when no closed day's index.json disagrees with its files (``index_report``)."""
    report = lake.read(INDEX_REPORT, INDEX_REPORT_SCHEMA)
    problems = dict(report.group_by("problem").len().sort("problem").iter_rows())
    return Outcome(
        passed=report.is_empty(),
        summary=f"{report.height} index.json disagreements on {report['day'].n_unique()} days",
        counts={"rows": report.height, "days": report["day"].n_unique(), **problems},
        sample=_sample(report.sort("day", "index_file", "file", nulls_last=True)),
    )


def event_conflicts(lake: Lake) -> Outcome:
    """Passes when no line lost its event id or (aggregate, version) slot to a line with
    other content (the ``conflicts`` table is empty)."""
    conflicts = lake.read(CONFLICTS, CONFLICTS_SCHEMA)
    kinds = dict(conflicts.group_by("kind").len().sort("kind").iter_rows())
    return Outcome(
        passed=conflicts.is_empty(),
        summary=f"{conflicts.height} conflicting lines "
        f"({kinds.get('version_conflict', 0)} version, "
        f"{kinds.get('duplicate_conflict', 0)} duplicate id)",
        counts={"conflicts": conflicts.height, **kinds},
        sample=_sample(
            conflicts.select(
                "day", "kind", "aggregate_id", "version", "event_id", "winner_event_id"
            )
        ),
    )


def event_version_gaps(lake: Lake) -> Outcome:
    """Passes when every aggregate's applied versions run 1..n without holes.

    Applied events of unknown types count: they occupy their slot.
    """
    applied = lake.read(
        EVENTS,
        EVENTS_SCHEMA,
        columns=["aggregate_type", "aggregate_id", "version"],
        where=pl.col("status") == "applied",
    )
    gaps = version_gaps(applied)
    missing = int(gaps["missing"].list.len().sum()) if not gaps.is_empty() else 0
    return Outcome(
        passed=gaps.is_empty(),
        summary=f"{gaps.height} aggregates miss {missing} versions",
        counts={"aggregates": gaps.height, "missing_versions": missing},
        sample=_sample(
            gaps.with_columns(pl.col("missing").cast(pl.List(pl.String)).list.join(","))
        ),
    )


# -- content


def cid_verification(lake: Lake) -> Outcome:
    """Passes when every content file hashes to the CID in its name (no ``hash_mismatch``)."""
    content = lake.read(CONTENT, CONTENT_SCHEMA, columns=["cid", "kind", "path", "status"])
    bad = content.filter(pl.col("status") == "hash_mismatch")
    return Outcome(
        passed=bad.is_empty(),
        summary=f"{bad.height} of {content.height} content files fail their CID",
        counts={"files": content.height, "hash_mismatch": bad.height},
        sample=_sample(bad.select("path", "kind", "cid")),
    )


def referenced_cids(events: pl.DataFrame) -> pl.Series:
    """Every CID that an event line names (body ``content_cid`` or an attachment)."""
    return (
        pl.concat(
            [
                events["content_cid"].drop_nulls(),
                events["attachments"].explode().drop_nulls(),
            ]
        )
        .unique()
        .rename("cid")
    )


def orphaned_content(lake: Lake, max_share: float | None = None) -> Outcome:
    """Content files that no event line (any status) references: garbage-collection candidates.

    Producers write content before events, so a few orphans are normal (an edit that
    was never sent, a sync ahead of the log). Fails when more than ``max_share`` of
    the files are orphans (default: LAKEHOUSE_MAX_ORPHAN_SHARE, else 0.1%) or when
    an orphan is named by a quarantined line: its event was rejected and the body
    stayed behind.
    """
    if max_share is None:
        max_share = threshold_from_env(MAX_ORPHAN_SHARE_ENV, DEFAULT_MAX_ORPHAN_SHARE)
    content = lake.read(CONTENT, CONTENT_SCHEMA, columns=["cid", "kind", "path", "size"])
    events = lake.read(EVENTS, EVENTS_SCHEMA, columns=["content_cid", "attachments"])
    orphans = content.filter(~pl.col("cid").is_in(referenced_cids(events).implode()))
    rejected_text = lake.read(
        QUARANTINE,
        QUARANTINE_SCHEMA,
        columns=["raw_text"],
        where=pl.col("stage").is_in(EVENT_STAGES),
    )["raw_text"]
    named = {cid for text in rejected_text.drop_nulls() for cid in CID_PATTERN.findall(text)}
    orphans = orphans.with_columns(of_rejected_event=pl.col("cid").is_in(list(named)))
    share = orphans.height / content.height if content.height else 0.0
    of_rejected = int(orphans["of_rejected_event"].sum())
    passed = share <= max_share and of_rejected == 0
    return Outcome(
        passed=passed,
        summary=f"{orphans.height} of {content.height} content files referenced by no event "
        f"({share:.3%}; limit {max_share:.3%}); {of_rejected} named only by quarantined lines",
        counts={
            "files": content.height,
            "orphans": orphans.height,
            "orphan_bytes": int(orphans["size"].sum() or 0),
            "share": round(share, 6),
            "max_share": max_share,
            "of_rejected_events": of_rejected,
        },
        sample=_sample(
            orphans.sort("of_rejected_event", "path", descending=[True, False]).select(
                "path", "kind", "size", "of_rejected_event"
            )
        ),
    )


# -- read models


def unknown_references(lake: Lake) -> Outcome:
    """Passes when every account and room that a message names was created (``known``)."""
    messages = lake.read("messages", SCHEMAS["messages"], columns=["account_id", "room_id"])
    accounts = lake.read("accounts", SCHEMAS["accounts"], columns=["account_id", "known"])
    rooms = lake.read("rooms", SCHEMAS["rooms"], columns=["room_id", "known"])

    def unknown(column: str, table: pl.DataFrame, kind: str) -> pl.DataFrame:
        named = messages.drop_nulls(column).group_by(column).agg(messages=pl.len())
        return (
            named.join(table, on=column, how="left")
            .filter(~pl.col("known").fill_null(False))
            .select(kind=pl.lit(kind), id=pl.col(column), messages="messages")
        )

    bad = pl.concat(
        [unknown("account_id", accounts, "account"), unknown("room_id", rooms, "room")]
    ).sort("messages", "id", descending=[True, False])
    by_kind = bad.group_by("kind").agg(ids=pl.len(), messages=pl.col("messages").sum())
    counts = {f"unknown_{k}s": 0 for k in ("account", "room")}
    counts |= {f"messages_with_unknown_{k}": 0 for k in ("account", "room")}
    for kind, ids, n in by_kind.iter_rows():
        counts[f"unknown_{kind}s"] = ids
        counts[f"messages_with_unknown_{kind}"] = n
    return Outcome(
        passed=bad.is_empty(),
        summary=f"{counts['unknown_accounts']} unknown accounts, {counts['unknown_rooms']} "
        "unknown rooms referenced by messages",
        counts=counts,
        sample=_sample(bad),
    )


def projection_figures(tables: dict[str, pl.DataFrame]) -> dict[str, dict[str, int]]:
    """Per read model, the figures a recount must reproduce (row counts and sums)."""
    messages, threads = tables["messages"], tables["threads"]
    accounts, rooms, daily = tables["accounts"], tables["rooms"], tables["platform_daily"]
    return {
        "messages": {
            "rows": messages.height,
            "live": int((~messages["deleted"]).sum()),
            "deleted": int(messages["deleted"].sum()),
        },
        "threads": {
            "rows": threads.height,
            "messages": int(threads["message_count"].sum() or 0),
        },
        "accounts": {
            "rows": accounts.height,
            "known": int(accounts["known"].sum()),
            "messages": int(accounts["message_count"].sum() or 0),
        },
        "rooms": {
            "rows": rooms.height,
            "known": int(rooms["known"].sum()),
            "messages": int(rooms["message_count"].sum() or 0),
        },
        "platform_daily": {
            "rows": daily.height,
            "messages_created": int(daily["messages_created"].sum() or 0),
            "messages_deleted": int(daily["messages_deleted"].sum() or 0),
            # adjusted through account_daily, not recounted, on an incremental refresh
            "active_accounts": int(daily["active_accounts"].sum() or 0),
        },
    }


@dataclass(frozen=True)
class ProjectionSnapshot:
    """The read models' versions and the ``events``/``content`` versions they were built
    from (None: current), so that a recount compares like with like."""

    table_versions: dict[str, int | None]
    events_version: int | None
    content_version: int | None


def projection_snapshot(lake: Lake) -> ProjectionSnapshot:
    """The latest commit of each RECOUNTED table and the input versions it records.

    Every refresh commits to every read model with the ``events_version`` and
    ``content_version`` it reflects. When the tables agree on them, the recount reads
    those versions, so an ingest committed meanwhile (another run) does not count as
    a disagreement; otherwise (no record, or a refresh in progress) it reads the
    current versions.
    """
    versions: dict[str, int | None] = {}
    recorded = set()
    for name in RECOUNTED:
        versions[name] = lake.version(name)
        entry = lake.commit_metadata(name)  # a vacuum's commits record nothing
        recorded.add((entry.get("events_version"), entry.get("content_version")))
    if len(recorded) != 1 or None in next(iter(recorded)):
        return ProjectionSnapshot(versions, None, None)
    events_version, content_version = next(iter(recorded))
    return ProjectionSnapshot(
        versions,
        None if events_version == "None" else int(events_version),
        -1 if content_version == "None" else int(content_version),
    )


def recount_projections(lake: Lake) -> dict[str, Outcome]:
    """Replay the applied events (``replay_projections``: the tables of ``project_all``,
    folded a group of messages at a time) and compare counts with the stored read
    models; one outcome per table in RECOUNTED, passing when all figures agree.

    Both sides are read at the versions of ``projection_snapshot``.
    """
    snapshot = projection_snapshot(lake)
    as_recorded = lake.pinned({EVENTS: snapshot.events_version})
    body_columns = ["cid", "status", "utf8_valid"]
    if snapshot.content_version == -1:  # the refresh saw no content table
        bodies = pl.DataFrame(schema={c: CONTENT_SCHEMA[c] for c in body_columns})
    else:
        content = (
            lake.scan(CONTENT, CONTENT_SCHEMA)
            if snapshot.content_version is None
            else lake.scan(CONTENT, version=snapshot.content_version)
        )
        bodies = content.filter(pl.col("kind") == "body").select(body_columns).collect()
    bodies = bodies.with_columns(text=pl.lit(None, dtype=pl.String))  # counts ignore the text
    expected = projection_figures(replay_projections(as_recorded, bodies))
    columns = {
        "messages": ["deleted"],
        "threads": ["message_count"],
        "accounts": ["known", "message_count"],
        "rooms": ["known", "message_count"],
        "platform_daily": ["messages_created", "messages_deleted", "active_accounts"],
    }
    stored = projection_figures(
        {
            name: lake.scan(name, SCHEMAS[name], version=snapshot.table_versions[name])
            .select(columns[name])
            .collect()
            for name in RECOUNTED
        }
    )
    outcomes = {}
    for name in RECOUNTED:
        rows = [(figure, stored[name][figure], expected[name][figure]) for figure in expected[name]]
        differ = [row for row in rows if row[1] != row[2]]
        frame = pl.DataFrame(rows, schema=["figure", "stored", "recount"], orient="row")
        outcomes[name] = Outcome(
            passed=not differ,
            summary=f"{name}: "
            + (
                "stored figures match a replay of the events"
                if not differ
                else "differs from a replay: " + ", ".join(f"{f} {s} vs {r}" for f, s, r in differ)
            ),
            counts={f"stored/{f}": s for f, s, _ in rows}
            | {f"recount/{f}": r for f, _, r in rows}
            | {
                "table_version": -1
                if snapshot.table_versions[name] is None
                else snapshot.table_versions[name],
                "events_version": -1
                if snapshot.events_version is None
                else snapshot.events_version,
            },
            sample=frame,
        )
    return outcomes
