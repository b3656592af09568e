"""The lake_vacuum job: delete the files of replaced table versions older than a retention."""

import dagster as dg
from pydantic import Field

from pipelines.lake.maintenance import vacuum_lake
from pipelines.resources import LakehouseResource


class VacuumConfig(dg.Config):
    retain_hours: int | None = Field(
        default=None,
        ge=0,
        description="Keep the files of versions younger than this many hours (time travel "
        "to them keeps working). Default: the resource's vacuum_retain_hours "
        "(LAKEHOUSE_VACUUM_RETAIN_HOURS, 168).",
    )
    dry_run: bool = Field(default=False, description="List and measure the files only.")


# In the projections' pool, which every run of the lakehouse job holds from start to end
# (concurrency granularity: run), so that a vacuum never runs beside a daily run.
@dg.op(pool="lake_projections", out=dg.Out(dg.Nothing), tags={"kind": "delta"})
def vacuum_tables(
    context: dg.OpExecutionContext, config: VacuumConfig, lakehouse: LakehouseResource
) -> dg.Output:
    """Vacuum every Delta table under the lake root (``vacuum_lake``)."""
    retain = lakehouse.vacuum_retain_hours if config.retain_hours is None else config.retain_hours
    vacuumed = vacuum_lake(lakehouse.lake, retain, dry_run=config.dry_run)
    freed = [v for v in vacuumed if v.files]
    files, megabytes = sum(v.files for v in freed), round(sum(v.bytes for v in freed) / 1e6, 1)
    verb = "would delete" if config.dry_run else "deleted"
    context.log.info(f"{verb} {files} files ({megabytes} MB) in {len(freed)} tables")
    rows = [f"| {v.table} | {v.files} | {v.bytes / 1e6:.1f} |" for v in freed]
    return dg.Output(
        None,
        metadata={
            "retain_hours": retain,
            "dry_run": config.dry_run,
            "tables": len(vacuumed),
            "files": files,
            "megabytes": megabytes,
            "by_table": dg.MetadataValue.md(
                "\n".join(["| table | files | MB |", "|---|---|---|", *rows])
            ),
        },
    )


@dg.job(
    description="Delete, in every Delta table of the lake, the files that a commit replaced "
    "more than the retention ago (default 168 h). Current tables, snapshots and state-as-of "
    "queries are unchanged; time travel keeps the versions within the retention.",
)
def lake_vacuum():
    vacuum_tables()


lake_vacuum_schedule = dg.ScheduleDefinition(
    name="weekly_vacuum",
    job=lake_vacuum,
    cron_schedule="0 3 * * 0",
    execution_timezone="UTC",
    description="Sundays at 03:00 UTC, vacuum the lake with the configured retention.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
