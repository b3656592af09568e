"""The Delta layer: slices replaced by predicate, pinned reads, tables kept open for a run."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from pipelines.lake.delta import Lake


def values(lake: Lake) -> list[int]:
    return sorted(lake.read("t")["a"].to_list())


def test_a_write_replaces_only_its_slice_and_returns_the_new_version(tmp_path):
    lake = Lake(tmp_path)
    assert lake.version("t") is None
    assert lake.write("t", pl.DataFrame({"a": [1, 2, 3]})) == 0
    assert lake.write("t", pl.DataFrame({"a": [20]}), predicate="a >= 2") == 1
    assert values(lake) == [1, 20]
    assert lake.append("t", pl.DataFrame({"a": [4]})) == 2
    assert lake.row_count("t") == 3


def test_a_pinned_lake_reads_the_pinned_version(tmp_path):
    lake = Lake(tmp_path)
    lake.write("t", pl.DataFrame({"a": [1]}))
    lake.append("t", pl.DataFrame({"a": [2]}))
    assert values(lake.pinned({"t": 0})) == [1]
    assert values(lake.for_one_run({"t": 0})) == [1]
    assert values(lake) == [1, 2]


def test_a_lake_kept_open_sees_its_own_writes(tmp_path):
    run = Lake(tmp_path).for_one_run({})
    run.write("t", pl.DataFrame({"a": [1]}))
    before = run.table("t")
    assert run.append("t", pl.DataFrame({"a": [2]})) == 1
    assert run.table("t") is before  # opened once, brought up to date by the write
    assert values(run) == [1, 2]
    assert run.version("t") == 1
    assert run.commit_metadata("t")["operation"] == "WRITE"


def test_a_lake_kept_open_writes_after_another_writer(tmp_path):
    run = Lake(tmp_path).for_one_run({})
    run.write("t", pl.DataFrame({"a": [1]}))
    other = Lake(tmp_path)
    other.append("t", pl.DataFrame({"a": [2]}))
    assert values(run) == [1]  # seen as when first opened
    run.append("t", pl.DataFrame({"a": [3]}))
    assert values(other) == [1, 2, 3]  # nothing the other writer committed is lost
    run.write("t", pl.DataFrame({"a": [9]}), predicate="a >= 2")
    assert values(other) == [1, 9]


def test_a_table_read_whole_is_read_once_per_version_and_filtered(tmp_path, monkeypatch):
    lake = Lake(tmp_path).for_one_run({}, read_whole=["t"])
    assert lake.read("t", {"a": pl.Int64}).is_empty()  # no table yet
    lake.write("t", pl.DataFrame({"a": [1, 2, 3]}))
    scans = []
    scan = Lake.scan

    def counted(self, table, *args, **kwargs):
        scans.append(table)
        return scan(self, table, *args, **kwargs)

    monkeypatch.setattr(Lake, "scan", counted)
    assert lake.read("t", where=pl.col("a") >= 2)["a"].to_list() == [2, 3]
    assert lake.read("t", columns=["a"], where=pl.col("a") == 1)["a"].to_list() == [1]
    assert scans == ["t"]
    lake.write("t", pl.DataFrame({"a": [20]}), predicate="a >= 2")  # a new version
    assert sorted(lake.read("t")["a"].to_list()) == [1, 20]
    assert scans == ["t", "t"]


def test_a_lake_writing_behind_reads_its_writes_before_they_commit(tmp_path, monkeypatch):
    gate = threading.Event()
    commit = Lake._commit

    def held(self, *args, **kwargs):
        gate.wait(10)  # no write commits until the reads below are done
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(Lake, "_commit", held)
    lake = Lake(tmp_path).for_one_run({}, read_whole=["s"], write_behind=True)
    p = pl.DataFrame({"p": [1, 1, 2, None], "a": [1, 2, 3, 4]})
    assert lake.write("t", p, partition_by=["p"]) is None
    assert (
        lake.replace_partitions("t", pl.DataFrame({"p": [2, 3], "a": [30, 40]}), "p", [2, 3])
        is None
    )
    lake.append("t", pl.DataFrame({"p": [1], "a": [5]}))
    lake.write("s", pl.DataFrame({"k": [1]}))
    assert not lake.exists("t")  # nothing committed yet
    expected = [(1, 1), (1, 2), (1, 5), (2, 30), (3, 40), (None, 4)]
    assert sorted(lake.read("t").rows(), key=str) == sorted(expected, key=str)
    assert lake.read("s")["k"].to_list() == [1]
    gate.set()
    lake.flush()
    assert sorted(Lake(tmp_path).read("t").rows(), key=str) == sorted(expected, key=str)
    assert sorted(lake.read("t").rows(), key=str) == sorted(expected, key=str)  # the table now
    assert lake.version("t") == 2
    lake.append("t", pl.DataFrame({"p": [1], "a": [6]}))
    lake.flush()  # then straight to another write: its base is the table caught up
    lake.replace_partitions("t", pl.DataFrame({"p": [1], "a": [9]}), "p", [1])
    lake.flush()
    assert lake.version("t") == 4  # the table kept open is brought up to date
    assert sorted(lake.read("t")["a"].to_list()) == [4, 9, 30, 40]


def test_a_failed_write_behind_skips_the_rest_and_is_raised_by_flush(tmp_path):
    lake = Lake(tmp_path).for_one_run({}, write_behind=True)
    lake.write("t", pl.DataFrame({"a": [1]}))
    lake.append("t", pl.DataFrame({"a": ["not a number"]}))  # refused by delta-rs
    lake.append("t", pl.DataFrame({"a": [3]}))
    with pytest.raises(Exception, match="Cannot cast"):
        lake.flush()
    assert values(Lake(tmp_path)) == [1]
    with pytest.raises(ValueError, match="replaces the table or partitions"):
        lake.write("t", pl.DataFrame({"a": [2]}), predicate="a = 1")
