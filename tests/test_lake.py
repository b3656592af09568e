"""The Delta layer: slices replaced by predicate, pinned reads, tables kept open for a run."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from pipelines.lake import delta
from pipelines.lake.delta import Lake
from pipelines.query.catalog import load_extension


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


def test_every_tenth_commit_checkpoints_the_log_so_an_open_replays_few_commits(tmp_path):
    # a partitioned table written both ways: through delta-rs and by adding files
    run = Lake(tmp_path).for_one_run({})
    day = pl.DataFrame({"day": [date(2026, 1, 1)], "a": [0]})
    run.write("t", day, partition_by=["day"])
    for n in range(1, 12):
        run.replace_days("t", day.with_columns(a=pl.lit(n)), [date(2026, 1, 1)])
    log = tmp_path / "t" / "_delta_log"
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == [
        "00000000000000000009.checkpoint.parquet"
    ]
    assert DeltaTable(str(tmp_path / "t")).version() == 11
    assert values(Lake(tmp_path)) == [11]


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


def _week_rows(ids: list[str], weeks: list[date]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "week": weeks,
            "id": ids,
            "at": [datetime(2026, 1, 5, 12, i, tzinfo=UTC) for i in range(len(ids))],
            "tags": [[i] if n % 2 else None for n, i in enumerate(ids)],
            "reactions": [[{"emoji": "👍", "count": n}] for n in range(len(ids))],
        },
        schema_overrides={"at": pl.Datetime("us", "UTC"), "tags": pl.List(pl.String)},
    )


def test_rows_written_by_polars_read_back_as_delta_rs_writes_them(tmp_path, monkeypatch):
    """A write into an existing table of the same schema writes its files with polars and
    commits them (``_add_files``): the rows, schema, counts, change feed and the DuckDB
    view are those of delta-rs's own writer, and each file holds only its partition."""
    w1, w2, w3 = date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 19)
    first = _week_rows(["a", "b", "c"], [w1, w1, w2])
    again = _week_rows(["d", "e"], [w2, w3])
    more = _week_rows(["f"], [w1])
    lake = Lake(tmp_path)
    direct = []
    writes_directly = delta._writes_directly
    for table, allowed in (("polars", True), ("delta_rs", False)):

        def decide(*args, allowed=allowed):
            direct.append(writes_directly(*args))
            return allowed and direct[-1]

        monkeypatch.setattr(delta, "_writes_directly", decide)
        assert lake.write(table, first, partition_by=["week"]) == 0  # a new table: delta-rs
        assert lake.replace_partitions(table, again, "week", [w2, w3]) == 1
        assert lake.append(table, more, partition_by=["week"]) == 2
        assert lake.write(f"{table}_whole", first, partition_by=["week"]) == 0
        assert lake.write(f"{table}_whole", again, partition_by=["week"]) == 1
    assert direct == [False, True, True, False, True] * 2

    def state(table: str) -> tuple:
        rows = lake.read(table).sort("id")
        changes = DeltaTable(str(lake.path(table))).load_cdf(starting_version=1).read_all()
        feed = pl.DataFrame(changes).select("id", "_change_type", "_commit_version").sort(pl.all())
        return rows.schema, rows.rows(), lake.row_count(table), feed.rows()

    assert state("polars") == state("delta_rs")
    assert state("polars_whole") == state("delta_rs_whole")
    assert state("polars_whole")[1] == again.sort("id").rows()
    assert state("polars")[1] == pl.concat([first.head(2), again, more]).sort("id").rows()
    files = sorted((tmp_path / "polars").glob("week=*/*.parquet"))
    assert all("week" not in pq.read_schema(f).names for f in files)
    assert {f.parent.name for f in files} == {f"week={w}" for w in (w1, w2, w3)}
    con = duckdb.connect()
    load_extension(con)
    seen = con.sql(f"SELECT id, week FROM delta_scan('{tmp_path / 'polars'}') ORDER BY id")
    assert seen.fetchall() == [("a", w1), ("b", w1), ("d", w2), ("e", w3), ("f", w1)]


def test_writes_the_direct_path_cannot_make_go_through_delta_rs(tmp_path):
    """Rows outside the partitions listed are refused, and a new column redefines the
    table, as delta-rs's writer does them."""
    w1, w2 = date(2026, 1, 5), date(2026, 1, 12)
    lake = Lake(tmp_path)
    lake.write("t", _week_rows(["a"], [w1]), partition_by=["week"])
    with pytest.raises(Exception, match="failed validation"):
        lake.replace_partitions("t", _week_rows(["b"], [w2]), "week", [w1])
    wider = _week_rows(["c"], [w2]).with_columns(extra=pl.lit(1))
    lake.write("t", wider, partition_by=["week"])
    assert lake.read("t").select("id", "extra").rows() == [("c", 1)]
