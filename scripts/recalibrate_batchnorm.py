"""Re-estimate a SpatialNet checkpoint's BatchNorm statistics on its training stream and write them back.

    python scripts/recalibrate_batchnorm.py --checkpoint runs/tiny/last.pt [--images 256]

For checkpoints saved without the training loop's BatchNorm recalibration (``SpatialTrainConfig.batchnorm_images``):
builds the run's training data from the checkpoint's recorded ``train_config``, re-estimates the running mean and
variance of every BatchNorm on ``--images`` items spread over the stream (``mpat_nb.train.recalibrate_batchnorm``),
prints the validation mAP before and after (the run's validation clips and decoding) and rewrites the checkpoint
atomically with the new statistics (every other entry unchanged).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from mpat_nb.checkpoints import load_checkpoint, load_spatialnet
from mpat_nb.config import get_spatial_config
from mpat_nb.data.synth import validation_clips
from mpat_nb.train import (
    SpatialTrainConfig,
    batchnorm_batches,
    collate_images,
    recalibrate_batchnorm,
    training_data,
    validation_decode_config,
    validation_map,
)
from mpat_nb.utils import atomic_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    state = load_checkpoint(args.checkpoint, kind="spatialnet")
    known = {field.name for field in dataclasses.fields(SpatialTrainConfig)}
    config = SpatialTrainConfig(**{k: v for k, v in (state.get("train_config") or {}).items() if k in known})
    model = load_spatialnet(args.checkpoint)
    dataset, _ = training_data(config, get_spatial_config(state["preset"]))
    clips = validation_clips(config.synth_preset, config.val_clips, config.val_frames, config.render_size)
    decode = validation_decode_config(config, model)
    before = validation_map(model, clips, decode)
    batches = batchnorm_batches(dataset, args.images, min(config.batch_size, 8), collate_images, torch.device("cpu"))
    recalibrate_batchnorm(model, batches)
    after = validation_map(model.eval(), clips, decode)
    print(f"validation mAP ({config.val_clips} '{config.synth_preset}' clips x {config.val_frames} frames): "
          f"{before:.1f} with the saved BatchNorm statistics, {after:.1f} re-estimated on {args.images} training items")
    state["model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state.setdefault("metrics", {})["val_map"] = after
    with atomic_path(args.checkpoint) as tmp:
        torch.save(state, tmp)
    print(f"wrote {args.checkpoint}")


if __name__ == "__main__":
    main()
