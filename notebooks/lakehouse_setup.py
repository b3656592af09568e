"""The first cell of every notebook: find the sample store and lake, or build them.

Paths come from MESSAGE_STORE_DIR and LAKEHOUSE_DIR (defaults: the project's
``data/store`` and ``data/lake``), the catalog from LAKEHOUSE_CATALOG (default:
``data/lake.duckdb``). A missing store is generated as ``make sample`` does; a lake
without read models is built by the ``lakehouse`` assets and checks, run in two
windows (the first half of the days, then the rest) so that the tables have a
history to travel in; a missing catalog is written. An existing lake is reused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE_ARGS = ("--events", "20000", "--days", "30", "--seed", "7")  # as `make sample`
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from pipelines.ingest.store import list_days  # noqa: E402
from pipelines.lake.delta import Lake  # noqa: E402
from pipelines.query.catalog import build_catalog, connect, default_catalog_path  # noqa: E402


@dataclass(frozen=True)
class Sample:
    """Where the notebook's data lives."""

    store: Path
    lake: Lake
    catalog: Path

    def connect(self, extensions: tuple[str, ...] = ()) -> duckdb.DuckDBPyConnection:
        """The DuckDB catalog (read only), delta extension loaded: query tables by name."""
        return connect(self.catalog, read_only=True, extensions=extensions)


def _env_path(name: str, default: Path) -> Path:
    return Path(os.environ.get(name) or default).resolve()


def generate_store(store: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pipelines.sample", "--out", str(store), *SAMPLE_ARGS],
        cwd=PROJECT,
        check=True,
    )


def run_window(store: Path, lake_dir: Path, start: date, end: date) -> None:
    """Materialize every asset and check of the code location for the days start..end."""
    import dagster as dg

    from pipelines.definitions import all_assets, all_checks
    from pipelines.resources import LakehouseResource

    result = dg.materialize(
        [*all_assets, *all_checks],
        resources={"lakehouse": LakehouseResource(store_dir=str(store), lake_dir=str(lake_dir))},
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
        },
        raise_on_error=False,
    )
    if not result.success:
        failed = [
            f"{e.asset_key.to_user_string()}:{e.check_name}"
            for e in result.get_asset_check_evaluations()
            if not e.passed
        ]
        raise RuntimeError(
            f"building the lake for {start}...{end} failed; failed checks: {failed or 'none'}"
        )


def open_sample() -> Sample:
    """The sample store, lake and catalog, built where missing (see the module doc)."""
    store = _env_path("MESSAGE_STORE_DIR", PROJECT / "data" / "store")
    lake_dir = _env_path("LAKEHOUSE_DIR", PROJECT / "data" / "lake")
    catalog = default_catalog_path(lake_dir)
    if not (store / "events").is_dir():
        generate_store(store)
    lake = Lake(lake_dir)
    if not lake.exists("messages"):
        days = list_days(store)
        if not days:
            raise FileNotFoundError(f"no event days under {store}")
        half = max(1, len(days) // 2)
        run_window(store, lake_dir, days[0], days[half - 1])
        if half < len(days):
            run_window(store, lake_dir, days[half], days[-1])
    if not catalog.is_file():
        build_catalog(lake_dir, catalog)
    return Sample(store=store, lake=lake, catalog=catalog)
