"""SpatialNet speed on this machine: forward per frame and train step per batch for each preset that
fits, the ratio of data-generation time to train-step time (data must not be the bottleneck), and the train step
in float32 against bf16 autocast + channels-last (``mpat_nb.precision``; on a CPU without native bf16 the bf16
row is emulated and slow, which is why ``--precision auto`` picks fp32 there).

    python benchmarks/bench_spatialnet.py [--presets tiny small] [--batch 8] [--repeats 3]

Every ratio is measured in one run (these machines are noisy); nothing here is a test.
"""

from __future__ import annotations

import argparse

import torch
from _timing import (  # benchmarks/_timing.py (this script's folder)
    add_machine_arguments,
    best_time,
    machine_from_arguments,
    machine_line,
    sync,
)

from mpat_nb.config import get_spatial_config
from mpat_nb.data.datasets import SyntheticSpatialDataset, collate_samples
from mpat_nb.losses import spatial_loss
from mpat_nb.models.spatialnet import SpatialNet, count_parameters
from mpat_nb.precision import cpu_has_native_bf16, resolve_precision
from mpat_nb.train import as_float32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--batch", type=int, default=8)
    add_machine_arguments(parser)
    args = parser.parse_args()
    device = machine_from_arguments(args)
    print(machine_line(device) + f"; native bf16 on the CPU: {cpu_has_native_bf16()}")
    print(f"{'preset':8s} {'params':>8s} {'input':>6s} {'fwd/frame':>10s} {'step/batch':>11s} {'img/s train':>12s} "
          f"{'data/batch':>11s} {'data/step':>10s}")
    steps, mixed_steps = {}, {}
    for name in args.presets:
        config = get_spatial_config(name)
        model = SpatialNet(config).to(device)
        size = config.input_size
        dataset = SyntheticSpatialDataset(size, config.output_size, length=args.batch * (args.repeats + 2))
        counter = iter(range(len(dataset)))

        def load_batch():
            return collate_samples([dataset[next(counter) % len(dataset)] for _ in range(args.batch)])

        data_time = best_time(load_batch, args.repeats, min_seconds=0)
        images, targets = load_batch()
        images, targets = images.to(device), targets.to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)

        def forward():
            with torch.inference_mode():
                model.eval()
                model(images[:1])
            sync(device)

        def train_step(precision=resolve_precision("fp32", device)):
            model.train()
            with precision.autocast():
                output = as_float32(model(precision.images(images)))
            loss = spatial_loss(output, targets)["total"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sync(device)

        forward_time = best_time(forward, args.repeats)
        step_time = best_time(train_step, args.repeats)
        print(f"{name:8s} {count_parameters(model) / 1e6:7.2f}M {size:6d} {forward_time * 1e3:8.1f}ms "
              f"{step_time * 1e3:9.1f}ms {args.batch / step_time:12.1f} {data_time * 1e3:9.1f}ms {data_time / step_time:10.2f}")
        steps[name] = step_time
        bf16 = resolve_precision("bf16", device)
        bf16.model(model)
        mixed_steps[name] = best_time(lambda: train_step(bf16), args.repeats)
    print(f"\ntrain step, batch {args.batch}: float32 against bf16 autocast + channels-last")
    print(f"{'preset':8s} {'fp32':>10s} {'bf16+CL':>10s} {'fp32/bf16+CL':>13s}")
    for name in args.presets:
        print(f"{name:8s} {steps[name] * 1e3:8.1f}ms {mixed_steps[name] * 1e3:8.1f}ms {steps[name] / mixed_steps[name]:12.2f}x")


if __name__ == "__main__":
    main()
