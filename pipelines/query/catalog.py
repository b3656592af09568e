"""A DuckDB catalog of the lake: one view per Delta table, queried by table name.

``build_catalog`` writes a small DuckDB file (by default next to the lake:
``data/lake`` -> ``data/lake.duckdb``) holding only views such as
``CREATE VIEW messages AS SELECT * FROM delta_scan('<lake>/messages')``. The views
read the tables' current Delta version at query time, so the file stays valid
while the lake changes; it is rebuilt when tables appear or the lake moves.

DuckDB cannot download extensions here, and ``delta_scan`` needs the ``delta``
extension in every session that reads a view. ``connect`` loads it from the
``duckdb-extension-delta`` pip package; in a bare DuckDB 1.5.5 session run
``LOAD '<delta_extension_path()>'`` first, or once ``install_delta_extension()``
so that DuckDB autoloads it from ``~/.duckdb/extensions``.

    python -m pipelines.query.catalog [--lake DIR] [--out FILE] [--install-extension]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

CATALOG_ENV = "LAKEHOUSE_CATALOG"
DUCKDB_VERSION_DIR = "v1.5.5"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_lake_dir() -> Path:
    """LAKEHOUSE_DIR, else ``data/lake`` of this checkout (as pipelines.resources, without
    importing Dagster)."""
    return Path(os.environ.get("LAKEHOUSE_DIR", str(PROJECT_ROOT / "data" / "lake"))).resolve()


def extension_path(package: str, name: str) -> Path:
    """The file of DuckDB extension ``name`` shipped by pip package ``package``."""
    module = importlib.import_module(package)
    folder = Path(module.__file__).parent / "extensions" / DUCKDB_VERSION_DIR
    path = folder / f"{name}.duckdb_extension"
    if not path.is_file():
        raise FileNotFoundError(f"{name} extension not found at {path} (is {package} installed?)")
    return path


def delta_extension_path() -> Path:
    return extension_path("duckdb_extension_delta", "delta")


def load_extension(con: duckdb.DuckDBPyConnection, name: str = "delta") -> None:
    """LOAD a bundled extension (delta, fts or vss) into ``con`` from its pip package."""
    con.execute(f"LOAD '{extension_path(f'duckdb_extension_{name}', name)}'")


def install_delta_extension() -> Path:
    """Copy the delta extension into DuckDB's extension directory (``~/.duckdb``) so that any
    DuckDB 1.5.5 session, the CLI included, autoloads it; returns the installed file."""
    con = duckdb.connect()
    try:
        con.execute(f"INSTALL '{delta_extension_path()}'")
        (path,) = con.execute(
            "SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'delta'"
        ).fetchone()
    finally:
        con.close()
    return Path(path)


def default_catalog_path(lake_root: Path | str) -> Path:
    """LAKEHOUSE_CATALOG if set, else the lake's path with a ``.duckdb`` suffix."""
    configured = os.environ.get(CATALOG_ENV)
    if configured:
        return Path(configured).resolve()
    root = Path(lake_root).resolve()
    return root.with_name(root.name + ".duckdb")


def delta_tables(lake_root: Path | str) -> list[str]:
    """Names of the Delta tables directly under ``lake_root`` (folders with a _delta_log)."""
    root = Path(lake_root)
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in root.iterdir()
        if (entry / "_delta_log").is_dir() and entry.name.isidentifier()
    )


@dataclass(frozen=True)
class Catalog:
    """What ``build_catalog`` wrote: the file and, per view, the rows it returns now."""

    path: Path
    lake_root: Path
    rows: dict[str, int]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def build_catalog(lake_root: Path | str, path: Path | str | None = None) -> Catalog:
    """Write the catalog of every Delta table under ``lake_root`` to ``path`` (replaced
    atomically, so an open reader keeps its old file); returns the views' row counts."""
    lake_root = Path(lake_root).resolve()
    path = Path(path).resolve() if path is not None else default_catalog_path(lake_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.unlink(missing_ok=True)
    rows = {}
    con = duckdb.connect(str(staging))
    try:
        load_extension(con)
        for table in delta_tables(lake_root):
            location = _quote(str(lake_root / table))
            con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM delta_scan({location})')
            (rows[table],) = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        con.execute(
            "CREATE TABLE lake_catalog (table_name VARCHAR, location VARCHAR, rows_at_build BIGINT)"
        )
        con.executemany(
            "INSERT INTO lake_catalog VALUES (?, ?, ?)",
            [(t, str(lake_root / t), n) for t, n in rows.items()],
        )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(staging, path)
    Path(f"{staging}.wal").unlink(missing_ok=True)
    return Catalog(path=path, lake_root=lake_root, rows=rows)


def connect(
    path: Path | str | None = None, read_only: bool = True, extensions: tuple[str, ...] = ()
) -> duckdb.DuckDBPyConnection:
    """Open the catalog (default: next to LAKEHOUSE_DIR) with the delta extension loaded,
    plus any of ``extensions`` ("fts", "vss")."""
    if path is None:
        path = default_catalog_path(default_lake_dir())
    if not Path(path).is_file():
        raise FileNotFoundError(f"no catalog at {path}: run build_catalog (or the lakehouse job)")
    con = duckdb.connect(str(path), read_only=read_only)
    load_extension(con)
    for name in extensions:
        load_extension(con, name)
    return con


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the DuckDB catalog of the lake's tables.")
    parser.add_argument("--lake", type=Path, default=default_lake_dir())
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--install-extension",
        action="store_true",
        help="also install the delta extension into ~/.duckdb so any session autoloads it",
    )
    args = parser.parse_args(argv)
    catalog = build_catalog(args.lake, args.out)
    for table, rows in catalog.rows.items():
        print(f"{table:<16} {rows:>10} rows")
    print(f"catalog: {catalog.path} ({len(catalog.rows)} views over {catalog.lake_root})")
    if args.install_extension:
        print(f"delta extension installed: {install_delta_extension()}")
    else:
        print(f"in a DuckDB session first run: LOAD '{delta_extension_path()}';")
    return 0


if __name__ == "__main__":
    sys.exit(main())
