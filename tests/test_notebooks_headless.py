"""Headless execution (nbclient, as ``jupyter nbconvert --execute``) of widget cells: no stall, outputs kept.

``scripts/execute_notebooks.py`` explains the stall (a missed wake-up on the shell socket while a widget cell's
IOPub burst is read) and works around it; without the workaround most runs of this notebook had 1-2 cells
waiting out the timeout, which the runner now reports as an error rather than passing silently.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_runner():
    spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "scripts" / "execute_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WIDGET_CELLS = [
    "import numpy as np\nimport ipywidgets as widgets\nimport matplotlib.pyplot as plt\n"
    "from mpat_nb.widgets import choice_viewer, frame_scrubber, show_image",
    "frame_scrubber(lambda t: np.full((40, 60, 3), 20 * t, np.uint8), 5)",
    "choice_viewer(lambda o: np.full((40, 60, 3), 30 * len(o), np.uint8), ['a', 'bb', 'ccc'])",
    "slider = widgets.IntSlider(value=1, min=0, max=3)\n"
    "widgets.VBox([slider, widgets.interactive_output(lambda k: (show_image(np.full((8, 8, 3), 60 * k, np.uint8)), "
    "plt.show()), {'k': slider})])",
]


def test_widget_cells_run_headless_without_waiting_out_the_timeout(tmp_path):
    runner = load_runner()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(WIDGET_CELLS[0])] + [
        nbformat.v4.new_code_cell(cell) for _ in range(4) for cell in WIDGET_CELLS[1:]]
    path = tmp_path / "widgets.ipynb"
    nbformat.write(notebook, path)
    result = runner.execute_notebook(path, timeout=60, out=tmp_path / "executed" / "widgets.ipynb")
    executed = nbformat.read(tmp_path / "executed" / "widgets.ipynb", as_version=4)
    for cell in executed.cells[1:]:                     # every widget cell displayed its widget
        data = [output.get("data", {}) for output in cell.outputs]
        assert any("application/vnd.jupyter.widget-view+json" in d for d in data), cell.source
    assert len(result["cell_seconds"]) == len(notebook.cells)


def test_a_cell_that_takes_the_whole_timeout_is_an_error(tmp_path):
    runner = load_runner()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(3)")]
    path = tmp_path / "slow.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(Exception, match="timed out|whole timeout"):
        runner.execute_notebook(path, timeout=1)


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_notebook_runs_headless_in_fast_mode(path, monkeypatch):
    """The check nbval does not make: every notebook executed by nbclient (as nbconvert or a publishing pipeline
    runs it), fast mode, no cell erroring or waiting out its timeout."""
    monkeypatch.setenv("MPAT_NB_FAST", "1")                  # the kernel inherits the environment
    monkeypatch.setenv("MPLBACKEND", "Agg")
    result = load_runner().execute_notebook(path, timeout=600)
    assert len(result["cell_seconds"]) == len(result["notebook"].cells)
