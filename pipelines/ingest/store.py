"""Find and read the event files of the message store, and check index.json.

Layout (docs/message-store.md): ``events/YYYY/MM/DD/NNN.jsonl[.gz]`` and the same
under ``events/archive/``. A file's partition is the date of its directory.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import orjson

EVENT_FILE = re.compile(r"^(?P<number>\d+)?.*\.jsonl(?P<gz>\.gz)?$")
_DAY_PARTS = re.compile(r"^\d{4}/\d{2}/\d{2}$")


@dataclass(frozen=True)
class EventFile:
    """One event file; ``order`` sorts files the way the spec's decision 1 reads them."""

    day: date
    path: Path
    relative: str
    compressed: bool
    number: int | None

    @property
    def order(self) -> tuple:
        number = self.number if self.number is not None else 1 << 62
        return (self.day, number, self.path.name, self.relative)


class UnreadableFile(ValueError):
    """An event file that cannot be read or decompressed (e.g. a corrupt gzip)."""


def day_directories(store: Path, day: date) -> list[Path]:
    """The directories that hold events recorded on ``day`` (live and archived)."""
    parts = (f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}")
    return [store.joinpath("events", *parts), store.joinpath("events", "archive", *parts)]


def list_event_files(store: Path, day: date) -> list[EventFile]:
    """Regular event files of one recorded day, in reading order (symlinks are skipped)."""
    files = []
    for directory in day_directories(store, day):
        if not directory.is_dir():
            continue
        with os.scandir(directory) as entries:
            for entry in entries:
                match = EVENT_FILE.match(entry.name)
                if not match or not entry.is_file(follow_symlinks=False):
                    continue
                number = match.group("number")
                path = Path(entry.path)
                files.append(
                    EventFile(
                        day=day,
                        path=path,
                        relative=path.relative_to(store).as_posix(),
                        compressed=match.group("gz") is not None,
                        number=int(number) if number else None,
                    )
                )
    return sorted(files, key=lambda f: f.order)


def list_days(store: Path) -> list[date]:
    """Every recorded day that has a day directory, live or archived, sorted."""
    days = set()
    for root in (store / "events", store / "events" / "archive"):
        if not root.is_dir():
            continue
        for year in root.glob("[0-9][0-9][0-9][0-9]"):
            for day_dir in year.glob("[0-9][0-9]/[0-9][0-9]"):
                relative = day_dir.relative_to(root).as_posix()
                if _DAY_PARTS.match(relative) and day_dir.is_dir():
                    try:
                        days.add(date(*map(int, relative.split("/"))))
                    except ValueError:
                        continue
    return sorted(days)


def read_stored(file: EventFile) -> bytes:
    """The file's bytes as stored."""
    return file.path.read_bytes()


def decompress(file: EventFile, stored: bytes) -> bytes:
    """The file's decompressed content; a truncated or corrupt gzip raises UnreadableFile."""
    if not file.compressed:
        return stored
    try:
        return gzip.decompress(stored)
    except (OSError, EOFError, zlib.error) as error:
        raise UnreadableFile(f"cannot decompress {file.relative}: {error}") from None


def count_lines(content: bytes) -> int:
    """Lines of a decompressed file as index.json counts them (a final unterminated line counts)."""
    if not content:
        return 0
    return content.count(b"\n") + (0 if content.endswith(b"\n") else 1)


@dataclass(frozen=True)
class FileFacts:
    """What index.json can be checked against, measured while reading a file."""

    name: str
    lines: int
    size: int
    sha256: str


def file_facts(file: EventFile, stored: bytes, content: bytes | None) -> FileFacts:
    return FileFacts(
        name=file.path.name,
        lines=count_lines(content) if content is not None else -1,
        size=len(stored),
        sha256=hashlib.sha256(stored).hexdigest(),
    )


def check_index(store: Path, directory: Path, day: date, facts: list[FileFacts]) -> list[dict]:
    """Compare a day directory's index.json with the files read from it.

    Returns one report row per disagreement (no index.json: no rows).
    """
    index_path = directory / "index.json"
    if not index_path.is_file():
        return []
    relative = index_path.relative_to(store).as_posix()

    def report(file: str | None, problem: str, expected: object, actual: object) -> dict:
        return {
            "day": day,
            "index_file": relative,
            "file": file,
            "problem": problem,
            "expected": None if expected is None else str(expected),
            "actual": None if actual is None else str(actual),
        }

    try:
        index = orjson.loads(index_path.read_bytes())
        listed = index["files"]
        if not isinstance(listed, dict):
            raise TypeError("'files' is not an object")
    except (orjson.JSONDecodeError, KeyError, TypeError, OSError) as error:
        return [report(None, "index_unreadable", None, str(error))]

    rows = []
    present = {f.name: f for f in facts}
    if index.get("day") != day.isoformat():
        rows.append(report(None, "day_differs", day.isoformat(), index.get("day")))
    for name in sorted(set(listed) | set(present)):
        entry, fact = listed.get(name), present.get(name)
        if fact is None:
            rows.append(report(name, "file_missing", "listed", "absent"))
            continue
        if entry is None:
            rows.append(report(name, "file_not_listed", "absent", "present"))
            continue
        if not isinstance(entry, dict):
            rows.append(report(name, "entry_unreadable", "object", entry))
            continue
        for key, actual in (("lines", fact.lines), ("bytes", fact.size), ("sha256", fact.sha256)):
            if entry.get(key) != actual:
                rows.append(report(name, f"{key}_differ", entry.get(key), actual))
    total = sum(f.lines for f in facts)
    if "total_lines" in index and index["total_lines"] != total:
        rows.append(report(None, "total_lines_differ", index["total_lines"], total))
    return rows
