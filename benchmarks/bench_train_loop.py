"""The whole SpatialNet training loop (data, step, logging) in images/s, for precision x frames per clip x
thread / worker splits, against the bare bf16 + channels-last train step.

    python benchmarks/bench_train_loop.py [--steps 40] [--batch 8]

Each variant is one short ``train_spatialnet`` run (tiny preset, synthetic ``mixed`` data, no augmentation,
validation switched off), setup included, in a fresh process so that the thread count can differ; ``vs first``
is the ratio to the first row (fp32, one clip per image: the recipe before bf16 and clip reuse). The bare step
is timed on one fixed batch. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

#: (precision, frames per clip, torch threads, data workers)
VARIANTS = (("fp32", 1, 2, 0), ("bf16", 1, 2, 0), ("bf16", 4, 2, 0), ("bf16", 4, 1, 1), ("bf16", 4, 2, 1))


def run_variant(precision: str, frames_per_clip: int, workers: int, steps: int, batch: int) -> float:
    """Images/s of one short training run in this process."""
    import mpat_nb.train as train

    train.validation_map = lambda *args, **kwargs: 0.0                 # the loop only: no validation decode
    config = train.SpatialTrainConfig(preset="tiny", steps=steps, batch_size=batch, lr=2e-3, augment=False,
                                      val_every=0, val_clips=1, val_frames=1, precision=precision,
                                      num_workers=workers, frames_per_clip=frames_per_clip, log_every=10**6)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        train.train_spatialnet(config, folder, progress=False)
    return steps * batch / (time.perf_counter() - started)


def bare_step(batch: int, repeats: int = 5) -> float:
    """Images/s of the bare bf16 + channels-last train step on one batch."""
    import torch

    from mpat_nb.config import get_spatial_config
    from mpat_nb.data.datasets import SyntheticSpatialDataset, collate_samples
    from mpat_nb.losses import spatial_loss
    from mpat_nb.models.spatialnet import SpatialNet
    from mpat_nb.precision import resolve_precision
    from mpat_nb.train import as_float32

    config = get_spatial_config("tiny")
    precision = resolve_precision("bf16", "cpu")
    model = precision.model(SpatialNet(config)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    data = SyntheticSpatialDataset(config.input_size, config.output_size, length=batch, augment=None)
    images, targets = collate_samples([data[i] for i in range(batch)])
    images = precision.images(images)
    best = float("inf")
    for _ in range(repeats + 1):
        started = time.perf_counter()
        with precision.autocast():
            loss = spatial_loss(as_float32(model(images)), targets)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        best = min(best, time.perf_counter() - started)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)     # internal: one run, JSON out
    args = parser.parse_args()
    if args.variant:
        precision, frames, workers = json.loads(args.variant)
        print(json.dumps(run_variant(precision, frames, workers, args.steps, args.batch)))
        return
    print(f"tiny SpatialNet, batch {args.batch}, {args.steps} steps per run, setup included")
    print(f"{'precision':9s} {'frames/clip':>11s} {'threads + workers':>17s} {'images/s':>9s} {'vs first':>9s}")
    first, best = None, 0.0
    for precision, frames, threads, workers in VARIANTS:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        output = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--batch", str(args.batch),
                                 "--variant", json.dumps([precision, frames, workers])], env=env, check=True,
                                capture_output=True, text=True).stdout
        rate = float(output.strip().splitlines()[-1])
        first, best = first or rate, max(best, rate)
        print(f"{precision:9s} {frames:11d} {f'{threads} + {workers}':>17s} {rate:9.1f} {rate / first:8.2f}x")
    bare = bare_step(args.batch)
    print(f"bare bf16 + channels-last step: {bare:.1f} images/s; the fastest loop reaches {best / bare:.2f}x of it")


if __name__ == "__main__":
    main()
