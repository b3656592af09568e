"""Launch a ranged asset backfill on a running Dagster instance, through its GraphQL API.

    .venv/bin/python scripts/launch_backfill.py --url http://127.0.0.1:3000 \\
        --start 2025-10-01 --end 2025-10-30 [--assets raw_events,events] [--wait]

Partitioned assets of ``--assets`` get the day range (``partitionsByAssets`` with a
``range``); unpartitioned ones are materialized once after them. The ingest assets
have ``BackfillPolicy.single_run()``, so the range is one run. The daemon
(``dagster dev`` or ``dagster-daemon run``) must be running to execute it.
Exit status: 0 when launched (with ``--wait``: when it succeeded), else 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import date

import requests

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_ASSETS = ("raw_events", "events")
SUCCEEDED = {"COMPLETED", "COMPLETED_SUCCESS"}
FINISHED_BADLY = {"FAILED", "COMPLETED_FAILED", "CANCELED"}

LOCATIONS = """
query Locations {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""

ASSET_NODES = """
query AssetNodes {
  assetNodes { assetKey { path } isPartitioned }
}
"""

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
    ... on PythonError { stack }
  }
}
"""

STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions
      runs(limit: 50) { runId status }
      error { message }
    }
    ... on Error { message }
  }
}
"""


class GraphQLError(RuntimeError):
    """The server answered with errors, or with an error type instead of a result."""


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST ``query`` to ``<url>/graphql``; returns ``data`` or raises GraphQLError."""
    response = requests.post(
        f"{url.rstrip('/')}/graphql",
        json={"query": query, "variables": variables or {}},
        timeout=timeout,
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise GraphQLError("; ".join(error.get("message", "?") for error in body["errors"]))
    return body["data"]


def wait_until_loaded(url: str, timeout: float = 120, poll: float = 0.5) -> list[str]:
    """Wait until the webserver answers and every code location has loaded; returns their
    names. A location that failed to load raises GraphQLError; ``timeout``: TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            workspace = graphql(url, LOCATIONS, timeout=10)["workspaceOrError"]
            entries = workspace.get("locationEntries") or []
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                for entry in entries:
                    loaded = entry["locationOrLoadError"] or {}
                    if loaded.get("__typename") == "PythonError":
                        raise GraphQLError(f"{entry['name']} failed to load: {loaded['message']}")
                return [entry["name"] for entry in entries]
        except requests.RequestException:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}: code locations not loaded after {timeout}s")
        time.sleep(poll)


def partitioned_assets(url: str) -> dict[str, bool]:
    """Every asset of the instance's code locations: ``{"a/b": is_partitioned}``."""
    nodes = graphql(url, ASSET_NODES)["assetNodes"]
    return {"/".join(node["assetKey"]["path"]): node["isPartitioned"] for node in nodes}


def backfill_params(
    assets: list[str], start: date, end: date, partitioned: dict[str, bool], title: str | None
) -> dict:
    """``LaunchBackfillParams`` selecting ``start..end`` (inclusive) of each partitioned asset
    and the unpartitioned assets as a whole."""
    unknown = [asset for asset in assets if asset not in partitioned]
    if unknown:
        raise ValueError(f"unknown assets: {', '.join(unknown)}")
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    by_asset = []
    for asset in assets:
        selector: dict = {"assetKey": {"path": asset.split("/")}}
        if partitioned[asset]:
            selector["partitions"] = {"range": {"start": start.isoformat(), "end": end.isoformat()}}
        by_asset.append(selector)
    params: dict = {"partitionsByAssets": by_asset}
    params["title"] = title or f"{'+'.join(assets)} {start}...{end}"
    return params


def launch_backfill(
    url: str, assets: list[str], start: date, end: date, title: str | None = None
) -> str:
    """Launch the backfill; returns its id."""
    params = backfill_params(assets, start, end, partitioned_assets(url), title)
    result = graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        detail = result.get("message") or result["__typename"]
        raise GraphQLError(f"backfill not launched: {detail}\n{result.get('stack') or ''}".strip())
    return result["backfillId"]


@dataclass(frozen=True)
class BackfillState:
    id: str
    status: str
    runs: list[tuple[str, str]]

    @property
    def finished(self) -> bool:
        return self.status in SUCCEEDED | FINISHED_BADLY

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCEEDED and all(status == "SUCCESS" for _, status in self.runs)


def backfill_state(url: str, backfill_id: str) -> BackfillState:
    result = graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    if result["__typename"] != "PartitionBackfill":
        raise GraphQLError(result.get("message") or result["__typename"])
    runs = [(run["runId"], run["status"]) for run in result["runs"]]
    return BackfillState(id=result["id"], status=result["status"], runs=runs)


def wait_for_backfill(
    url: str, backfill_id: str, timeout: float = 600, poll: float = 2.0
) -> BackfillState:
    """Poll until the backfill has finished (or ``timeout`` seconds passed: TimeoutError)."""
    deadline = time.monotonic() + timeout
    while True:
        state = backfill_state(url, backfill_id)
        if state.finished:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} still {state.status} after {timeout}s")
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help=f"webserver URL ({DEFAULT_URL})")
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument(
        "--assets",
        default=",".join(DEFAULT_ASSETS),
        help="comma-separated asset keys (default: %(default)s)",
    )
    parser.add_argument("--title", default=None)
    parser.add_argument("--wait", action="store_true", help="poll until the backfill finishes")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to --wait")
    args = parser.parse_args(argv)
    assets = [asset.strip() for asset in args.assets.split(",") if asset.strip()]
    try:
        backfill_id = launch_backfill(args.url, assets, args.start, args.end, args.title)
        print(f"backfill {backfill_id} launched: {args.url.rstrip('/')}/runs/b/{backfill_id}")
        if not args.wait:
            return 0
        state = wait_for_backfill(args.url, backfill_id, timeout=args.timeout)
    except (GraphQLError, ValueError, TimeoutError, requests.RequestException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"backfill {state.id}: {state.status}; runs: " + ", ".join(s for _, s in state.runs))
    return 0 if state.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
