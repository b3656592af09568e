"""Benchmark ingest and projections against polars.read_ndjson on the same files.

    .venv/bin/python benchmarks/lakehouse_bench.py --events 1000000 --days 365 --work /tmp/bench

Each measured phase runs in its own process, so its peak memory (ru_maxrss of the
process and of its pool workers) is its own. Phases:
  ndjson     polars.read_ndjson over every event file (gz decompressed first): the limit
  ingest     raw_events + events for every day in one window (load_event_days)
  rebuild    ingest + content + every projection from an empty lake (search excluded)
  next_day   one more day on top of all earlier days (incremental refresh), ingested
             and projected one run a day (``--history window``: in one run) ...
  first_day  ... and the same day alone on an empty lake
Prints one line per phase and the ratios; the store is generated once and reused.
With ``--repeat N`` the phases run in N interleaved rounds (ndjson, ingest, rebuild,
next_day on a fresh copy of the history, first_day, then again), so a burst of load
from other jobs hits both sides of a ratio; the ratios of the median runs follow.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (pool workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest child (pool worker), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / 1024, children / 1024


def phase_ndjson(store: Path) -> dict:
    import io

    import polars as pl

    files = sorted(p for p in (store / "events").rglob("*.jsonl*") if p.is_file())
    began = time.perf_counter()
    rows = 0
    for path in files:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        rows += pl.read_ndjson(io.BytesIO(data)).height
    return {"seconds": time.perf_counter() - began, "rows": rows}


def phase_ingest(store: Path, lake_dir: Path) -> dict:
    from pipelines.ingest.load import load_event_days
    from pipelines.ingest.store import list_days
    from pipelines.lake.delta import Lake

    shutil.rmtree(lake_dir, ignore_errors=True)
    began = time.perf_counter()
    load = load_event_days(Lake(lake_dir), store, list_days(store))
    return {"seconds": time.perf_counter() - began, "rows": load.counts["rows"]}


def _refresh(lake_dir: Path, store: Path, days: list) -> dict:
    from pipelines.ingest.load import load_content, load_event_days
    from pipelines.lake.delta import Lake
    from pipelines.lake.projections import refresh_projections

    lake = Lake(lake_dir)
    began = time.perf_counter()
    load = load_event_days(lake, store, days)
    ingested = time.perf_counter()
    content = load_content(lake, store)
    verified = time.perf_counter()
    refresh = refresh_projections(lake)
    done = time.perf_counter()
    return {
        "seconds": done - began - (verified - ingested),
        "events_ingest_seconds": ingested - began,
        "content_seconds": verified - ingested,
        "content_files": content.read,
        "projection_seconds": done - verified,
        "rows": load.counts["rows"],
        "incremental": not refresh.full,
    }


def phase_rebuild(store: Path, lake_dir: Path) -> dict:
    from pipelines.ingest.store import list_days

    shutil.rmtree(lake_dir, ignore_errors=True)
    return _refresh(lake_dir, store, list_days(store))


def phase_history(store: Path, lake_dir: Path) -> dict:
    """Prepare (not measured): every day but the last, ingested and projected in one run."""
    from pipelines.ingest.store import list_days

    shutil.rmtree(lake_dir, ignore_errors=True)
    return _refresh(lake_dir, store, list_days(store)[:-1])


def phase_daily_history(store: Path, lake_dir: Path) -> dict:
    """Prepare (not measured): every day but the last, one run a day, as a daily
    schedule leaves the lake (a commit a day on every table)."""
    from pipelines.ingest.store import list_days

    shutil.rmtree(lake_dir, ignore_errors=True)
    runs = [_refresh(lake_dir, store, [day]) for day in list_days(store)[:-1]]
    summed = ["seconds", "rows", "events_ingest_seconds", "projection_seconds"]
    summed += ["content_seconds", "content_files"]
    return {key: sum(r[key] for r in runs) for key in summed}


def phase_next_day(store: Path, lake_dir: Path) -> dict:
    from pipelines.ingest.store import list_days

    return _refresh(lake_dir, store, list_days(store)[-1:])


def phase_first_day(store: Path, lake_dir: Path) -> dict:
    from pipelines.ingest.store import list_days

    shutil.rmtree(lake_dir, ignore_errors=True)
    return _refresh(lake_dir, store, list_days(store)[-1:])


PHASES = {
    "ndjson": lambda a: phase_ndjson(a.store),
    "ingest": lambda a: phase_ingest(a.store, a.lake),
    "rebuild": lambda a: phase_rebuild(a.store, a.lake),
    "history": lambda a: phase_history(a.store, a.lake),
    "daily_history": lambda a: phase_daily_history(a.store, a.lake),
    "next_day": lambda a: phase_next_day(a.store, a.lake),
    "first_day": lambda a: phase_first_day(a.store, a.lake),
}


def run_phase(name: str, store: Path, lake: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--store", str(store), "--lake", str(lake)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lakehouse-bench"))
    parser.add_argument("--only", default="ndjson,ingest,rebuild,next_day,first_day")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of the phases, interleaved; ratios of the medians (the machine is noisy)",
    )
    parser.add_argument(
        "--history",
        choices=("daily", "window"),
        default="daily",
        help="how next_day's history is built: one run a day (as scheduled runs leave "
        "the lake), or every day in one run (minutes faster to prepare)",
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        result = PHASES[args.phase](args)
        result["peak_mb"], result["worker_peak_mb"] = _peak_mb()
        result["cpu_seconds"] = _cpu_seconds()
        print(json.dumps(result))
        return

    store = args.work / f"store-{args.events}-{args.days}-{args.seed}"
    if not (store / "events").is_dir():
        # in its own process: Linux carries a parent's peak RSS into the children it
        # starts, so generating here would inflate every phase's peak memory
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pipelines.sample", "--out", str(store)]
            + ["--events", str(args.events), "--days", str(args.days), "--seed", str(args.seed)],
            check=True,
        )
        print(f"generated {store} in {time.perf_counter() - began:.1f} s")
    wanted = args.only.split(",")
    lakes = {name: args.work / "lake" / name for name in PHASES}
    rounds: dict[str, list[dict]] = {}
    if "next_day" in wanted:
        history = "daily_history" if args.history == "daily" else "history"
        _show(history, run_phase(history, store, lakes["history"]), "")
    for round_ in range(1, args.repeat + 1):
        tag = f"#{round_}" if args.repeat > 1 else ""
        for name in ("ndjson", "ingest", "rebuild", "next_day", "first_day"):
            if name not in wanted:
                continue
            if name == "next_day":  # on a fresh copy of the history, every round
                shutil.rmtree(lakes[name], ignore_errors=True)
                shutil.copytree(lakes["history"], lakes[name])
            # the writes before (a phase's lake, the copy of the history) reach the disk
            # now, not during the next phase's timing
            os.sync()
            result = run_phase(name, store, lakes[name])
            rounds.setdefault(name, []).append(result)
            _show(name, result, tag)
        if args.repeat > 1:
            _ratios({name: runs[-1] for name, runs in rounds.items()}, f"round {round_}: ")
    if args.repeat > 1:
        medians = {name: _median_run(runs) for name, runs in rounds.items()}
        print(f"median of {args.repeat} interleaved rounds (by time):")
        for name, result in medians.items():
            _show(name, result, "median")
        _ratios(medians, "")
    else:
        _ratios({name: runs[0] for name, runs in rounds.items()}, "")


def _median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def _show(name: str, r: dict, tag: str) -> None:
    rate = r["rows"] / r["seconds"] if r.get("rows") else 0
    extra = ""
    if "projection_seconds" in r:
        extra = (
            f"  (events ingest {r['events_ingest_seconds']:.2f} s, projections "
            f"{r['projection_seconds']:.2f} s, content {r['content_files']} files in "
            f"{r['content_seconds']:.2f} s not counted)"
        )
    print(
        f"{name:<10}{tag:>7} {r['seconds']:8.2f} s  {r['rows']:>9} rows  {rate:>10,.0f} rows/s  "
        f"cpu {r['cpu_seconds']:7.1f} s  peak {r['peak_mb']:6.0f} MB "
        f"(worker {r['worker_peak_mb']:5.0f} MB){extra}",
        flush=True,
    )


def _ratios(results: dict[str, dict], prefix: str) -> None:
    if "ndjson" in results and "ingest" in results:
        limit, ours = results["ndjson"], results["ingest"]
        print(
            f"{prefix}ingest throughput / read_ndjson throughput = "
            f"{(ours['rows'] / ours['seconds']) / (limit['rows'] / limit['seconds']):.2f}"
        )
    if "ndjson" in results and "rebuild" in results:
        print(
            f"{prefix}full rebuild time / read_ndjson time = "
            f"{results['rebuild']['seconds'] / results['ndjson']['seconds']:.2f}"
        )
    if "next_day" in results and "first_day" in results:
        print(
            f"{prefix}one more day on history / same day on empty lake = "
            f"{results['next_day']['seconds'] / results['first_day']['seconds']:.2f}"
        )


if __name__ == "__main__":
    main()
