"""The whole tracking pipeline per frame (networks + decoding + association) with the shipped tiny models, for
each inference precision of ``mpat-nb track --precision``, and how far bf16 moves the decoded poses.

    python benchmarks/bench_pipeline.py [--frames 30] [--preset mixed] [--seed 7] [--threads N]

Variants: ``fp32`` (plain eager float32: the default of ``track`` and ``demo``), ``fp32 fast`` (BN folding +
channels-last, ``InferenceOptions()``) and ``bf16`` (``--precision bf16``: bf16 autocast on top). Each variant
tracks the same clip with the HE + TIE tracker; frames/s is the clip's frames over the wall time of the loop
(after one warm-up frame). Agreement with fp32: the share of fp32's decoded joints (score >= 0.2) that the
other variant finds within 1 pixel of the 64 x 64 output grid, and the median distance in grid pixels. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _timing import add_machine_arguments, machine_from_arguments, machine_line  # benchmarks/_timing.py

from mpat_nb.checkpoints import load_temporal_pair, shipped_checkpoint
from mpat_nb.data.synth import generate_clip
from mpat_nb.inference import InferenceOptions, inference_options
from mpat_nb.tracking.config import TrackerConfig
from mpat_nb.tracking.pipeline import NetworkObserver, track_step
from mpat_nb.tracking.trackers import make_tracker


def track(observer: NetworkObserver, frames) -> tuple[float, list]:
    """(frames/s over the clip after a warm-up frame, decoded people per frame)."""
    observer.observe(frames[0])
    observer.reset()
    tracker, config = make_tracker("HE+TIE"), TrackerConfig()
    people = []
    started = time.perf_counter()
    for image in frames:
        observation = observer.observe(image)
        track_step(tracker, observation, config.min_joint_score)
        people.append([d.joints for d in observation.detections])
    return len(frames) / (time.perf_counter() - started), people


def agreement(reference: list, other: list, min_score: float = 0.2) -> tuple[float, float]:
    """(share of the reference's joints found by ``other`` within 1 px, median distance) over all frames."""
    distances = []
    for ref_people, other_people in zip(reference, other):
        for joints in ref_people:
            for k, (x, y, score) in enumerate(joints):
                if score < min_score:
                    continue
                same_joint = np.stack([p[k] for p in other_people]) if other_people else np.zeros((0, 3))
                same_joint = same_joint[same_joint[:, 2] >= min_score]
                distances.append(np.hypot(*(same_joint[:, :2] - (x, y)).T).min() if len(same_joint) else np.inf)
    distances = np.asarray(distances)
    return float((distances <= 1.0).mean()) if distances.size else float("nan"), float(np.median(distances))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--preset", default="mixed")
    parser.add_argument("--seed", type=int, default=7)
    add_machine_arguments(parser)
    args = parser.parse_args()
    device = machine_from_arguments(args)
    print(machine_line(device))
    frames = list(generate_clip(preset=args.preset, seed=args.seed, num_frames=args.frames).frames)
    spatial, temporal = load_temporal_pair(shipped_checkpoint("temporalnet_tiny.pt"), device=device)
    variants = {"fp32": None, "fp32 fast": InferenceOptions(), "bf16": inference_options("bf16", device)}
    results = {name: track(NetworkObserver(spatial, temporal, inference=options), frames)
               for name, options in variants.items()}
    print(f"{args.frames} '{args.preset}' frames (seed {args.seed}), HE + TIE tracker, shipped tiny models")
    print(f"{'variant':10s} {'frames/s':>9s} {'vs fp32':>8s} {'joints within 1 px of fp32':>27s} {'median px':>10s}")
    base = results["fp32"][0]
    for name, (fps, people) in results.items():
        share, median = agreement(results["fp32"][1], people)
        print(f"{name:10s} {fps:9.1f} {fps / base:7.2f}x {100 * share:26.1f}% {median:10.3f}")


if __name__ == "__main__":
    main()
