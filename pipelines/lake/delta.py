"""Read and write the lake's Delta tables (delta-rs), with no Dagster in sight.

Every write replaces a well-defined slice of a table (a window of days, a set of
partitions, or the whole table) with ``mode="overwrite"`` and a predicate, so a
re-run writes the same rows again instead of appending; an append only ever
follows a whole-table write of the same run. Frames are sorted by their table's
key before writing, so the same input gives the same files.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

_WRITE_RETRIES = 5


def sql_literal(value: object) -> str:
    """A value as a SQL literal for a delta-rs predicate."""
    if isinstance(value, str | date):
        return "'" + str(value).replace("'", "''") + "'"
    return str(value)


def in_predicate(column: str, values: Iterable[object]) -> str:
    values = sorted(set(values))
    if not values:
        return "false"
    return f"{column} IN ({', '.join(sql_literal(v) for v in values)})"


class Lake:
    """The Delta tables under one root directory, addressed by table name."""

    def __init__(
        self,
        root: Path | str,
        pins: dict[str, int] | None = None,
        keep_open: bool = False,
        read_whole: Iterable[str] = (),
    ):
        self.root = Path(root)
        self.pins = pins or {}
        # (table, version) -> the opened table, when kept open (see ``for_one_run``)
        self._opened: dict[tuple[str, int | str | None], DeltaTable] | None = (
            {} if keep_open else None
        )
        self.read_whole = frozenset(read_whole) if keep_open else frozenset()
        # (table, version) -> every row, for the tables read whole
        self._rows: dict[tuple[str, int], pl.DataFrame] = {}

    def pinned(self, versions: dict[str, int | None]) -> Lake:
        """The same lake, but reads of the named tables see the given versions (a
        consistent snapshot while other runs may commit); writes are unaffected."""
        pins = {t: v for t, v in versions.items() if v is not None}
        return Lake(self.root, pins, keep_open=self._opened is not None)

    def for_one_run(self, versions: dict[str, int | None], read_whole: Iterable[str] = ()) -> Lake:
        """``pinned``, and every table opened once and kept: its log is read once, not on
        each read, and the run's own writes bring it up to date. Only for one run that no
        other run writes alongside (the projections' pool ensures that); a table the run
        does not write is seen as it was when first opened. The (small) tables named in
        ``read_whole`` are read whole once per version, and each read filters those rows."""
        return Lake(self.root, self.pinned(versions).pins, keep_open=True, read_whole=read_whole)

    def path(self, table: str) -> Path:
        return self.root / table

    def exists(self, table: str) -> bool:
        return (self.path(table) / "_delta_log").is_dir()

    def table(self, table: str, version: int | str | None = None) -> DeltaTable:
        """The table as of ``version`` (a number or a timestamp), else its latest version;
        in a lake kept open, the same object every time."""
        if self._opened is not None and (table, version) in self._opened:
            return self._opened[(table, version)]
        dt = DeltaTable(
            str(self.path(table)), version=version if isinstance(version, int) else None
        )
        if isinstance(version, str):
            dt.load_as_version(version)
        if self._opened is not None:
            self._opened[(table, version)] = dt
        return dt

    def version(self, table: str) -> int | None:
        """The table's latest version, None if it does not exist yet."""
        if not self.exists(table):
            return None
        try:
            return self.table(table).version()
        except TableNotFoundError:
            return None

    def scan(
        self, table: str, schema: dict | None = None, version: int | str | None = None
    ) -> pl.LazyFrame:
        """A lazy scan of the table (at a version or timestamp); empty with ``schema`` if absent."""
        if not self.exists(table):
            if schema is None:
                raise FileNotFoundError(f"no Delta table {table!r} under {self.root}")
            return pl.LazyFrame(schema=schema)
        version = self.pins.get(table) if version is None else version
        if self._opened is not None:
            return pl.scan_delta(self.table(table, version))
        if version is None:
            return pl.scan_delta(str(self.path(table)))
        return pl.scan_delta(str(self.path(table)), version=version)

    def read(
        self,
        table: str,
        schema: dict | None = None,
        columns: Sequence[str] | None = None,
        where: pl.Expr | None = None,
    ) -> pl.DataFrame:
        frame = self._whole(table, schema) if table in self.read_whole else self.scan(table, schema)
        if where is not None:
            frame = frame.filter(where)
        if columns is not None:
            frame = frame.select(columns)
        return frame.collect()

    def _whole(self, table: str, schema: dict | None) -> pl.LazyFrame:
        """Every row of ``table`` as last written, read once per version."""
        version = self.version(table) if table not in self.pins else self.pins[table]
        key = (table, version)
        if key not in self._rows:
            self._rows = {k: v for k, v in self._rows.items() if k[0] != table}
            self._rows[key] = self.scan(table, schema).collect()
        return self._rows[key].lazy()

    def write(
        self,
        table: str,
        frame: pl.DataFrame,
        *,
        predicate: str | None = None,
        partition_by: Sequence[str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> int:
        """Replace the rows matching ``predicate`` (all rows if None) with ``frame``.

        Rows of ``frame`` outside the predicate make delta-rs refuse the write.
        Returns the new table version. A lost commit race is retried.
        """
        return self._commit(
            table,
            frame,
            mode="overwrite",
            predicate=predicate if self.exists(table) else None,
            partition_by=partition_by,
            # a whole-table write defines the table, layout included
            schema_mode="overwrite" if predicate is None else None,
            metadata=metadata,
        )

    def append(
        self,
        table: str,
        frame: pl.DataFrame,
        *,
        partition_by: Sequence[str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> int:
        """Add ``frame``'s rows to the table (which must exist). Returns the new version."""
        return self._commit(
            table, frame, mode="append", partition_by=partition_by, metadata=metadata
        )

    def _commit(
        self,
        table: str,
        frame: pl.DataFrame,
        *,
        mode: str,
        partition_by: Sequence[str] | None,
        metadata: dict[str, str] | None,
        predicate: str | None = None,
        schema_mode: str | None = None,
    ) -> int:
        path = self.path(table)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrow = frame.to_arrow()
        properties = CommitProperties(custom_metadata=metadata) if metadata else None
        for attempt in range(_WRITE_RETRIES):
            # through an opened table, which the write brings up to date: one read of
            # the log per write instead of two (the version comes from the same object)
            target: DeltaTable | str = self.table(table) if self.exists(table) else str(path)
            try:
                write_deltalake(
                    target,
                    arrow,
                    mode=mode,
                    predicate=predicate,
                    partition_by=list(partition_by) if partition_by else None,
                    schema_mode=schema_mode,
                    configuration={"delta.enableChangeDataFeed": "true"},
                    commit_properties=properties,
                )
                break
            except CommitFailedError:
                if attempt == _WRITE_RETRIES - 1:
                    raise
                self._forget(table)  # another writer committed first: read its log again
                time.sleep(0.05 * (attempt + 1))
        if isinstance(target, DeltaTable):
            return target.version()
        return self.table(table).version()

    def _forget(self, table: str) -> None:
        if self._opened is not None:
            self._opened.pop((table, None), None)

    def replace_days(
        self,
        table: str,
        frame: pl.DataFrame,
        days: Iterable[date],
        metadata: dict[str, str] | None = None,
    ) -> int:
        """Replace the ``day`` partitions listed with ``frame`` (which must lie in them)."""
        return self.write(
            table,
            frame,
            predicate=in_predicate("day", days),
            partition_by=["day"],
            metadata=metadata,
        )

    def row_count(self, table: str) -> int:
        """Rows in the table's current version, from the log's file statistics (no scan)."""
        if not self.exists(table):
            return 0
        actions = pa.table(self.table(table).get_add_actions(flatten=True))
        return int(pa.compute.sum(actions["num_records"]).as_py() or 0)

    def partition_columns(self, table: str) -> list[str]:
        """The table's partition columns ([] if none or no table)."""
        if not self.exists(table):
            return []
        return list(self.table(table).metadata().partition_columns)

    def column_names(self, table: str) -> list[str]:
        """The table's columns, partition columns included ([] if no table)."""
        if not self.exists(table):
            return []
        return [f.name for f in self.table(table).schema().fields]

    def commit_metadata(self, table: str) -> dict:
        """The custom metadata of the table's latest commit ({} if none or no table)."""
        if not self.exists(table):
            return {}
        history = self.table(table).history(1)
        return history[0] if history else {}
