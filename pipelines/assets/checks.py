"""Asset checks: thin wrappers that turn the rules of ``pipelines.quality`` into check results.

Blocking checks (ERROR) stop the assets downstream of their asset in the same run,
so a bad ingest never reaches the read models and a read model that disagrees
with a replay never reaches the DuckDB catalog. WARN checks report only.

| check | asset | severity | blocking |
|---|---|---|---|
| quarantine_rate | events | ERROR | yes |
| index_json_matches | events | ERROR | yes |
| no_event_conflicts | events | ERROR | yes |
| no_version_gaps | events | WARN | no |
| cids_verified | content | ERROR | yes |
| no_orphaned_content | content | WARN | no |
| no_unknown_references | messages | WARN | no |
| recount_matches | messages, threads, accounts, rooms, platform_daily | ERROR | yes |
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from pipelines import quality
from pipelines.assets.metadata import preview
from pipelines.lake.tables import CONTENT, EVENTS
from pipelines.resources import LakehouseResource

QUARANTINE_RATE = "quarantine_rate"
INDEX_JSON = "index_json_matches"
EVENT_CONFLICTS = "no_event_conflicts"
VERSION_GAPS = "no_version_gaps"
CIDS_VERIFIED = "cids_verified"
ORPHANED_CONTENT = "no_orphaned_content"
UNKNOWN_REFERENCES = "no_unknown_references"
RECOUNT = "recount_matches"


def check_result(
    outcome: quality.Outcome,
    severity: dg.AssetCheckSeverity,
    asset_key: dg.AssetKey | None = None,
    check_name: str | None = None,
) -> dg.AssetCheckResult:
    """A check result carrying the outcome's summary, counts and offending rows."""
    metadata: dict[str, object] = {"summary": outcome.summary, **outcome.counts}
    if outcome.sample is not None:
        metadata["sample"] = preview(outcome.sample, rows=quality.SAMPLE_ROWS)
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=severity,
        description=outcome.summary,
        metadata=metadata,
        asset_key=asset_key,
        check_name=check_name,
    )


ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN


@dg.asset_check(
    asset=EVENTS,
    name=QUARANTINE_RATE,
    blocking=True,
    description="Share of event lines quarantined (envelope or payload rejects) is at most "
    f"{quality.MAX_QUARANTINE_RATE_ENV} (default {quality.DEFAULT_MAX_QUARANTINE_RATE:.1%}).",
)
def quarantine_rate_check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    return check_result(quality.quarantine_rate(lakehouse.lake), ERROR)


@dg.asset_check(
    asset=EVENTS,
    name=INDEX_JSON,
    blocking=True,
    description="Every closed day's index.json agrees with its files (no `index_report` rows): "
    "a listed file absent or a count or hash that differs means the day is not what the "
    "producer closed.",
)
def index_json_check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    return check_result(quality.index_mismatches(lakehouse.lake), ERROR)


@dg.asset_check(
    asset=EVENTS,
    name=EVENT_CONFLICTS,
    blocking=True,
    description="No line lost its (aggregate, version) slot or its event id to a line with "
    "other content (the `conflicts` table is empty).",
)
def event_conflicts_check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    return check_result(quality.event_conflicts(lakehouse.lake), ERROR)


@dg.asset_check(
    asset=EVENTS,
    name=VERSION_GAPS,
    description="Every aggregate's applied versions run 1..n; gaps are reported, not fatal.",
)
def version_gaps_check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    return check_result(quality.event_version_gaps(lakehouse.lake), WARN)


@dg.asset_check(
    asset=CONTENT,
    name=CIDS_VERIFIED,
    blocking=True,
    description="Every content file hashes to the CID in its name (no `hash_mismatch` rows).",
)
def cids_verified_check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    return check_result(quality.cid_verification(lakehouse.lake), ERROR)


@dg.asset_check(
    asset=CONTENT,
    name=ORPHANED_CONTENT,
    additional_deps=[EVENTS],
    description="Content files that no event references (garbage-collection candidates) are "
    f"at most {quality.MAX_ORPHAN_SHARE_ENV} (default {quality.DEFAULT_MAX_ORPHAN_SHARE:.1%}) "
    "of the files, and none belongs to a quarantined line.",
)
def orphaned_content_check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    return check_result(quality.orphaned_content(lakehouse.lake), WARN)


@dg.asset_check(
    asset="messages",
    name=UNKNOWN_REFERENCES,
    additional_deps=["accounts", "rooms"],
    description="Every account and room a message names was created (known in `accounts` "
    "and `rooms`).",
)
def unknown_references_check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
    return check_result(quality.unknown_references(lakehouse.lake), WARN)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            RECOUNT,
            asset=name,
            blocking=True,
            description=f"`{name}` row counts and sums equal a full replay of the applied "
            "events (`replay_projections`, the tables of `project_all`).",
        )
        for name in quality.RECOUNTED
    ],
)
def recount_checks(lakehouse: LakehouseResource) -> Iterator[dg.AssetCheckResult]:
    for name, outcome in quality.recount_projections(lakehouse.lake).items():
        yield check_result(outcome, ERROR, asset_key=dg.AssetKey(name), check_name=RECOUNT)
