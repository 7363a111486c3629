"""The notebooks run top to bottom on tiny data (their outputs are not committed)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from test_report import make_multirun

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
pytestmark = pytest.mark.slow  # each test executes notebooks in a Jupyter kernel (a subprocess)


def _execute(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    # The kernel inherits this process's environment (set by monkeypatch) and runs in tmp_path.
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture
def tiny_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HIH_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("HIH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HIH_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def test_quantization_notebook(tiny_env):
    nb = _execute("quantization.ipynb", tiny_env)
    assert _images(nb) >= 2  # the bar chart and the heatmap in a heatmap
    assert (tiny_env / "out" / "heatmap_in_heatmap.png").stat().st_size > 0


def test_report_notebook(tiny_env, monkeypatch):
    monkeypatch.setenv("HIH_MULTIRUN_DIR", str(make_multirun(tiny_env / "sweep")))
    nb = _execute("report.ipynb", tiny_env)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "job 2 [model.decimal_size=16]: failed: ValueError: decimal_size too large" in text
    assert "job 3 [model.decimal_size=32]: not started" in text
    assert _images(nb) >= 3  # subset bars, runs bar chart, NME against resolution
