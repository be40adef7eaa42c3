"""docs/tutorial.ipynb: stored without outputs, and run top to bottom in a fresh kernel on the real data."""

from __future__ import annotations

import time

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import PROJECT

TUTORIAL = PROJECT / "docs" / "tutorial.ipynb"
SECONDS_ALLOWED = 600
"""A hang fails the test; the tutorial takes about two minutes on two cores (the closing notes measure it)."""


def test_the_tutorial_is_stored_without_outputs():
    notebook = nbformat.read(TUTORIAL, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.realdata
def test_the_tutorial_runs_top_to_bottom(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTSEG_TUTORIAL_DATA", str(shared_data / "online_retail.parquet"))
    notebook = nbformat.read(TUTORIAL, as_version=4)
    client = NotebookClient(
        notebook, timeout=SECONDS_ALLOWED, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    started = time.perf_counter()
    client.execute()
    print(f"tutorial executed in {time.perf_counter() - started:.0f} s")
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert (tmp_path / "tutorial-out" / "report.html").exists()
    # The report's charts are in the notebook, as Plotly figures.
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert len([o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]) >= 10
