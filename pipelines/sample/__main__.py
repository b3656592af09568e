"""Command line: ``python -m pipelines.sample --out DIR [--events N] [--days D] [--seed S]
[--start YYYY-MM-DD] [--faults]``; prints a one-line summary of the store written."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from pipelines.sample.generator import NotAStoreError, generate_store


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.sample",
        description="Write a deterministic sample message store (docs/message-store.md).",
    )
    parser.add_argument("--out", type=Path, required=True, help="store directory")
    parser.add_argument("--events", type=int, default=20_000, help="events to generate")
    parser.add_argument("--days", type=int, default=30, help="recorded days")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2025, 10, 1),
        help="first recorded day, YYYY-MM-DD",
    )
    parser.add_argument("--faults", action="store_true", help="add every bad input of the spec")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    try:
        summary = generate_store(
            args.out, args.events, args.days, args.seed, args.start, faults=args.faults
        )
    except (NotAStoreError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {summary.line()} [{time.perf_counter() - began:.1f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
