"""Per-joint AP of SpatialNet checkpoints on the generator's validation clips (the SpatialNet issue's targets).

    python scripts/evaluate_spatialnet.py --checkpoint mpat_nb/weights/spatialnet_tiny.pt [--presets mixed crowd]
        [--clips 8] [--frames 8] [--grouping "KE only (AE)"]
    python scripts/evaluate_spatialnet.py --save     # results/spatialnet.{json,md}: the shipped models

Decodes ``--clips`` validation clips of ``--frames`` frames per preset with one of the ablation's groupings (the
checkpoint's tuned bandwidths, ``mpat_nb.decode.tuned_decode_config``) and prints the PoseTrack evaluator's
per-joint AP table and the grouping purity / completeness. ``--save`` measures the two shipped recipes on
``mixed`` and ``crowd``: the base network with associative-embedding grouping, and the PGG-tuned network with
KE + SIE refined by PGG.
"""

from __future__ import annotations

import argparse

import torch
from _results import write_results

from mpat_nb.ablation import ablation_decoders
from mpat_nb.checkpoints import load_spatialnet, shipped_checkpoint
from mpat_nb.data.synth import validation_clips
from mpat_nb.decode import predict_videos
from mpat_nb.evaluate import evaluate
from mpat_nb.grouping_quality import grouping_quality

#: The shipped recipes ``--save`` measures: (checkpoint, grouping).
SHIPPED_RECIPES = (("spatialnet_tiny.pt", "KE only (AE)"), ("spatialnet_tiny_pgg.pt", "KE+SIE+PGG"))
GROUPS = ("Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="SpatialNet checkpoint (not with --save)")
    parser.add_argument("--presets", nargs="+", default=None, help="default: mixed (with --save: mixed crowd)")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--grouping", default="KE only (AE)",
                        choices=["KE only (AE)", "SIE only", "KE+SIE", "KE+SIE+PGG"])
    parser.add_argument("--save", action="store_true",
                        help="measure the shipped recipes and write results/spatialnet.json and .md")
    args = parser.parse_args()
    if args.save == (args.checkpoint is not None):
        parser.error("give --checkpoint (one model) or --save (the shipped recipes), not both or neither")
    presets = args.presets or (["mixed", "crowd"] if args.save else ["mixed"])
    recipes = ([(shipped_checkpoint(name), grouping) for name, grouping in SHIPPED_RECIPES] if args.save
               else [(args.checkpoint, args.grouping)])
    rows = []
    for checkpoint, grouping in recipes:
        torch.manual_seed(0)
        model = load_spatialnet(checkpoint)
        decode_config = ablation_decoders(model)[grouping]
        for preset in presets:
            clips = validation_clips(preset, args.clips, args.frames, 256)
            predicted = predict_videos(model, clips, decode_config)
            gt = [clip.video for clip in clips]
            quality = grouping_quality(gt, predicted)
            result = evaluate(gt, predicted)
            print(f"{preset}: {args.clips} validation clips x {args.frames} frames, {checkpoint}, {grouping} "
                  f"(delta_SIE {decode_config.sie_bandwidth * 128:g}/128), {quality}")
            print(result.table())
            rows.append({"checkpoint": str(getattr(checkpoint, "name", checkpoint)), "grouping": grouping,
                         "preset": preset, "sie_bandwidth": decode_config.sie_bandwidth,
                         "ap": result.group_values("ap"), "purity": quality.purity,
                         "completeness": quality.completeness})
    if args.save:
        lines = ["| checkpoint | grouping | preset | " + " | ".join(GROUPS) + " | purity | completeness |",
                 "|---|---|---|" + "---:|" * (len(GROUPS) + 2)]
        lines += [f"| `{r['checkpoint']}` | {r['grouping']} | {r['preset']} | "
                  + " | ".join(f"{r['ap'][g]:.1f}" for g in GROUPS)
                  + f" | {100 * r['purity']:.1f} | {100 * r['completeness']:.1f} |" for r in rows]
        write_results("spatialnet", rows, f"PoseTrack AP (%) on {args.clips} validation clips x {args.frames} "
                      f"frames per preset; grouping purity and completeness in %.\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
