"""The ``new_event_files`` sensor: re-ingest exactly the recorded days whose files changed.

Every tick stats the store's event files (live and archived) and each day's
index.json, and reduces each day to a signature: a digest of its files'
``(relative path, size, mtime_ns)``. The cursor is the JSON object
``{"YYYY-MM-DD": signature}`` of the last tick. A day whose signature is new or
different (a file added, grown, rewritten, moved to the archive, or its
index.json written) gets one run of the given job (``lakehouse``) for that partition,
with run key ``"<day>:<signature>"``, so the same state of a day is never
ingested twice by the sensor, even after a cursor reset. Days that are not a
partition yet (today, whose partition opens at midnight UTC) are left out of
the cursor and requested once they are.

``day_signatures`` only stats files; the diffing (``changed_days``, ``plan_tick``,
``parse_cursor``, ``dump_cursor``) is pure; the sensor only wires them to Dagster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path

import dagster as dg

from pipelines.ingest.store import day_directories, list_days, list_event_files
from pipelines.partitions import recorded_days
from pipelines.resources import LakehouseResource

SENSOR_INTERVAL_SECONDS = 60


def day_files(store: Path, day: date) -> list[tuple[str, int, int]]:
    """``(relative path, size, mtime_ns)`` of a recorded day's event files and index.json."""
    entries = []
    for file in list_event_files(store, day):
        stat = file.path.stat()
        entries.append((file.relative, stat.st_size, stat.st_mtime_ns))
    for directory in day_directories(store, day):
        index = directory / "index.json"
        if index.is_file():
            stat = index.stat()
            entries.append((index.relative_to(store).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(entries)


def signature(entries: list[tuple[str, int, int]]) -> str:
    """A short digest of a day's file listing: equal listings, equal signatures."""
    text = "\n".join(f"{path}\t{size}\t{mtime}" for path, size, mtime in entries)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def day_signatures(store: Path) -> dict[str, str]:
    """``{"YYYY-MM-DD": signature}`` for every recorded day of the store that has files."""
    signatures = {}
    for day in list_days(store):
        entries = day_files(store, day)
        if entries:
            signatures[day.isoformat()] = signature(entries)
    return signatures


def changed_days(previous: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """Days of ``current`` whose signature is absent from or different in ``previous``, sorted."""
    return sorted(day for day, sig in current.items() if previous.get(day) != sig)


def parse_cursor(cursor: str | None) -> dict[str, str]:
    """The cursor's ``{day: signature}``; an empty or unreadable cursor is ``{}``."""
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(day): str(sig) for day, sig in value.items()}


def dump_cursor(signatures: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(signatures.items())), separators=(",", ":"))


def plan_tick(
    previous: Mapping[str, str], current: Mapping[str, str], is_partition: Callable[[str], bool]
) -> tuple[list[str], dict[str, str]]:
    """(days to run, next cursor): changed days that are partitions, and the signatures of
    every day that is one (days that are not yet stay out, so they come up again later)."""
    ready = {day: sig for day, sig in current.items() if is_partition(day)}
    return changed_days(previous, ready), ready


def build_new_event_files_sensor(job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """The ``new_event_files`` sensor, requesting runs of ``job`` (partitioned by recorded day)."""

    @dg.sensor(
        name="new_event_files",
        job=job,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Watches the message store's event files; for each recorded day with new, "
        f"grown or rewritten files (or a new index.json) requests one `{job.name}` run of that "
        "day's partition. Cursor: {day: signature of its files' path, size and mtime}.",
    )
    def new_event_files(
        context: dg.SensorEvaluationContext, lakehouse: LakehouseResource
    ) -> dg.SensorResult:
        store = lakehouse.store
        if not (store / "events").is_dir():
            return dg.SensorResult(skip_reason=f"no events/ folder under {store}")
        days, cursor = plan_tick(
            parse_cursor(context.cursor), day_signatures(store), recorded_days.has_partition_key
        )
        requests = [
            dg.RunRequest(
                run_key=f"{day}:{cursor[day]}",
                partition_key=day,
                tags={"lakehouse/trigger": "new_event_files", "lakehouse/signature": cursor[day]},
            )
            for day in days
        ]
        if not requests:
            return dg.SensorResult(
                skip_reason=f"no changed event files in {len(cursor)} days",
                cursor=dump_cursor(cursor),
            )
        context.log.info(f"changed days under {store}: {', '.join(days)}")
        return dg.SensorResult(run_requests=requests, cursor=dump_cursor(cursor))

    return new_event_files
