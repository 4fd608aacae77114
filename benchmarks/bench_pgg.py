"""Pose-Guided Grouping cost: time and peak memory of one PGG pass for M points per image, batched module
against a straightforward per-image loop, measured in the same run.

    python benchmarks/bench_pgg.py [--points 50 200 800 3200] [--batch 8] [--repeats 3] [--device cpu]

Two passes per size: ``infer`` (forward under no_grad, as in decoding) and ``train`` (forward + backward of a
scalar, as in fine-tuning). The loop reference is what one writes first: for each image, keep its valid points,
build the full M x M kernel from pairwise differences, R mean-shift steps (autograd through it all).

Peak memory: on CUDA, torch.cuda.max_memory_allocated() minus the memory allocated before the pass (tensor
bytes). On CPU there is no allocator counter; we use a resource-based measure (Linux): after the timing runs
(which also page in the library code the pass needs), reset the kernel's peak-RSS mark (write "5" to
/proc/self/clear_refs), run the pass once and report VmHWM minus the RSS before it. glibc's mmap threshold is
fixed at 64 KiB (mallopt) for this phase, so every tensor above it gets its own mapping and leaves the resident
set when freed; the number is then close to the peak of live tensor bytes. Below ~1 MiB it is noise. Timings
are all taken first, with the default allocator.

Every ratio is measured in one run (these machines are noisy); nothing here is a test.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import sys

import torch
from _timing import (  # benchmarks/_timing.py (this script's folder)
    add_machine_arguments,
    best_time,
    machine_from_arguments,
)

from mpat_nb.models.pgg import PoseGuidedGrouping

OUTPUT_WIDTH = 128


def make_points(batch: int, points: int, device: torch.device, seed: int = 0):
    """Realistic-looking inputs: people of 15 points around random centres; 60-100% of each image valid."""
    generator = torch.Generator().manual_seed(seed)
    people = max(1, points // 15)
    centres = torch.rand(batch, people, 2, generator=generator) * OUTPUT_WIDTH
    tags = torch.randn(batch, people, 1, generator=generator) * 2
    owner = torch.randint(0, people, (batch, points), generator=generator)
    sie = centres.gather(1, owner[..., None].expand(-1, -1, 2)) + 3 * torch.randn(batch, points, 2, generator=generator)
    ke = tags.gather(1, owner[..., None]) + 0.3 * torch.randn(batch, points, 1, generator=generator)
    counts = (points * (0.6 + 0.4 * torch.rand(batch, generator=generator))).long().clamp(min=1)
    valid = torch.arange(points)[None] < counts[:, None]
    return ke.to(device), sie.to(device), valid.to(device)


def loop_pgg(ke, sie, valid, iterations=1, ke_bandwidth=1.0, sie_bandwidth=6.0 / 128):
    """The straightforward version: a Python loop over images, a full difference-based kernel per image."""
    ke_out, sie_out = [], []
    for b in range(ke.shape[0]):
        keep = valid[b]
        e = torch.cat([ke[b, keep] / ke_bandwidth, sie[b, keep] / (sie_bandwidth * OUTPUT_WIDTH)], dim=1)
        for _ in range(iterations):
            kernel = torch.exp(-0.5 * ((e[:, None] - e[None]) ** 2).sum(-1))     # (M_b, M_b)
            e = kernel @ e / kernel.sum(1, keepdim=True)
        ke_out.append(e[:, :1] * ke_bandwidth)
        sie_out.append(e[:, 1:] * sie_bandwidth * OUTPUT_WIDTH)
    return ke_out, sie_out


def one_pass(implementation: str, mode: str, inputs, pgg: PoseGuidedGrouping):
    """A closure running one pass of ``implementation`` ("batched" | "loop") in ``mode`` ("infer" | "train")."""
    ke, sie, valid = inputs

    def run():
        if mode == "infer":
            with torch.no_grad():
                _forward(implementation, ke, sie, valid, pgg)
        else:
            ke_in, sie_in = ke.clone().requires_grad_(True), sie.clone().requires_grad_(True)
            out_ke, out_sie = _forward(implementation, ke_in, sie_in, valid, pgg)
            (sum(t.square().sum() for t in out_ke) + sum(t.sum() for t in out_sie)).backward()
        if ke.device.type == "cuda":
            torch.cuda.synchronize()

    return run


def _forward(implementation, ke, sie, valid, pgg):
    if implementation == "batched":
        out = pgg(ke, sie, valid, OUTPUT_WIDTH)
        return [out.ke], [out.sie]
    return loop_pgg(ke, sie, valid, pgg.iterations)


def cuda_peak(function, device) -> float:
    """Peak extra CUDA tensor bytes of one call."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    function()
    return torch.cuda.max_memory_allocated(device) - before


def cpu_peak(function) -> float:
    """Peak growth of the resident set during one call (Linux; see the module docstring), or NaN."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)                                        # give the cached free heap back first
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")                                  # reset VmHWM (peak RSS) to the current RSS
    except OSError:
        return float("nan")
    before = _status_bytes("VmRSS")
    function()
    return _status_bytes("VmHWM") - before


def _status_bytes(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return float(line.split()[1]) * 1024               # reported in kB
    return float("nan")


def _glibc():
    """glibc with its mmap threshold fixed at 64 KiB (mallopt M_MMAP_THRESHOLD = -3), or None if not glibc.

    Called only for the memory phase: the fixed threshold makes every big tensor a fresh mapping (page faults
    on each allocation), which would slow the timing phase down.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)
        return libc
    except (OSError, AttributeError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", nargs="+", type=int, default=[50, 200, 800, 3200])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=1)
    add_machine_arguments(parser)
    args = parser.parse_args()
    device = machine_from_arguments(args)
    pgg = PoseGuidedGrouping(iterations=args.iterations).to(device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (load {load:.1f}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"batch {args.batch} images, R = {args.iterations}, chunk_entries = {pgg.chunk_entries}; peak memory: "
          + ("CUDA max_memory_allocated" if device.type == "cuda" else "peak RSS growth (VmHWM after a reset)"))
    print(f"{'M':>5s} {'pass':5s} {'batched':>10s} {'loop':>10s} {'loop/bat':>9s} "
          f"{'peak bat':>10s} {'peak loop':>10s} {'loop/bat':>9s}")
    # Phase 1 timings with the default allocator, phase 2 memory (it changes glibc's settings for good).
    cases = [(points, mode) for points in args.points for mode in ("infer", "train")]
    inputs = {points: make_points(args.batch, points, device) for points in args.points}
    times = {(points, mode, impl): best_time(one_pass(impl, mode, inputs[points], pgg), args.repeats)
             for points, mode in cases for impl in ("batched", "loop")}
    peak = (lambda run: cuda_peak(run, device)) if device.type == "cuda" else cpu_peak
    peaks = {(points, mode, impl): peak(one_pass(impl, mode, inputs[points], pgg))
             for points, mode in cases for impl in ("batched", "loop")}
    for points, mode in cases:
        t_bat, t_loop = times[points, mode, "batched"], times[points, mode, "loop"]
        p_bat, p_loop = peaks[points, mode, "batched"], peaks[points, mode, "loop"]
        print(f"{points:5d} {mode:5s} {_ms(t_bat)} {_ms(t_loop)} {t_loop / t_bat:8.2f}x "
              f"{_mib(p_bat)} {_mib(p_loop)} {_ratio(p_loop, p_bat)}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f}ms"


def _mib(size: float) -> str:
    return f"{size / 2**20:7.1f}MiB"


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:8.2f}x" if denominator > 2**20 and numerator > 2**20 else f"{'(noise)':>9s}"


if __name__ == "__main__":
    main()
