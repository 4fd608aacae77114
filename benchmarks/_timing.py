"""Timing helpers shared by the benchmark scripts (run them as ``python benchmarks/<script>.py``).

These machines are noisy (shared cores): figures worth comparing are ratios of variants timed in the same run.
:func:`best_times` interleaves the variants (A, B, C, A, B, C, ...) so that a burst of load from another
process hits all of them, and keeps each variant's best time.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Callable, Mapping

import torch

#: Clocks by name: ``wall`` (what a user waits) or ``cpu`` (this process's CPU seconds, all threads; with one
#: thread it leaves out the time other processes hold the core, the steadier figure on a shared machine).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def best_time(function: Callable[[], object], repeats: int = 3, min_seconds: float = 0.5,
              setup: Callable[[], object] | None = None, clock: str = "wall") -> float:
    """Best time (seconds) of at least ``repeats`` calls (more, up to ``min_seconds`` in all, for fast calls)
    after one warm-up call. ``setup``, if given, runs untimed before every call."""
    return best_times({"only": function}, repeats, min_seconds, setup, clock)["only"]


def best_times(functions: Mapping[str, Callable[[], object]], repeats: int = 3, min_seconds: float = 0.5,
               setup: Callable[[], object] | None = None, clock: str = "wall") -> dict[str, float]:
    """Best time (seconds, ``clock`` of :data:`CLOCKS`) of each function, the functions called in turn (interleaved), each warmed up once.

    Every function gets at least ``repeats`` timed calls, more while the total is under ``min_seconds`` (at most
    1000 rounds).
    """
    now = CLOCKS[clock]
    times: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():
        if setup is not None:
            setup()
        function()
    rounds, spent = 0, 0.0
    while rounds < repeats or (spent < min_seconds and rounds < 1000):
        for name, function in functions.items():
            if setup is not None:
                setup()
            start = now()
            function()
            elapsed = now() - start
            times[name].append(elapsed)
            spent += elapsed
        rounds += 1
    return {name: min(values) for name, values in times.items()}


def machine_line(device: torch.device | str = "cpu") -> str:
    """One line naming the machine: architecture, cores, load, torch version and threads, device."""
    device = torch.device(device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    name = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores (load {load:.1f}), torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), device {device}{name}")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that wall times count it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def add_machine_arguments(parser, repeats: int = 3) -> None:
    """The options every benchmark shares: --repeats, --threads, --device."""
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def machine_from_arguments(args) -> torch.device:
    """Apply --threads and return the --device of :func:`add_machine_arguments`."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)
