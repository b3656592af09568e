"""Builders for small message stores written by the tests themselves."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipelines.ingest.cid import cid_of
from pipelines.lake.delta import Lake

DAY0 = date(2025, 3, 1)


def ms(day: date, seconds: int = 0) -> int:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)
    return int(moment.timestamp() * 1000)


def recorded(day: date, seconds: int = 0) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class StoreWriter:
    """Writes event files and content into a store folder; numbers event ids itself."""

    def __init__(self, root: Path):
        self.root = root
        self.next_id = 0
        self.texts: dict[str, str] = {}

    def event(
        self,
        event_type: str,
        aggregate_type: str,
        aggregate_id: str,
        version: int,
        data: dict,
        day: date = DAY0,
        seconds: int = 0,
        event_id: str | None = None,
        schema_version: int | None = None,
    ) -> dict:
        self.next_id += 1
        event = {
            "event_id": event_id or f"ev{self.next_id:06d}",
            "event_type": event_type,
            "aggregate_type": aggregate_type,
            "aggregate_id": aggregate_id,
            "version": version,
            "recorded_at": recorded(day, seconds),
            "data": data,
            "metadata": {"source": "test"},
        }
        if schema_version is not None:
            event["schema_version"] = schema_version
        return event

    def body(self, text: str) -> str:
        data = text.encode()
        cid = cid_of(data)
        self.texts[cid] = text
        folder = self.root / "content" / "by-cid"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{cid}.md").write_bytes(data)
        return cid

    def write(
        self,
        day: date,
        lines: list[dict | str | bytes],
        name: str = "001.jsonl",
        gz: bool = False,
        archive: bool = False,
        newline_at_end: bool = True,
    ) -> Path:
        parts = ["events", *(["archive"] if archive else []), f"{day:%Y}", f"{day:%m}", f"{day:%d}"]
        folder = self.root.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        encoded = [
            line
            if isinstance(line, bytes)
            else line.encode()
            if isinstance(line, str)
            else orjson.dumps(line)
            for line in lines
        ]
        content = b"\n".join(encoded) + (b"\n" if newline_at_end and encoded else b"")
        path = folder / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(content, mtime=0) if gz else content)
        return path


def created(
    w: StoreWriter,
    message_id: str,
    text: str,
    day: date = DAY0,
    seconds: int = 0,
    account: str = "acct_a",
    room: str = "room_1",
    version: int = 1,
    **extra,
) -> dict:
    data = {
        "account_id": account,
        "content_cid": w.body(text),
        "kind": 0,
        "created_at": ms(day, seconds),
        "source": {"platform": "telegram"},
        "room_id": room,
        **extra,
    }
    return w.event(
        "MessageCreated", "message", message_id, version, data, day, seconds, schema_version=2
    )


@pytest.fixture
def store(tmp_path: Path) -> StoreWriter:
    return StoreWriter(tmp_path / "store")


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")
