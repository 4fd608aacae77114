"""Measure a TemporalNet checkpoint: HE re-identification and TVF end-point error on validation clips.

    python scripts/measure_temporalnet.py                                   # shipped temporalnet_tiny.pt
    python scripts/measure_temporalnet.py --checkpoint runs/temporalnet/last.pt --clips 8 --json tvf.json

Prints two Markdown tables (mpat_nb.temporal_metrics):
1. HE rank-1 re-identification of the people of frame t among those of frame t - d (d = 1, 5, 20 within a shot
   of ``mixed`` clips) and across shot changes (``shot_change`` clips), against a colour-histogram baseline on
   the same ground-truth boxes;
2. TVF mean end-point error (output pixels) of the forward and backward fields on ``fast_motion`` and
   ``camera_motion`` clips, against the zero-motion baseline (every person stays at its centre) given the
   ground-truth centre and given SpatialNet's own SVF.
The frozen SpatialNet is the one the checkpoint records unless --spatial-checkpoint is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from _results import write_results

from mpat_nb.checkpoints import load_temporal_pair, shipped_checkpoint
from mpat_nb.temporal_metrics import (
    REID_GAPS,
    TVF_PRESETS,
    format_reid_table,
    format_tvf_table,
    measure_reid,
    measure_tvf,
)
from mpat_nb.utils import atomic_write_text, get_device


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None,
                        help="TemporalNet checkpoint; default: the shipped temporalnet_tiny.pt")
    parser.add_argument("--spatial-checkpoint", default=None, help="frozen SpatialNet; default: the one recorded")
    parser.add_argument("--clips", type=int, default=8, help="validation clips per preset; default: 8")
    parser.add_argument("--frames", type=int, default=30, help="frames per re-identification clip; default: 30")
    parser.add_argument("--gaps", type=int, nargs="+", default=list(REID_GAPS), help="frame gaps; default: 1 5 20")
    parser.add_argument("--tvf-frames", type=int, default=10, help="frames per TVF clip; default: 10")
    parser.add_argument("--tvf-presets", nargs="+", default=list(TVF_PRESETS))
    parser.add_argument("--size", type=int, default=256, help="rendered frame side; default: 256")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu; default: the best available")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--save", action="store_true",
                        help="write results/temporalnet.json and .md (the README's tables; the shipped models)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = get_device(args.device)
    checkpoint = args.checkpoint or shipped_checkpoint("temporalnet_tiny.pt")
    spatial, temporal = load_temporal_pair(checkpoint, spatial_checkpoint=args.spatial_checkpoint, device=device)
    started = time.perf_counter()
    reid = measure_reid(spatial, temporal, num_clips=args.clips, num_frames=args.frames, gaps=args.gaps,
                        render_size=args.size)
    tvf = measure_tvf(spatial, temporal, presets=args.tvf_presets, num_clips=args.clips, num_frames=args.tvf_frames,
                      render_size=args.size)
    caption = (f"TemporalNet {Path(checkpoint).name} ({temporal.config.name}) on SpatialNet {spatial.config.name}; "
               f"validation seeds, {args.clips} clips per preset, ground-truth person boxes")
    reid_title = f"HE re-identification ({args.frames}-frame clips): rank-1 of the people of frame t among frame t - d"
    tvf_title = f"TVF mean end-point error, pairs (t - 1, t) of {args.tvf_frames}-frame clips"
    tables = (f"{reid_title}\n\n{format_reid_table(reid)}\n\n"
              f"{tvf_title}\n\n{format_tvf_table(tvf, spatial.config.output_size)}")
    print(f"{caption}; {time.perf_counter() - started:.0f} s on {device}\n")
    print(tables)
    rows = {"reid": [{**dataclasses.asdict(r), "rank1_he": r.rank1_he, "rank1_histogram": r.rank1_histogram,
                      "chance": r.chance} for r in reid],
            "tvf": [{**dataclasses.asdict(r), "epe_tvf": r.epe_tvf, "epe_zero_motion": r.epe_zero_motion,
                     "epe_svf": r.epe_svf} for r in tvf]}
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.save:
        write_results("temporalnet", rows, f"{caption}.\n\n{tables}")

if __name__ == "__main__":
    main()
