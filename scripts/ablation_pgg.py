"""The PGG ablation (the paper's Fig. 1 claims) on the generator's validation seeds.

    python scripts/ablation_pgg.py                       # shipped tiny checkpoints, crowd / interaction / mixed
    python scripts/ablation_pgg.py --clips 8 --frames 8 --base runs/tiny/last.pt --tuned runs/tiny_pgg/last.pt

Prints total mAP, grouping purity and completeness for KE only, SIE only, KE+SIE and KE+SIE+PGG, for the
SpatialNet trained with the four SpatialNet losses ("base") and the same network after the PGG fine-tuning
stage ("PGG-tuned"); every row of one model decodes the same detections.
"""

from __future__ import annotations

import argparse
import json

import torch

from mpat_nb.ablation import ablation_table, grouping_ablation
from mpat_nb.checkpoints import shipped_checkpoint
from mpat_nb.train import load_spatialnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="SpatialNet checkpoint; default: the shipped spatialnet_tiny.pt")
    parser.add_argument("--tuned", default=None,
                        help="PGG-fine-tuned checkpoint; default: the shipped spatialnet_tiny_pgg.pt")
    parser.add_argument("--presets", nargs="+", default=["crowd", "interaction", "mixed"])
    parser.add_argument("--clips", type=int, default=4, help="validation clips per preset; default: 4")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip; default: 8")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {"base": load_spatialnet(args.base or shipped_checkpoint("spatialnet_tiny.pt")),
              "PGG-tuned": load_spatialnet(args.tuned or shipped_checkpoint("spatialnet_tiny_pgg.pt"))}
    rows = grouping_ablation(models, args.presets, num_clips=args.clips, num_frames=args.frames)
    print(f"validation seeds, {args.clips} clips x {args.frames} frames per preset; mAP and grouping purity / "
          f"completeness in %")
    print(ablation_table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([row.__dict__ for row in rows], handle, indent=1)


if __name__ == "__main__":
    main()
