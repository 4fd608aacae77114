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
from _results import fenced, write_results

from mpat_nb.ablation import ablation_decoders, ablation_table, grouping_ablation, pgg_separation
from mpat_nb.checkpoints import load_spatialnet, shipped_checkpoint
from mpat_nb.data.synth import validation_clips
from mpat_nb.utils import atomic_write_text

#: PGG iterations R whose embedding separation --save measures.
SEPARATION_ITERATIONS = (0, 1, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="SpatialNet checkpoint; default: the shipped spatialnet_tiny.pt")
    parser.add_argument("--tuned", default=None,
                        help="PGG-fine-tuned checkpoint; default: the shipped spatialnet_tiny_pgg.pt")
    parser.add_argument("--presets", nargs="+", default=["crowd", "interaction", "mixed"])
    parser.add_argument("--clips", type=int, default=4, help="validation clips per preset; default: 4")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip; default: 8")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"],
                        help="generator seeds to use; default: val (use train with --offset to tune decoding)")
    parser.add_argument("--offset", type=int, default=0, help="first seed of the split to use; default: 0")
    parser.add_argument("--sie-bandwidth", type=float, default=None,
                        help="delta_SIE (fraction of the output width) for the SIE rows of both models; default: "
                             "each checkpoint's tuned value (scripts/tune_decoding.py)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--save", action="store_true",
                        help="write results/ablation_pgg.json and .md (the README's table; the shipped models)")
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {"base": load_spatialnet(args.base or shipped_checkpoint("spatialnet_tiny.pt")),
              "PGG-tuned": load_spatialnet(args.tuned or shipped_checkpoint("spatialnet_tiny_pgg.pt"))}
    changes = {} if args.sie_bandwidth is None else {"sie_bandwidth": args.sie_bandwidth}
    decoders = {name: ablation_decoders(model, **changes) for name, model in models.items()}
    rows = []
    for name, model in models.items():
        rows += grouping_ablation({name: model}, args.presets, decoders=decoders[name], num_clips=args.clips,
                                  num_frames=args.frames, split=args.split, offset=args.offset)
    bandwidths = ", ".join(f"{name} {decoders[name]['KE+SIE'].sie_bandwidth * 128:g}/128" for name in models)
    caption = (f"{args.split} seeds from offset {args.offset}, {args.clips} clips x {args.frames} frames per preset, "
               f"delta_SIE ({bandwidths} of the width); mAP and grouping purity / completeness in %")
    table = ablation_table(rows)
    print(caption)
    print(table)
    if args.json:
        atomic_write_text(args.json, json.dumps([row.__dict__ for row in rows], indent=1) + "\n")
    if args.save:
        # Between / within-person separation of the KE + SIE embeddings after R PGG iterations (notebook 03)
        clips = validation_clips("crowd", args.clips, args.frames, 256)
        separation = {name: {r: s.__dict__ for r, s in pgg_separation(model, clips, decoders[name]["KE+SIE+PGG"],
                                                                      iterations=SEPARATION_ITERATIONS).items()}
                      for name, model in models.items()}
        lines = ["| model | " + " | ".join(f"R = {r}: within, between, ratio" for r in SEPARATION_ITERATIONS) + " |",
                 "|---|" + "---|" * len(SEPARATION_ITERATIONS)]
        lines += [f"| {name} | " + " | ".join(f"{s['within']:.3f}, {s['between']:.3f}, **{s['ratio']:.2f}**"
                                              for s in by_r.values()) + " |" for name, by_r in separation.items()]
        write_results("ablation_pgg", {"grouping": [row.__dict__ for row in rows], "separation": separation},
                      f"{caption}\n\n{fenced(table)}\n\nBetween / within-person separation of the detected "
                      f"joints' KE + SIE embeddings after R PGG iterations (`mpat_nb.ablation.pgg_separation`, "
                      f"{args.clips} `crowd` validation clips x {args.frames} frames, bandwidth units; ratio > 1: "
                      f"people stay apart):\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
