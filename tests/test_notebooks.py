"""The notebooks run top to bottom on a fresh sample (nbclient; any error fails the test).

A small store is generated and its lake built once (as the notebooks' first cell
would), under a temporary folder given to the kernels by MESSAGE_STORE_DIR and
LAKEHOUSE_DIR; every notebook then reuses it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

PROJECT = Path(__file__).resolve().parents[1]
NOTEBOOKS = PROJECT / "notebooks"
NAMES = sorted(path.name for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SAMPLE_ARGS = ["--events", "1500", "--days", "6", "--seed", "7"]


@pytest.fixture(scope="module")
def sample_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("notebooks")
    env = {"MESSAGE_STORE_DIR": str(root / "store"), "LAKEHOUSE_DIR": str(root / "lake")}
    subprocess.run(
        [sys.executable, "-m", "pipelines.sample", "--out", env["MESSAGE_STORE_DIR"], *SAMPLE_ARGS],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("LAKEHOUSE_CATALOG", raising=False)
        patch.syspath_prepend(str(NOTEBOOKS))
        from lakehouse_setup import open_sample

        sample = open_sample()  # what the first cell does, once for all notebooks
        assert sample.catalog == (root / "lake.duckdb").resolve()
        yield env


def test_the_notebooks_are_the_four_expected():
    assert NAMES == [
        "01_threads_and_accounts.ipynb",
        "02_platform_activity.ipynb",
        "03_search.ipynb",
        "04_time_travel.ipynb",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, sample_env):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute(env={**os.environ, **sample_env})  # CellExecutionError on any error
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert images, f"{name} draws no plot"
