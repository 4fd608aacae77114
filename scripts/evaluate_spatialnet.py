"""Per-joint AP of a SpatialNet checkpoint on the generator's validation clips (the weights README's tables).

    python scripts/evaluate_spatialnet.py --checkpoint mpat_nb/weights/spatialnet_tiny.pt [--presets mixed crowd]
        [--clips 8] [--frames 8] [--grouping "KE only (AE)"]

Decodes ``--clips`` validation clips of ``--frames`` frames per preset with one of the ablation's groupings (the
checkpoint's tuned bandwidths, ``mpat_nb.decode.tuned_decode_config``) and prints the PoseTrack evaluator's
per-joint AP table and the grouping purity / completeness.
"""

from __future__ import annotations

import argparse

import torch

from mpat_nb.ablation import ablation_decoders
from mpat_nb.checkpoints import load_spatialnet
from mpat_nb.data.synth import validation_clips
from mpat_nb.decode import predict_videos
from mpat_nb.evaluate import evaluate
from mpat_nb.grouping_quality import grouping_quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--presets", nargs="+", default=["mixed"])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--grouping", default="KE only (AE)",
                        choices=["KE only (AE)", "SIE only", "KE+SIE", "KE+SIE+PGG"])
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_spatialnet(args.checkpoint)
    decode_config = ablation_decoders(model)[args.grouping]
    for preset in args.presets:
        clips = validation_clips(preset, args.clips, args.frames, 256)
        predicted = predict_videos(model, clips, decode_config)
        gt = [clip.video for clip in clips]
        print(f"{preset}: {args.clips} validation clips x {args.frames} frames, {args.grouping} "
              f"(delta_SIE {decode_config.sie_bandwidth * 128:g}/128), {grouping_quality(gt, predicted)}")
        print(evaluate(gt, predicted).table())


if __name__ == "__main__":
    main()
