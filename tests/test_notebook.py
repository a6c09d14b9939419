"""docs/examples/quickstart.ipynb runs top to bottom (nbclient) and is stored without outputs."""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "examples" / "quickstart.ipynb"
nbformat = pytest.importorskip("nbformat", reason="notebook test needs nbformat, nbclient and ipykernel")


def test_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.slow
def test_quickstart_runs(tmp_path):
    nbclient = pytest.importorskip("nbclient", reason="notebook test needs nbclient and ipykernel")
    pytest.importorskip("ipykernel", reason="notebook test needs ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()   # raises on a failing cell
    outputs = {i: c.outputs for i, c in enumerate(notebook.cells) if c.cell_type == "code"}
    text = "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "")
                   for cell in outputs.values() for o in cell)
    assert "Sweep('reports/quickstart')" in text
    assert "sgd" in text and "bgd" in text
    figures = [o for cell in outputs.values() for o in cell if "image/png" in o.get("data", {})]
    assert len(figures) == 1
    assert (tmp_path / "reports" / "quickstart" / "manifest.json").exists()
