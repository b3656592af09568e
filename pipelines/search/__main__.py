"""Search the live messages from the shell.

python -m pipelines.search "query" [--mode fts|vector|hybrid] [-k 10]
    [--platform P] [--room R] [--account A] [--since D] [--until D] [--lake DIR]

Prints one block per result: rank, score, time, author, room, thread and a
snippet. The lake defaults to LAKEHOUSE_DIR (data/lake); its search index is
kept by the ``embeddings`` and ``search_index`` assets.
"""

from __future__ import annotations

import argparse
import sys

import polars as pl

from pipelines.lake.delta import Lake
from pipelines.model.views import ACCOUNTS_SCHEMA, ROOMS_SCHEMA
from pipelines.resources import default_lake_dir
from pipelines.search.api import MODES, IndexMissingError, search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.search", description=__doc__.split("\n")[0]
    )
    parser.add_argument("query")
    parser.add_argument("--mode", choices=MODES, default="hybrid")
    parser.add_argument("-k", type=int, default=10, help="results (default 10)")
    parser.add_argument("--platform")
    parser.add_argument("--room", help="room_id")
    parser.add_argument("--account", help="account_id of the author")
    parser.add_argument("--since", help="YYYY-MM-DD or ISO time (inclusive)")
    parser.add_argument("--until", help="YYYY-MM-DD (inclusive day) or ISO time (exclusive)")
    parser.add_argument("--lake", default=default_lake_dir(), help="lake directory")
    args = parser.parse_args(argv)
    lake = Lake(args.lake)
    try:
        results = search(
            lake,
            args.query,
            mode=args.mode,
            k=args.k,
            platform=args.platform,
            room=args.room,
            account=args.account,
            since=args.since,
            until=args.until,
        )
    except IndexMissingError as error:
        print(f"{error}: materialize the search_index asset first", file=sys.stderr)
        return 1
    if results.is_empty():
        print("no results")
        return 0
    print(render(results, lake))
    return 0


def render(results: pl.DataFrame, lake: Lake) -> str:
    """Results as text blocks, with account and room names from the lake when known."""
    authors = _names(lake, "accounts", ACCOUNTS_SCHEMA, "account_id", "display_name", results)
    rooms = _names(lake, "rooms", ROOMS_SCHEMA, "room_id", "name", results)
    blocks = []
    for row in results.iter_rows(named=True):
        author = authors.get(row["account_id"]) or row["account_id"]
        room = rooms.get(row["room_id"]) or row["room_id"]
        blocks.append(
            f"{row['rank']:>3}. {row['score']:.4f}  {row['created_at']:%Y-%m-%d %H:%M} UTC  "
            f"{author} ({row['account_id']}) in {room} ({row['room_id']}, {row['platform']})  "
            f"thread {row['thread_id']}  [{row['message_id']}]\n     {row['snippet']}"
        )
    return "\n".join(blocks)


def _names(
    lake: Lake, table: str, schema: pl.Schema, key: str, name: str, results: pl.DataFrame
) -> dict[str, str]:
    if not lake.exists(table):
        return {}
    wanted = results[key].unique().implode()
    rows = lake.read(table, schema, columns=[key, name], where=pl.col(key).is_in(wanted))
    return {k: v for k, v in rows.iter_rows() if v}


if __name__ == "__main__":
    sys.exit(main())
