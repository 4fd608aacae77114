"""Profile one tiny SpatialNet train step with torch.profiler: the top ops by self CPU time, and the phases.

    python benchmarks/profile_train_step.py [--preset tiny] [--batch 8] [--top 5]

One step = data (render + augment + encode B synthetic samples, collate) -> forward -> ``spatial_loss`` ->
backward -> Adam, each phase marked with ``record_function``, after two warm-up steps. Printed: the phases'
wall times and the ``--top`` ops by self CPU time (the ``train_step.*`` rows are the phase markers).
"""

from __future__ import annotations

import argparse

import torch
from _timing import machine_line  # benchmarks/_timing.py (this script's folder)
from torch.profiler import ProfilerActivity, profile, record_function

from mpat_nb.config import get_spatial_config
from mpat_nb.data.datasets import SyntheticSpatialDataset, collate_samples
from mpat_nb.losses import spatial_loss
from mpat_nb.models.spatialnet import SpatialNet

PHASES = ("data", "forward", "loss", "backward", "optimizer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    print(machine_line("cpu"))
    config = get_spatial_config(args.preset)
    torch.manual_seed(0)
    model = SpatialNet(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    dataset = SyntheticSpatialDataset(config.input_size, config.output_size, length=10 * args.batch)
    batches = iter(range(10))

    def step() -> None:
        start = next(batches) * args.batch
        with record_function("train_step.data"):
            images, targets = collate_samples([dataset[start + i] for i in range(args.batch)])
        with record_function("train_step.forward"):
            output = model(images)
        with record_function("train_step.loss"):
            loss = spatial_loss(output, targets)["total"]
        with record_function("train_step.backward"):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        with record_function("train_step.optimizer"):
            optimizer.step()

    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    averages = profiler.key_averages()
    phases = {event.key.split(".")[1]: event.cpu_time_total for event in averages if event.key.startswith("train_step.")}
    total = sum(phases.values())
    print(f"one {args.preset} train step, batch {args.batch}: {total / 1e3:.0f} ms under the profiler")
    print("  " + ", ".join(f"{name} {phases.get(name, 0) / 1e3:.0f} ms ({100 * phases.get(name, 0) / total:.0f}%)"
                           for name in PHASES))
    ops = sorted((e for e in averages if not e.key.startswith("train_step.")), key=lambda e: -e.self_cpu_time_total)
    print(f"top {args.top} ops by self CPU time:")
    print(f"  {'op':40s} {'self ms':>8s} {'share':>6s} {'calls':>6s}")
    for event in ops[:args.top]:
        print(f"  {event.key[:40]:40s} {event.self_cpu_time_total / 1e3:8.1f} "
              f"{100 * event.self_cpu_time_total / total:5.1f}% {event.count:6d}")


if __name__ == "__main__":
    main()
