"""End to end: the real dagster-webserver and dagster-daemon run a ranged backfill launched over
GraphQL (scripts/launch_backfill.py) on a small generated store.

Everything runs on 127.0.0.1 with a free port, a temporary DAGSTER_HOME (a copy of
dagster_home/dagster.yaml), a temporary store and lake. Each service is started in
its own process group (code servers and run workers join it) and the whole group
is stopped by its id; the test fails if any process of a group is left.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.lake.delta import Lake

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START, END = date(2025, 10, 1), date(2025, 10, 3)
SAMPLE_ARGS = ["--events", "1200", "--days", "4", "--seed", "11", "--start", "2025-10-01"]


def load_script(name: str):
    """A module of scripts/ (not a package), imported by path."""
    spec = importlib.util.spec_from_file_location(name, PROJECT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


backfill = load_script("launch_backfill")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(entry.name))
    return members


@dataclass
class Service:
    """A process started in its own group, with its log file."""

    name: str
    process: subprocess.Popen
    log: Path

    @property
    def pgid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_service(name: str, command: list[str], env: dict[str, str], logs: Path) -> Service:
    log = logs / f"{name}.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        command,
        cwd=PROJECT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: pgid == pid
    )
    handle.close()
    return Service(name, process, log)


def stop_service(service: Service, grace: float = 20.0) -> list[int]:
    """SIGINT the group (Dagster shuts its children down), then SIGTERM, then SIGKILL what
    is left; returns the processes still alive at the end (should be none)."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if not group_members(service.pgid):
            break
        try:
            os.killpg(service.pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while group_members(service.pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
    with contextlib.suppress(subprocess.TimeoutExpired):
        service.process.wait(timeout=5)
    return group_members(service.pgid)


def dagster_env(home: Path, store: Path, lake: Path) -> dict[str, str]:
    env = {**os.environ, "DAGSTER_HOME": str(home), "MESSAGE_STORE_DIR": str(store)}
    env |= {"LAKEHOUSE_DIR": str(lake), "PYTHONUNBUFFERED": "1"}
    return env


def make_instance(root: Path) -> tuple[Path, Path, Path]:
    """A temporary DAGSTER_HOME (with the project's dagster.yaml), store and lake path."""
    home, store, lake = root / "dagster_home", root / "store", root / "lake"
    home.mkdir(parents=True)
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    subprocess.run(
        [sys.executable, "-m", "pipelines.sample", "--out", str(store), *SAMPLE_ARGS],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )
    return home, store, lake


def webserver_command(port: int) -> list[str]:
    return [
        str(BIN / "dagster-webserver"),
        "-w",
        str(PROJECT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory) -> Iterator[tuple[str, Service, dict, Path]]:
    """A running dagster-webserver over a temporary instance: (url, service, env, lake)."""
    root = tmp_path_factory.mktemp("e2e")
    home, store, lake = make_instance(root)
    env = dagster_env(home, store, lake)
    port = free_port()
    service = start_service("webserver", webserver_command(port), env, root)
    url = f"http://127.0.0.1:{port}"
    try:
        backfill.wait_until_loaded(url, timeout=180)
    except Exception:
        stop_service(service)
        pytest.fail(f"webserver did not come up:\n{service.tail()}")
    yield url, service, env, lake
    leftovers = stop_service(service)
    assert not leftovers, f"webserver group left processes {leftovers}"


@pytest.mark.slow
def test_ranged_backfill_over_graphql_runs_on_the_daemon(webserver, tmp_path):
    url, web, env, lake_dir = webserver
    assets = ["raw_events", "events", "content"]
    backfill_id = backfill.launch_backfill(url, assets, START, END, title="e2e test")
    # The daemon starts after the backfill exists, so its first iteration submits the run.
    daemon = start_service(
        "daemon",
        [str(BIN / "dagster-daemon"), "run", "-w", str(PROJECT / "workspace.yaml")],
        env,
        tmp_path,
    )
    try:
        state = backfill.wait_for_backfill(url, backfill_id, timeout=240, poll=2)
    finally:
        leftovers = stop_service(daemon)
    assert state.succeeded, f"backfill {state}\n{daemon.tail()}"
    assert not leftovers, f"daemon group left processes {leftovers}"
    # One run for the range of the single-run ingest assets, one for content.
    assert len(state.runs) == 2, state.runs

    lake = Lake(lake_dir)
    days = pl.read_delta(str(lake.path("events")))["day"].unique().sort().to_list()
    assert days == [START, date(2025, 10, 2), END]
    raw = pl.read_delta(str(lake.path("raw_events")))
    assert raw["day"].max() == END and raw.height == lake.row_count("events")
    assert lake.row_count("content") > 0
    assert not lake.exists("messages")  # projections were not part of this backfill

    status = backfill.backfill_state(url, backfill_id)
    assert status.status in backfill.SUCCEEDED


def test_backfill_params_ranges_partitioned_assets_only():
    partitioned = {"raw_events": True, "events": True, "content": False}
    params = backfill.backfill_params(["events", "content"], START, END, partitioned, title=None)
    assert params["partitionsByAssets"] == [
        {
            "assetKey": {"path": ["events"]},
            "partitions": {"range": {"start": "2025-10-01", "end": "2025-10-03"}},
        },
        {"assetKey": {"path": ["content"]}},
    ]
    with pytest.raises(ValueError, match="unknown assets"):
        backfill.backfill_params(["nope"], START, END, partitioned, None)
    with pytest.raises(ValueError, match="before"):
        backfill.backfill_params(["events"], END, START, partitioned, None)
