"""Dagster resources: where the message store and the lake live.

Both default to folders of this checkout (``data/store``, ``data/lake``) and can
be moved with the environment variables MESSAGE_STORE_DIR and LAKEHOUSE_DIR.
LAKEHOUSE_VACUUM_RETAIN_HOURS sets how long the lake_vacuum job keeps the files of
replaced versions (default 168: a week of time travel).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from pipelines.lake.delta import Lake
from pipelines.lake.maintenance import DEFAULT_RETAIN_HOURS

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_store_dir() -> str:
    return os.environ.get("MESSAGE_STORE_DIR", str(PROJECT_ROOT / "data" / "store"))


def default_lake_dir() -> str:
    return os.environ.get("LAKEHOUSE_DIR", str(PROJECT_ROOT / "data" / "lake"))


class LakehouseResource(dg.ConfigurableResource):
    """The message store (read only) and the lake of Delta tables (read and write)."""

    store_dir: str
    lake_dir: str
    vacuum_retain_hours: int = DEFAULT_RETAIN_HOURS

    @property
    def store(self) -> Path:
        return Path(self.store_dir).resolve()

    @property
    def lake(self) -> Lake:
        return Lake(Path(self.lake_dir).resolve())


def lakehouse_from_env() -> LakehouseResource:
    retain = os.environ.get("LAKEHOUSE_VACUUM_RETAIN_HOURS", str(DEFAULT_RETAIN_HOURS))
    return LakehouseResource(
        store_dir=default_store_dir(), lake_dir=default_lake_dir(), vacuum_retain_hours=int(retain)
    )
