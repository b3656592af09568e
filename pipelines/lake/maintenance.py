"""Lake upkeep: delete the data files that no recent version of a table reads.

Every daily run rewrites partitions (a week of ``messages``, a day of ``events`` when
re-run), and Delta keeps the files it replaced so that a table can be read as of an
earlier version. Nothing deletes them until a vacuum: after a year of daily runs at
1M events the lake held 1.4 GB, against 0.5 GB for the same tables rebuilt
(docs/operations.md). ``vacuum_lake`` deletes, in every Delta table under the lake
root, the files that a commit removed more than ``retain_hours`` ago (delta-rs's
vacuum). Afterwards:

- the current tables, the snapshots and state-as-of queries are unchanged;
- time travel works for the versions younger than the retention, not older ones;
- the next refresh is still incremental: a vacuum's commits change no rows
  (``delta.MAINTENANCE_OPERATIONS``), so the versions the tables record stay valid.
  A refresh whose change feed lost a file (the last refresh is older than the
  retention) rebuilds instead, which gives the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.lake.delta import Lake

# Delta's own default (delta.deletedFileRetentionDuration): a week of time travel.
DEFAULT_RETAIN_HOURS = 168


@dataclass(frozen=True)
class TableVacuum:
    """What a vacuum deleted (or, in a dry run, would delete) in one table."""

    table: str  # its path under the lake root, e.g. "messages" or "search/documents"
    files: int
    bytes: int


def delta_tables_under(root: Path | str) -> list[str]:
    """The paths (relative to ``root``, sorted) of every Delta table under it, nested
    ones included."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(str(log.parent.relative_to(root)) for log in root.rglob("_delta_log"))


def vacuum_lake(lake: Lake, retain_hours: int, dry_run: bool = False) -> list[TableVacuum]:
    """Delete from every Delta table under the lake root the data files a commit removed
    more than ``retain_hours`` ago; with ``dry_run``, only list and measure them. A table
    with nothing to delete gets no commit. Returns one entry per table."""
    if retain_hours < 0:
        raise ValueError(f"retain_hours must be 0 or more, not {retain_hours}")
    done = []
    for name in delta_tables_under(lake.root):
        table = lake.table(name)
        path = lake.path(name)
        # Files a commit removed are listed until their commit leaves the log, even
        # once deleted: only those still there are counted and vacuumed.
        listed = table.vacuum(retain_hours, dry_run=True, enforce_retention_duration=False)
        present = [path / f for f in listed if (path / f).is_file()]
        size = sum(f.stat().st_size for f in present)
        if present and not dry_run:
            table.vacuum(retain_hours, dry_run=False, enforce_retention_duration=False)
        done.append(TableVacuum(name, len(present), size))
    return done
