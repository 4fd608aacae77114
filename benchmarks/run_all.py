"""Run every benchmark and write benchmarks/RESULTS.md (one command).

    python benchmarks/run_all.py [--full] [--notebooks] [--only NAME ...] [--out benchmarks/RESULTS.md]

Quick settings by default (a few minutes on a 2-core CPU); ``--full`` uses each script's own defaults (the
presets that fit, more repeats). Also timed: ``mpat-nb demo`` into a temporary folder and, with
``--notebooks``, each notebook's fast-mode nbval run as CI runs it (minutes). Each script runs in its own
process and prints its own ratios, measured in that run; RESULTS.md collects a summary table (wall time per
benchmark) and every output, headed by the machine's core count, torch version, device, date and load.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

#: label -> (script, what it measures, quick arguments, full arguments, extra environment); each runs as
#: ``python benchmarks/<script>.py ARGS``.
BENCHMARKS: dict[str, tuple[str, str, list[str], list[str], dict[str, str]]] = {
    "bench_spatialnet": ("bench_spatialnet", "SpatialNet forward per frame, train step per batch, data / step",
                         ["--presets", "tiny", "--batch", "4", "--repeats", "2"], [], {}),
    "bench_inference": ("bench_inference", "SpatialNet forward: eager vs inference_mode, channels-last, fused BN "
                        "(CUDA: autocast, cudnn.benchmark, compile)", ["--presets", "tiny", "--repeats", "5"],
                        ["--repeats", "10"], {}),
    "bench_inference 1 thread": ("bench_inference", "the same on one thread, CPU-time clock (steadier when other "
                                 "jobs share the cores)", ["--presets", "tiny", "--repeats", "5", "--threads", "1",
                                                           "--clock", "cpu"],
                                 ["--repeats", "10", "--threads", "1", "--clock", "cpu"], {"OMP_NUM_THREADS": "1"}),
    "bench_pgg": ("bench_pgg", "PGG pass for growing M: batched vs per-image loop, time and peak memory",
                  ["--points", "50", "200", "800", "--batch", "4", "--repeats", "2"], [], {}),
    "bench_temporalnet": ("bench_temporalnet", "TemporalNet pair train step, forward per pair, frozen SpatialNet, "
                          "data / step", ["--batch", "2", "--repeats", "2"], [], {}),
    "bench_tracking": ("bench_tracking", "tracker association per frame for 2-128 people: cost vs Hungarian, growth",
                       ["--repeats", "3"], ["--repeats", "10"], {}),
    "bench_train_loop": ("bench_train_loop", "the whole SpatialNet training loop (data + step) in images/s: fp32 vs "
                         "bf16 + channels-last, clip reuse, thread / worker splits, against the bare step",
                         ["--steps", "20"], ["--steps", "40"], {}),
    "bench_pipeline": ("bench_pipeline", "whole tracking pipeline (networks + decoding + association) frames/s with "
                       "the shipped tiny models: fp32, fp32 fast paths, bf16; bf16's pose agreement",
                       ["--frames", "20"], ["--frames", "40"], {}),
    "bench_synth": ("bench_synth", "synthetic frames/s on one core",
                    ["--clips", "1", "--frames", "10", "--repeats", "1", "--presets", "easy,mixed"], [], {}),
    "profile_train_step": ("profile_train_step", "torch.profiler of one tiny SpatialNet train step: phases, top 5 ops",
                           ["--batch", "4"], [], {}),
}
NOTE = ("These figures come from a shared 2-core machine: other jobs were running (see the load averages), so "
        "absolute times are noisy - compare the ratios, each measured inside one run. With two torch threads and "
        "other processes holding the cores, wall-clock times can swing several-fold (a thread team waits for its "
        "slowest thread); the one-thread CPU-clock rows are the steadier comparison.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="each script's default (larger) settings")
    parser.add_argument("--notebooks", action="store_true", help="also time every notebook's fast-mode nbval run")
    parser.add_argument("--no-demo", action="store_true", help="skip timing mpat-nb demo")
    parser.add_argument("--only", nargs="+", choices=sorted({entry[0] for entry in BENCHMARKS.values()}),
                        help="run only these scripts")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per command")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()

    header = _header()
    print("\n".join(header), flush=True)
    rows, sections = [], []
    for label, (script, what, quick, full, env) in BENCHMARKS.items():
        if args.only and script not in args.only:
            continue
        command = [PY, f"benchmarks/{script}.py", *(full if args.full else quick)]
        shown = [f"{key}={value}" for key, value in env.items()] + ["python", *command[1:]]
        rows.append(_run(label, what, command, args.timeout, sections, shown=shown, env=env))
    if not args.no_demo:
        with tempfile.TemporaryDirectory() as folder:
            command = [PY, "-m", "mpat_nb", "demo", "--out", str(Path(folder) / "demo")]
            rows.append(_run("mpat-nb demo", "the whole demo: clip, networks, two trackers, evaluation, videos",
                             command, args.timeout, sections, shown=["mpat-nb", "demo", "--out", "<tmp>"]))
    if args.notebooks:
        fast = {"MPAT_NB_FAST": "1", "MPLBACKEND": "Agg"}
        for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
            command = [PY, "-m", "pytest", str(notebook.relative_to(ROOT)), "--nbval-lax", "--nbval-current-env",
                       "--nbval-sanitize-with", "notebooks/sanitize.cfg", "--nbval-cell-timeout=600", "-q",
                       "-p", "no:cacheprovider"]
            rows.append(_run(notebook.stem, "notebook, fast mode (nbval, as CI)", command, args.timeout, sections,
                             env=fast))
    table = ["| benchmark | measures | command | wall s | status |", "|---|---|---|---|---|", *rows]
    text = "\n".join(["# Benchmark results", "", *header, "", NOTE, "", *table, "", *sections])
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


def _header() -> list[str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    threads = os.environ.get("OMP_NUM_THREADS", f"unset (torch uses {torch.get_num_threads()})")
    return [f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
            f"- machine: {platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / "
            f"{load[2]:.1f} (1 / 5 / 15 min) at the start",
            f"- torch {torch.__version__}, device {device}, OMP_NUM_THREADS {threads}, python "
            f"{platform.python_version()}"]


def _run(name: str, what: str, command: list[str], timeout: float, sections: list[str], *,
         shown: list[str] | None = None, env: dict[str, str] | None = None) -> str:
    """Run one command from the repository root; append its output section; return its summary-table row."""
    shown_text = " ".join(shown or ["python", *command[1:]])
    print(f"\n$ {shown_text}", flush=True)
    started = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **(env or {})})
        output, status = result.stdout + result.stderr, "ok" if result.returncode == 0 else f"exit {result.returncode}"
    except subprocess.TimeoutExpired as error:
        partial = error.stdout or ""
        output = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        status = f"timeout {timeout:.0f} s"
    seconds = time.perf_counter() - started
    output = "\n".join(line for line in output.splitlines() if _kept(line))
    print(output, flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    sections += [f"## {name}", "", f"`{shown_text}` ({seconds:.0f} s, {status}, load {load:.1f} after)", "",
                 "```", output.strip() or "(no output)", "```", ""]
    return f"| {name} | {what} | `{shown_text}` | {seconds:.0f} | {status} |"


def _kept(line: str) -> bool:
    """Drop progress bars (tqdm) and the profiler's start / stop / GPU-probe log lines from the saved output."""
    return not (re.search(r"\d+%\|", line) or ("Profiler" in line or "DeviceProperties" in line)
                and line.startswith(("USDT:", "ERROR:", "WARNING:")))


if __name__ == "__main__":
    main()
