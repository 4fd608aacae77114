"""TemporalNet speed: pair train step per batch, forward per frame pair, and the frozen SpatialNet beside them.

    python benchmarks/bench_temporalnet.py [--presets tiny] [--batch 4] [--repeats 3] [--device cpu]

Per preset (the TemporalNet preset and the SpatialNet preset it reads, randomly initialised):

* ``spatial/batch``: the frozen SpatialNet on both frames of B pairs (``frozen_spatial_outputs``, no_grad);
* ``step/batch``: one TemporalNet train step on those outputs (forward, ``temporal_loss``, backward, Adam);
* ``fwd/pair``: TemporalNet forward on one pair under inference mode (TIE + HE of both frames), what the
  tracker adds per frame on top of SpatialNet (it runs HE on one frame only, so a little less);
* ``data/batch``: rendering and encoding B synthetic pairs; ``data/step`` > 1 means data would be the bottleneck.

Every ratio is measured in one run (these machines are noisy); nothing here is a test.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from _timing import (  # benchmarks/_timing.py (this script's folder)
    add_machine_arguments,
    best_time,
    machine_from_arguments,
    machine_line,
    sync,
)

from mpat_nb.config import get_temporal_config
from mpat_nb.data.pairs import SyntheticPairDataset, collate_pairs
from mpat_nb.losses import temporal_loss
from mpat_nb.models.spatialnet import SpatialNet, count_parameters
from mpat_nb.models.temporalnet import TemporalNet, frozen_spatial_outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny"])
    parser.add_argument("--batch", type=int, default=4, help="frame pairs per train step")
    add_machine_arguments(parser)
    args = parser.parse_args()
    device = machine_from_arguments(args)
    print(machine_line(device))
    print(f"{'preset':7s} {'params':>7s} {'spatial/batch':>14s} {'step/batch':>11s} {'fwd/pair':>9s} "
          f"{'data/batch':>11s} {'data/step':>10s} {'spatial/step':>13s}")
    for name in args.presets:
        config = get_temporal_config(name)
        torch.manual_seed(0)
        spatial = SpatialNet(config.spatial_preset).to(device).eval()
        model = TemporalNet(config).to(device)
        size = spatial.config
        dataset = SyntheticPairDataset(size.input_size, size.output_size, length=args.batch * (args.repeats + 2))
        counter = iter(range(10**9))

        def load_batch():
            return collate_pairs([dataset[next(counter) % len(dataset)] for _ in range(args.batch)])

        data_time = best_time(load_batch, args.repeats, min_seconds=0)
        batch = load_batch().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

        def spatial_forward():
            outputs = frozen_spatial_outputs(spatial, batch.images_previous, batch.images_current)
            sync(device)
            return outputs

        previous, current = spatial_forward()

        def train_step():
            model.train()
            output = model(previous, current, batch.boxes_previous, batch.boxes_current, batch.images_previous,
                           batch.images_current)
            loss = temporal_loss(output, batch.identities("previous"), batch.identities("current"), batch.tvf)["total"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sync(device)

        one_previous, one_current = (_first(previous), _first(current))

        def forward_pair():
            model.eval()
            with torch.inference_mode():
                model(one_previous, one_current, batch.boxes_previous[:1], batch.boxes_current[:1],
                      batch.images_previous[:1], batch.images_current[:1])
            sync(device)

        spatial_time = best_time(spatial_forward, args.repeats)
        step_time = best_time(train_step, args.repeats)
        forward_time = best_time(forward_pair, args.repeats)
        print(f"{name:7s} {count_parameters(model) / 1e6:6.2f}M {spatial_time * 1e3:12.1f}ms {step_time * 1e3:9.1f}ms "
              f"{forward_time * 1e3:7.1f}ms {data_time * 1e3:9.1f}ms {data_time / step_time:10.2f} "
              f"{spatial_time / step_time:13.2f}")


def _first(output):
    """The first image of a batched SpatialNetOutput (TemporalNet reads features, heatmaps and svf)."""
    return dataclasses.replace(output, **{f.name: getattr(output, f.name)[:1] for f in dataclasses.fields(output)})


if __name__ == "__main__":
    main()
