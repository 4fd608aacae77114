"""The committed notebooks match their percent-format sources and store no outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_notebooks_are_generated_from_their_sources():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_notebook_has_badges_setup_and_no_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        assert "colab-badge.svg" in "".join(cells[0]["source"]) and "mybinder.org" in "".join(cells[0]["source"])
        setup = "".join(cells[1]["source"])
        assert "google.colab" in setup and "--no-deps" in setup, f"{path.name}: setup cell must install only in Colab"
        for cell in cells:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"{path.name} stores outputs"


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: What Colab already has and a setup cell must never reinstall (a reinstall breaks the running kernel).
COLAB_PREINSTALLED = ("torch", "numpy", "matplotlib", "ipywidgets", "ipython")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_setup_cell_runs_outside_colab_without_network(path, monkeypatch):
    """Execute every notebook's setup cell here, with sockets refused: outside Colab it installs nothing."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access attempted by a setup cell")

    # matplotlib's first import on a new machine builds its font cache by running fc-list (subprocess.run): do
    # that here, before the guard below refuses every command, so that the test checks the setup cell alone
    import matplotlib.font_manager  # noqa: F401 - imported for the font cache it builds
    import matplotlib.pyplot  # noqa: F401

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"{path.name}: setup cell ran {a} outside Colab"))
    setup = "".join(json.loads(path.read_text())["cells"][1]["source"])
    code = "\n".join(line for line in setup.splitlines() if not line.lstrip().startswith(("%", "!")))
    namespace: dict = {}
    import torch

    grad_enabled = torch.is_grad_enabled()        # a setup cell may switch autograd off (06 does): restore it
    try:
        exec(compile(code, f"{path.name}-setup", "exec"), namespace)  # noqa: S102 - our own notebook's cell
    finally:
        torch.set_grad_enabled(grad_enabled)
    assert "FAST" in namespace and "device" in namespace
    pip_lines = [line for line in setup.splitlines() if "pip" in line and "install" in line]
    for line in pip_lines:
        words = line.replace('"', " ").replace("'", " ").replace(",", " ").split()
        assert not any(w.lower() in COLAB_PREINSTALLED for w in words), f"{path.name} reinstalls: {line}"
