"""Query the lake from the shell.

python -m pipelines.query state message msg_0000042 --at 2025-10-05T12:00:00Z
python -m pipelines.query as-of threads --day 2025-10-05 [--limit 20]
python -m pipelines.query table messages [--version 3 | --at 2025-11-01T00:00:00Z]
python -m pipelines.query history events
"""

from __future__ import annotations

import argparse
from datetime import date, datetime

import orjson
import polars as pl

from pipelines.query.state import aggregate_state, projections_as_of, table_as_of
from pipelines.resources import lakehouse_from_env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.query", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    state = sub.add_parser("state", help="one aggregate as of a recorded time")
    state.add_argument("aggregate_type", choices=["message", "account", "room", "read_marker"])
    state.add_argument("aggregate_id")
    state.add_argument("--at", type=datetime.fromisoformat, required=True)
    as_of = sub.add_parser("as-of", help="a projection at the end of a recorded day")
    as_of.add_argument("table")
    as_of.add_argument("--day", type=date.fromisoformat, required=True)
    as_of.add_argument("--limit", type=int, default=20)
    table = sub.add_parser("table", help="a table now, or at a Delta version or time")
    table.add_argument("table")
    table.add_argument("--version", type=int)
    table.add_argument("--at")
    table.add_argument("--limit", type=int, default=20)
    history = sub.add_parser("history", help="a table's Delta commits")
    history.add_argument("table")
    args = parser.parse_args(argv)

    lake = lakehouse_from_env().lake
    pl.Config.set_tbl_rows(50)
    if args.command == "state":
        found = aggregate_state(lake, args.aggregate_type, args.aggregate_id, args.at)
        print(orjson.dumps(found, option=orjson.OPT_INDENT_2, default=str).decode())
    elif args.command == "as-of":
        print(projections_as_of(lake, args.day)[args.table].head(args.limit))
    elif args.command == "table":
        version = args.version if args.version is not None else args.at
        frame = (
            lake.scan(args.table).collect()
            if version is None
            else table_as_of(lake, args.table, version)
        )
        print(frame.head(args.limit))
    else:
        for commit in lake.table(args.table).history():
            print(
                commit.get("version"),
                commit.get("timestamp"),
                commit.get("operation"),
                {k: v for k, v in commit.items() if k.endswith("_version")},
            )


if __name__ == "__main__":
    main()
