"""Tune a SpatialNet checkpoint's delta_SIE on training seeds and store it in the checkpoint.

    python scripts/tune_decoding.py --checkpoint runs/tiny/last.pt [--grouping KE+SIE+PGG] [--write]

Decodes crowd and interaction clips from the generator's *training* seeds (offset 500 000: never the validation
clips that the README reports) with each delta_SIE of ``mpat_nb.ablation.SIE_BANDWIDTH_GRID``, prints mAP and
grouping purity / completeness per value, and with ``--write`` stores the best in the checkpoint's "decode" entry
(``mpat_nb.checkpoints.store_decode_tuning``). ``decode``, ``track --pgg``, the ablation, the notebooks and the
scripts then read that value (``mpat_nb.decode.tuned_decode_config``).
"""

from __future__ import annotations

import argparse

import torch

from mpat_nb.ablation import ABLATION_GROUPINGS, ablation_table, tune_sie_bandwidth
from mpat_nb.checkpoints import load_spatialnet, store_decode_tuning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="SpatialNet checkpoint to tune")
    parser.add_argument("--grouping", default="KE+SIE", choices=[g for g in ABLATION_GROUPINGS if "SIE" in g])
    parser.add_argument("--presets", nargs="+", default=["crowd", "interaction"])
    parser.add_argument("--clips", type=int, default=3, help="training clips per preset; default: 3")
    parser.add_argument("--frames", type=int, default=6, help="frames per clip; default: 6")
    parser.add_argument("--write", action="store_true", help="store the best delta_SIE in the checkpoint")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_spatialnet(args.checkpoint)
    best, rows = tune_sie_bandwidth(model, args.grouping, args.presets, num_clips=args.clips, num_frames=args.frames)
    print(f"training seeds from offset 500000, {args.clips} clips x {args.frames} frames per preset; mAP and "
          f"grouping purity / completeness in %")
    print(ablation_table(rows))
    print(f"best delta_SIE for {args.grouping}: {best * 128:g}/128 = {best:.6g} of the output width")
    if args.write:
        store_decode_tuning(args.checkpoint, {"sie_bandwidth": best})
        print(f"stored in {args.checkpoint} (decode entry)")


if __name__ == "__main__":
    main()
