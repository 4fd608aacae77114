"""Tracker association per frame for 2, 8, 32, 128 people: where the time goes, and how it grows.

    python benchmarks/bench_tracking.py [--people 2 8 32 128] [--repeats 5] [--dim 384] [--grid 128]

Synthetic detections (no network): N people with random poses on a ``grid`` x ``grid`` output grid, random
Human Embeddings of ``dim`` dimensions (the tiny HE has 384) and random TVF fields. Three frames: all N people,
then 10 % of them hidden, then all again in a new order (the hidden ones come back: births, or re-found lost
tracks with memory). Timed: ``tracker.step`` on the third frame, after the first two (untimed).

Per step, split into: ``cost`` (the distance matrices: he_distances, tie_distances, oks, box_iou), ``lsa``
(scipy's linear_sum_assignment, the Hungarian step) and ``other`` (stacking detections, births, bookkeeping,
the greedy baseline's sorted scan). The growth exponent from N = 32 to 128 is log(t_128 / t_32) / log 4: 2 for
pairwise costs, up to 3 for the Hungarian step. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict

import numpy as np
from _timing import machine_line  # benchmarks/_timing.py (this script's folder)

import mpat_nb.tracking.trackers as trackers_module
from mpat_nb.data.annotations import Person
from mpat_nb.skeleton import NUM_JOINTS
from mpat_nb.tracking import Detection, FrameObservation, TrackerConfig, make_tracker

TRACKERS = ("HE+TIE", "HE+TIE+memory", "greedy OKS", "Hungarian IoU")
#: Functions of the trackers module timed as "cost" and as "lsa" (wrapped in place while the benchmark runs).
PARTS = {"cost": ("he_distances", "tie_distances", "oks", "box_iou"), "lsa": ("linear_sum_assignment",)}


def make_frames(people: int, dim: int, grid: int, seed: int = 0) -> list[FrameObservation]:
    """Three observations of ``people`` people (see the module docstring)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(10, grid - 10, (people, 2))
    shapes = rng.normal(0, 4, (people, NUM_JOINTS, 2))                       # each person's joints around its centre
    embeddings = rng.normal(size=(people, dim))
    hidden = rng.permutation(people)[: people // 10]
    frames = []
    for index in range(3):
        centres = centres + rng.normal(0, 1, centres.shape)                   # people move a little
        visible = [p for p in rng.permutation(people) if index != 1 or p not in hidden]
        detections = [_detection(centres[p], shapes[p], embeddings[p] + 0.1 * rng.normal(size=dim), rng, grid)
                      for p in visible]
        fields = [rng.normal(0, 2, (2, grid, grid)) for _ in range(2)] if index else [None, None]
        frames.append(FrameObservation(index, detections, *fields))
    return frames


def _detection(centre, shape, embedding, rng, grid) -> Detection:
    joints = np.zeros((NUM_JOINTS, 3))
    joints[:, :2] = np.clip(centre + shape, 0, grid - 1)
    joints[:, 2] = rng.uniform(0.2, 1.0, NUM_JOINTS) * (rng.random(NUM_JOINTS) > 0.1)   # ~10 % absent
    present = joints[joints[:, 2] > 0, :2] if (joints[:, 2] > 0).any() else joints[:, :2]
    box = np.concatenate([present.min(0) - 2, present.max(0) + 2])
    return Detection(joints, centre.copy(), box, Person(np.zeros((17, 3))), embedding)


def time_step(tracker, frames, repeats: int, min_seconds: float = 0.3) -> dict[str, float]:
    """Best total time of ``tracker.step(frames[2])`` after frames 0 and 1, with its split into parts (seconds)."""
    spent = defaultdict(float)
    originals = {name: getattr(trackers_module, name) for names in PARTS.values() for name in names}

    def timed(part, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - start
        return wrapper

    for part, names in PARTS.items():
        for name in names:
            setattr(trackers_module, name, timed(part, originals[name]))
    try:
        best, rounds, total_time = None, 0, 0.0
        while rounds < repeats or (total_time < min_seconds and rounds < 1000):
            tracker.reset()
            tracker.step(frames[0])
            tracker.step(frames[1])
            spent.clear()
            start = time.perf_counter()
            tracker.step(frames[2])
            total = time.perf_counter() - start
            total_time, rounds = total_time + total, rounds + 1
            if best is None or total < best["total"]:
                best = {"total": total, "cost": spent["cost"], "lsa": spent["lsa"]}
    finally:
        for name, function in originals.items():
            setattr(trackers_module, name, function)
    best["other"] = best["total"] - best["cost"] - best["lsa"]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", nargs="+", type=int, default=[2, 8, 32, 128])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dim", type=int, default=384, help="Human Embedding size (tiny 384, paper 3072)")
    parser.add_argument("--grid", type=int, default=128, help="output grid side (tiny 64, paper 128)")
    args = parser.parse_args()
    print(machine_line("cpu"))
    print(f"association of one frame (tracker.step), HE {args.dim}-d, {args.grid} x {args.grid} grid; best of "
          f">= {args.repeats}")
    print(f"{'tracker':14s} {'N':>4s} {'ms/frame':>9s} {'cost ms':>8s} {'lsa ms':>8s} {'other ms':>9s} "
          f"{'cost %':>7s} {'lsa %':>6s}")
    frames = {n: make_frames(n, args.dim, args.grid) for n in args.people}
    growth = {}
    for name in TRACKERS:
        results = {n: time_step(make_tracker(name, TrackerConfig()), frames[n], args.repeats) for n in args.people}
        for n, parts in results.items():
            print(f"{name:14s} {n:4d} {parts['total'] * 1e3:9.3f} {parts['cost'] * 1e3:8.3f} {parts['lsa'] * 1e3:8.3f} "
                  f"{parts['other'] * 1e3:9.3f} {100 * parts['cost'] / parts['total']:6.1f}% "
                  f"{100 * parts['lsa'] / parts['total']:5.1f}%")
        low, high = sorted(args.people)[-2:] if len(args.people) > 1 else (0, 0)
        if low < high:                            # the two largest sizes: fixed per-step costs fade there
            growth[name] = {part: _exponent(results[low][part], results[high][part], high / low)
                            for part in ("total", "cost", "lsa", "other")}
    if growth:
        low, high = sorted(args.people)[-2:]
        print(f"\ngrowth exponent from N = {low} to {high} (time ~ N^a; pairwise costs: 2, "
              "Hungarian: <= 3)")
        print(f"{'tracker':14s} {'total':>6s} {'cost':>6s} {'lsa':>6s} {'other':>6s}")
        for name, exponents in growth.items():
            print(f"{name:14s} " + " ".join(f"{exponents[part]:6.2f}" for part in ("total", "cost", "lsa", "other")))


def _exponent(low: float, high: float, factor: float) -> float:
    return math.log(high / low) / math.log(factor) if low > 0 and high > 0 else float("nan")


if __name__ == "__main__":
    main()
