"""SpatialNet speed on this machine: forward per frame and train step per batch for each preset that
fits, and the ratio of data-generation time to train-step time (data must not be the bottleneck).

    python benchmarks/bench_spatialnet.py [--presets tiny small] [--batch 8] [--repeats 3]

Every ratio is measured in one run (these machines are noisy); nothing here is a test.
"""

from __future__ import annotations

import argparse

import torch

from mpat_nb.config import get_spatial_config
from mpat_nb.data.datasets import SyntheticSpatialDataset, collate_samples
from mpat_nb.losses import spatial_loss
from mpat_nb.models.spatialnet import SpatialNet, count_parameters

from _timing import best_time, machine_line, sync, add_machine_arguments, machine_from_arguments  # benchmarks/_timing.py (this script's folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--batch", type=int, default=8)
    add_machine_arguments(parser)
    args = parser.parse_args()
    device = machine_from_arguments(args)
    print(machine_line(device))
    print(f"{'preset':8s} {'params':>8s} {'input':>6s} {'fwd/frame':>10s} {'step/batch':>11s} {'img/s train':>12s} "
          f"{'data/batch':>11s} {'data/step':>10s}")
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

        def train_step():
            model.train()
            loss = spatial_loss(model(images), targets)["total"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sync(device)

        forward_time = best_time(forward, args.repeats)
        step_time = best_time(train_step, args.repeats)
        print(f"{name:8s} {count_parameters(model) / 1e6:7.2f}M {size:6d} {forward_time * 1e3:8.1f}ms "
              f"{step_time * 1e3:9.1f}ms {args.batch / step_time:12.1f} {data_time * 1e3:9.1f}ms {data_time / step_time:10.2f}")


if __name__ == "__main__":
    main()
