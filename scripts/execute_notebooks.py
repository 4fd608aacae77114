"""Execute notebooks headless (nbclient, as ``jupyter nbconvert --execute`` does) without the widget stall.

    python scripts/execute_notebooks.py notebooks/*.ipynb                 # full size, executed copies in executed/
    MPAT_NB_FAST=1 python scripts/execute_notebooks.py --check notebooks/05_tracking_gpu.ipynb

Why a runner of our own. Executed by plain nbclient (``jupyter nbconvert --execute``), a cell that displays
ipywidgets (our frame scrubbers, choice viewers and ``interactive_output`` panels) now and then waits out the whole
per-cell timeout with an idle kernel and then goes on without an error. The kernel has answered: its
``execute_reply`` sits on the shell socket, but the client's asyncio poll of that socket
(``jupyter_client``'s async channel, ``await socket.poll(timeout)`` under pyzmq's asyncio integration) misses the
wake-up while the widgets' burst of IOPub comm messages is being read, and only looks again when its timeout runs
out. Reproduced with nbclient 0.11, jupyter_client 8.10, pyzmq 27.3 and ipywidgets 8.1 on 12 small widget cells: 1 to
2 cells per run waited the full timeout (15 s); upstream reports: jupyter/nbclient#312, jupyter/nbconvert#2029.
nbval reads the sockets with blocking calls and does not stall.

The workaround here (:func:`slice_shell_reads`): the shell channel is polled in short slices (:data:`POLL_SLICE_S`)
up to the same deadline, so a reply that has arrived is read within a slice (on the same 12 cells: no stall in 6
runs, against 1-2 stalled cells in most runs without it); and a cell that still takes its whole timeout is reported
as an error instead of passing silently. Prints the wall time of each notebook (the README's notebooks table).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
from nbclient import NotebookClient

#: Longest single wait on the shell socket; the overall deadline stays the cell timeout.
POLL_SLICE_S = 0.25


def slice_shell_reads(kernel_client) -> None:
    """Make ``kernel_client``'s async shell-channel ``get_msg(timeout)`` poll in slices of :data:`POLL_SLICE_S` up
    to the same deadline (raising ``Empty`` at it, as before), so that a reply already on the socket is read."""
    read = kernel_client.shell_channel.get_msg

    async def sliced_get_msg(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await read(timeout=min(POLL_SLICE_S, left))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    kernel_client.shell_channel.get_msg = sliced_get_msg


def execute_notebook(path: str | Path, *, timeout: int = 600, out: str | Path | None = None,
                     kernel_name: str = "python3") -> dict:
    """Run every cell of the notebook at ``path`` in a fresh kernel (working directory: the notebook's folder).

    Returns ``{"seconds", "cell_seconds", "notebook"}``. Raises ``RuntimeError`` naming the cell if one takes the
    whole ``timeout`` (a stall or a cell too slow for it), and nbclient's ``CellExecutionError`` if a cell fails.
    ``out``: also write the executed notebook there.
    """
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent)}})
    started, cell_seconds = time.perf_counter(), []
    with client.setup_kernel():
        slice_shell_reads(client.kc)
        for index, cell in enumerate(notebook.cells):
            begun = time.perf_counter()
            client.execute_cell(cell, index)
            cell_seconds.append(time.perf_counter() - begun)
            if cell.cell_type == "code" and cell_seconds[-1] >= timeout:
                raise RuntimeError(f"{path.name}: cell {index} took the whole timeout of {timeout} s; a headless stall "
                                   "or a cell slower than the timeout (raise --timeout)")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, out)
    return {"seconds": time.perf_counter() - started, "cell_seconds": cell_seconds, "notebook": notebook}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell; default: 600")
    parser.add_argument("--out", type=Path, default=Path("executed"),
                        help="folder for the executed copies; default: executed/")
    parser.add_argument("--check", action="store_true", help="run only; write no executed copy")
    args = parser.parse_args(argv)
    mode = "fast" if os.environ.get("MPAT_NB_FAST") == "1" else "full"
    for path in args.notebooks:
        result = execute_notebook(path, timeout=args.timeout, out=None if args.check else args.out / path.name)
        slowest = max(result["cell_seconds"], default=0.0)
        print(f"{path.name}: {result['seconds']:.0f} s ({mode} mode; slowest cell {slowest:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
