"""Execute the analyst notebooks end to end (nbclient), with few replicates and a short
horizon, so `pytest -q` checks that they still run against the public API."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
PLOT_CALL = re.compile(r"sim\.plots\.(?!as_list)\w+\(")  # a cell ending in a figure
FIGURE_TAG = "figure"  # a cell drawing its own matplotlib figure (not via sim.plots) says so
CELL_TIMEOUT = 300  # seconds; a guard against a hung kernel, not a performance assertion


def test_the_four_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    assert names == [
        "01_quickstart",
        "02_delegated_vs_retained",
        "03_financial_risk",
        "04_explain",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_draws_its_figures(path: Path, monkeypatch):
    monkeypatch.setenv("SPECSIM_NB_REPLICATIONS", "8")
    monkeypatch.setenv("SPECSIM_NB_END_YEAR", "2027")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    plot_cells = sum(
        bool(PLOT_CALL.match(c.source.strip().splitlines()[-1]))
        or FIGURE_TAG in c.metadata.get("tags", [])
        for c in nb.cells
        if c.cell_type == "code" and c.source.strip()
    )
    assert plot_cells >= 2
    assert figures == plot_cells  # each plotting cell shows exactly one figure
