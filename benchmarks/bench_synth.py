"""How fast does the synthetic generator feed training? Frames per second on ONE core.

For each preset, renders a few clips with 6 people at 256 x 256 twice: rendering only
(``sensor_effects=False``: no noise, no JPEG) and full (noise + JPEG re-encoding). Planning a clip
(trajectories, poses, background canvas) is included, amortised over its frames.

Reports wall-clock frames/s and frames per CPU second of this process, each the best of
``--repeats`` runs (the usual defence against a machine that is busy with other work now and then).
The goal is >= 300 frames/s on ``mixed`` with 6 people.

    python benchmarks/bench_synth.py [--clips 2] [--frames 30] [--repeats 3] [--size 256] [--people 6]
                                     [--presets easy,mixed]
"""

from __future__ import annotations

import os

# One core: set before numpy / OpenCV start their thread pools.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout without installing
from mpat_nb.data.synth import PRESETS, SyntheticVideoSource  # noqa: E402


def measure(preset: str, clips: int, frames: int, size: int, people: int, sensor_effects: bool,
            repeats: int = 1) -> tuple[float, float]:
    """(wall frames/s, CPU frames/s), each the best of ``repeats`` runs over ``clips`` clips of ``frames`` frames."""
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for seed in range(clips):
            source = SyntheticVideoSource(preset, seed=1000 + seed, num_frames=frames, size=(size, size),
                                          num_people=(people, people), sensor_effects=sensor_effects)
            for _ in source:
                pass
        total = clips * frames
        best_wall = max(best_wall, total / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, total / (time.process_time() - cpu))
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2, help="clips per measurement (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best counts (default 3)")
    parser.add_argument("--frames", type=int, default=30, help="frames per clip (default 30)")
    parser.add_argument("--size", type=int, default=256, help="square frame size in pixels (default 256)")
    parser.add_argument("--people", type=int, default=6, help="people per clip (default 6)")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets (default: all)")
    args = parser.parse_args()

    cv2.setNumThreads(1)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores visible, "
          f"load average {os.getloadavg()[0]:.2f} (1 min)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, opencv {cv2.__version__}, "
          f"cv2 threads {cv2.getNumThreads()}")
    probe = min(timeit.repeat("a + 1", "import numpy as np; a = np.zeros(10)", number=20000, repeat=5)) / 20000
    print(f"speed probe: one tiny numpy operation takes {probe * 1e6:.2f} us (an idle modern core: about 0.5-0.8 us; "
          f"more means a busy or slow machine)")
    print(f"{args.clips} clips x {args.frames} frames, {args.size} x {args.size}, {args.people} people, one core, "
          f"best of {args.repeats}\n")
    for preset in args.presets.split(","):   # warm-up: caches (noise banks, pattern tiles), and bad names fail early
        measure(preset, 1, 3, args.size, args.people, True)
    print(f"{'preset':14s} {'render only':>22s} {'full (noise + JPEG)':>22s}")
    print(f"{'':14s} {'wall':>10s} {'cpu':>11s} {'wall':>10s} {'cpu':>11s}   (frames/s)")
    for preset in args.presets.split(","):
        render_wall, render_cpu = measure(preset, args.clips, args.frames, args.size, args.people, False, args.repeats)
        full_wall, full_cpu = measure(preset, args.clips, args.frames, args.size, args.people, True, args.repeats)
        print(f"{preset:14s} {render_wall:10.0f} {render_cpu:11.0f} {full_wall:10.0f} {full_cpu:11.0f}")


if __name__ == "__main__":
    main()
