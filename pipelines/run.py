"""Run the main job from the command line: ingest every recorded day of the store, then
refresh the read models, as one Dagster run recorded in DAGSTER_HOME.

    python -m pipelines.run [--from YYYY-MM-DD] [--to YYYY-MM-DD]

Without dates the window is every day found in the store (MESSAGE_STORE_DIR).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

import dagster as dg

from pipelines.definitions import defs
from pipelines.ingest.store import list_days
from pipelines.resources import PROJECT_ROOT, lakehouse_from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="start", type=date.fromisoformat)
    parser.add_argument("--to", dest="end", type=date.fromisoformat)
    args = parser.parse_args(argv)
    days = list_days(lakehouse_from_env().store)
    if not days and not (args.start and args.end):
        print(f"no event days under {lakehouse_from_env().store}", file=sys.stderr)
        return 1
    start, end = args.start or days[0], args.end or days[-1]
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / "dagster_home"))
    result = defs.get_job_def("lakehouse").execute_in_process(
        instance=dg.DagsterInstance.get(),
        tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": end.isoformat(),
        },
        raise_on_error=False,
    )
    rows_by_asset = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        rows = materialization.metadata.get("dagster/row_count")
        rows_by_asset[materialization.asset_key.to_user_string()] = rows.value if rows else "?"
    for asset, rows in rows_by_asset.items():
        print(f"{asset:<16} rows={rows}")
    print("run", result.run_id, "succeeded" if result.success else "FAILED", f"({start}...{end})")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
