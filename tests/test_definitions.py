"""The code location loads and validates; every asset is documented, grouped and typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import yaml

from pipelines.assets.plots import platform_activity_figure, png_markdown
from pipelines.definitions import defs
from pipelines.lake.projections import SCHEMAS

PROJECT = Path(__file__).resolve().parents[1]
POOLS = {"lake_events", "lake_content", "lake_projections"}
GROUPS = {"ingest", "model", "search"}


def test_definitions_validate():
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {job.name for job in repository.get_all_jobs()} >= {"lakehouse", "lake_vacuum"}
    assert {s.name for s in repository.sensor_defs} >= {"new_event_files"}
    assert {s.name for s in repository.schedule_defs} == {"daily_ingest", "weekly_vacuum"}
    vacuum = repository.get_schedule_def("weekly_vacuum")
    assert vacuum.job_name == "lake_vacuum"
    assert vacuum.default_status == dg.DefaultScheduleStatus.STOPPED


def test_every_asset_has_group_description_kind_and_owner():
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    names = {key.to_user_string() for key in keys}
    assert names >= {"raw_events", "events", "content", "messages", "platform_daily"}
    assert names >= {"snapshots", "duckdb_catalog", "embeddings", "search_index"}
    for key in keys:
        node = graph.get(key)
        assert node.group_name in GROUPS, key
        assert node.description and len(node.description) > 20, key
        assert node.kinds, key
        assert node.owners, key
    assert {graph.get(key).group_name for key in keys} == GROUPS
    assert graph.get(dg.AssetKey("duckdb_catalog")).kinds == {"duckdb"}
    assert graph.get(dg.AssetKey("duckdb_catalog")).group_name == "model"


def test_checks_are_attached_and_blocking_where_bad_data_must_stop():
    graph = defs.resolve_asset_graph()
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert checks == {
        ("events", "quarantine_rate"),
        ("events", "index_json_matches"),
        ("events", "no_event_conflicts"),
        ("events", "no_version_gaps"),
        ("content", "cids_verified"),
        ("content", "no_orphaned_content"),
        ("messages", "no_unknown_references"),
        *((name, "recount_matches") for name in ("messages", "threads", "accounts", "rooms")),
        ("platform_daily", "recount_matches"),
    }
    blocking = {
        (key.asset_key.to_user_string(), key.name)
        for key in graph.asset_check_keys
        if graph.get_check_spec(key).blocking
    }
    assert blocking == checks - {
        ("events", "no_version_gaps"),
        ("content", "no_orphaned_content"),
        ("messages", "no_unknown_references"),
    }


def test_dagster_yaml_loads_as_an_instance(tmp_path):
    (tmp_path / "dagster.yaml").write_text((PROJECT / "dagster_home" / "dagster.yaml").read_text())
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        assert pools.pool_granularity.value == "run"  # whole runs of the job never overlap
    finally:
        instance.dispose()


def test_writers_name_the_pools_of_dagster_yaml():
    config = yaml.safe_load((PROJECT / "dagster_home" / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert "run_queue" not in config  # Dagster refuses it next to `concurrency`
    graph = defs.resolve_asset_graph()
    pools = set().union(*(graph.get(key).pools or set() for key in graph.get_all_asset_keys()))
    assert pools >= POOLS


def test_dagster_cli_validates_the_workspace(tmp_path):
    """What `dagster dev` loads: workspace.yaml, with the instance of dagster_home."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT / "dagster_home" / "dagster.yaml").read_text())
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate"]
        + ["-w", str(PROJECT / "workspace.yaml")],
        cwd=PROJECT,
        env={"DAGSTER_HOME": str(home), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_activity_plot_draws_the_recent_days_of_each_platform():
    days = pl.date_range(pl.date(2025, 1, 1), pl.date(2025, 6, 30), eager=True)
    daily = pl.DataFrame(
        {
            "platform": ["slack"] * len(days) + ["github"] * len(days),
            "day": pl.concat([days, days]),
            "messages_created": list(range(2 * len(days))),
        }
    )
    figure = platform_activity_figure(daily, days=30)
    (axes,) = figure.axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert set(lines) == {"slack", "github"}
    assert all(len(line.get_xdata()) == 30 for line in lines.values())
    assert png_markdown(figure, "x").startswith("![x](data:image/png;base64,iVBOR")
    empty = platform_activity_figure(pl.DataFrame(schema=SCHEMAS["platform_daily"]))
    assert not empty.axes[0].get_lines()
