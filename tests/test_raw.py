"""Reading days in a pool of processes gives what reading them in this process gives."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from pipelines.ingest import raw
from pipelines.ingest.raw import _read_day_packed, _unpack, iter_day_batches, read_day
from pipelines.ingest.store import list_days
from pipelines.sample import generate_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    generate_store(root, 2_000, 10, 5, date(2025, 10, 1), faults=True)
    return root


def assert_same_batch(a, b) -> None:
    assert a.rows.schema == b.rows.schema
    assert_frame_equal(a.rows, b.rows)
    assert_frame_equal(a.quarantine, b.quarantine)
    assert_frame_equal(a.index_report, b.index_report)
    assert a.counts == b.counts


def test_a_day_survives_the_trip_from_a_worker(store: Path, tmp_path: Path):
    for day in [*list_days(store), date(1999, 1, 1)]:  # the last one has no files
        packed = _read_day_packed((store, day, tmp_path))
        assert_same_batch(_unpack(packed), read_day(store, day))
    assert not list(tmp_path.iterdir())  # each hand-off file is removed once read


@pytest.mark.parametrize("in_memory", [True, False])
def test_the_hand_off_files_go_when_reading_stops_early(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool
):
    memory, temporary = tmp_path / "memory", tmp_path / "temporary"
    memory.mkdir()
    temporary.mkdir()
    monkeypatch.setattr(raw, "_MEMORY_DIR", memory if in_memory else tmp_path / "absent")
    monkeypatch.setattr(raw, "_MEMORY_DIR_ROOM", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    used, unused = (memory, temporary) if in_memory else (temporary, memory)
    batches = iter_day_batches(store, list_days(store), max_rows=500, workers=2)
    next(batches)  # the pool has parsed days ahead of this first group
    assert list(used.iterdir()) and not list(unused.iterdir())
    batches.close()
    assert not list(used.iterdir())


def test_the_hand_off_avoids_a_memory_directory_without_room(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(raw, "_MEMORY_DIR", tmp_path)
    monkeypatch.setattr(raw, "_MEMORY_DIR_ROOM", 1 << 62)
    assert raw._handoff_parent() is None
    monkeypatch.setattr(raw, "_MEMORY_DIR_ROOM", 0)
    assert raw._handoff_parent() == tmp_path


def test_a_pool_gives_the_same_groups_as_one_process(store: Path):
    days = list_days(store)
    assert len(days) >= 8  # enough for the pool
    pooled = list(iter_day_batches(store, days, max_rows=500, workers=2))
    alone = list(iter_day_batches(store, days, max_rows=500, workers=1))
    assert [group for group, _ in pooled] == [group for group, _ in alone]
    for (_, a), (_, b) in zip(pooled, alone, strict=True):
        assert_same_batch(a, b)
