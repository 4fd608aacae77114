"""Training TemporalNet (HE + TIE branches) on frame pairs with SpatialNet frozen: one entry point for the
Python API and the command line (``mpat-nb train temporal``).

``train_temporalnet(TemporalTrainConfig(...), out_dir)`` follows the supplementary (2.2): pairs (I^{t-d}, I^t)
with d in 1..5 (a range-5 window) from synthetic clips, the same augmentation applied to both frames
(:class:`mpat_nb.data.pairs.SyntheticPairDataset`), SpatialNet fixed, Adam with lr 2e-4, batch 16. The frozen
SpatialNet is loaded from a checkpoint (default: the shipped one of the preset's ``spatial_preset``) and run
once per pair under ``torch.no_grad()`` in eval mode; only TemporalNet's parameters reach the optimiser.
Loss: ``losses.temporal_loss`` (batch-hard triplet on HE over the proposals of the batch, masked L2 on both
temporal vector fields). Proposals are the ground-truth person boxes.

The learning rate stays 2e-4 (``lr_schedule="constant"``); the drop, cosine and one-cycle schedules of
SpatialNet (:func:`mpat_nb.train.learning_rate_schedule`) can be chosen instead. The training loop is
SpatialNet's (:func:`mpat_nb.train.run_training`), hence as there: a progress bar, periodic validation on
fixed validation pairs (within-pair HE rank-1, TVF end-point errors against the zero-motion baseline,
:func:`mpat_nb.temporal_metrics.pair_metrics`), atomic checkpoints that resume exactly (pair i is a pure
function of (seed, i)), a wall-clock budget, and a NaN or infinite loss stops training with a TrainingError
naming the step, leaving the last good checkpoint intact. Each checkpoint records which SpatialNet it was
trained on (path and a fingerprint of its weights): a TemporalNet reads that network's features and is
meaningless on another one.

Under torchrun (:mod:`mpat_nb.distributed`, as for SpatialNet) ``batch_size`` is the global batch of pairs, each
process reads its slice, only TemporalNet is wrapped in DistributedDataParallel (the frozen SpatialNet runs on
every process), and process 0 alone prints, validates and writes checkpoints. L_TVF, pooled over the labelled
pixels, is re-weighted so its gradient is the global batch's; the batch-hard triplet loss mines its hardest
positive and negative within each process's pairs (as re-id training on several GPUs usually does), so with P
processes it sees batch / P pairs per mining pool [I].
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from mpat_nb import distributed
from mpat_nb.checkpoints import (
    load_checkpoint,
    load_frozen_spatialnet,
    load_weights,
    spatial_checkpoint_path,
    weights_fingerprint,
)
from mpat_nb.config import MAX_FRAME_GAP, TEMPORAL_LOSS_WEIGHTS, get_temporal_config
from mpat_nb.data.augment import AugmentConfig
from mpat_nb.data.pairs import PairBatch, SyntheticPairDataset, collate_pairs, tvf_on_short_gaps
from mpat_nb.losses import temporal_loss
from mpat_nb.models.temporalnet import TemporalNet, TemporalNetOutput, frozen_spatial_outputs
from mpat_nb.precision import resolve_precision
from mpat_nb.temporal_metrics import pair_metrics
from mpat_nb.train import TrainingStage, as_float32, check_resumable, check_run_settings, run_training, start_process
from mpat_nb.utils import InputError


@dataclass
class TemporalTrainConfig:
    """Everything that defines a TemporalNet training run (saved in every checkpoint)."""

    preset: str = "tiny"                    # TemporalNet preset (mpat_nb.config.TEMPORAL_PRESETS)
    spatial_checkpoint: str | None = None   # the frozen SpatialNet; None: shipped spatialnet_<spatial_preset>.pt
    resnet50_weights: str | None = None     # torchvision ResNet-50 state dict initialising HE (paper preset);
                                            # None: from scratch (ImageNet weights cannot be downloaded here)
    init_checkpoint: str | None = None      # start from this TemporalNet's weights (not a resume), e.g. to go on
                                            # training on a retrained SpatialNet's features
    steps: int = 3000                       # optimiser steps in total
    batch_size: int = 16                    # frame pairs per step [Supp 2.2: 16]
    lr: float = 2e-4                        # Adam [Supp 2.2: initial 2e-4; no later rate given, kept constant [I]]
    lr_schedule: str = "constant"           # "constant": lr throughout; "drop", "cosine", "onecycle": to
                                            # lr_final as for SpatialNet (train.learning_rate_schedule)
    lr_final: float = 1e-5                  # the last rate of the "drop", "cosine", "onecycle" schedules [I]
    lr_drop_fraction: float = 250 / 300     # "drop": lr_final from this fraction of the steps (or budget) on
    synth_preset: str = "mixed"             # generator preset of the training and validation clips
    render_size: int = 256                  # synthetic frame size (square)
    max_frame_gap: int = MAX_FRAME_GAP      # pairs (t - d, t), d in 1 .. max_frame_gap [Supp: range-5 window]
    he_frame_gap: int | None = None         # > max_frame_gap: half the pairs d in max_frame_gap + 1 .. this, for the
                                            # HE triplet loss only (no TVF loss on them) [I]; None: the window only
    augment: bool = True                    # the same random augmentation on both frames [Supp 2.2]
    seed: int = 0
    val_every: int = 250                    # steps between validations (0: only at the end)
    val_pairs: int = 32                     # fixed validation pairs (validation seeds, no augmentation)
    log_every: int = 25
    num_workers: int = 0                    # DataLoader workers
    precision: str = "auto"                 # "auto", "fp32" or "bf16" (mpat_nb.precision)
    device: str | None = None               # None: cuda -> mps -> cpu
    max_minutes: float | None = None        # wall-clock budget: stop early (validate + save) when it is spent
    batchnorm_pairs: int = 128              # BatchNorm statistics re-estimated on this many training pairs before each
                                            # validation and save (mpat_nb.train.recalibrate_batchnorm); 0: off
    sync_batchnorm: bool = False            # several GPUs: BatchNorm statistics of the global batch (SyncBatchNorm);
                                            # off: each GPU's slice [I: the paper does not say]


def train_temporalnet(config: TemporalTrainConfig, out_dir: str | Path, *, resume: str | Path | None = None,
                      progress: bool = True) -> dict:
    """Train (or resume training) TemporalNet on a frozen SpatialNet.

    Returns ``{"history", "checkpoint", "metrics"}``: the loss / validation records, the path of
    ``out_dir/last.pt`` and the last validation (:func:`mpat_nb.temporal_metrics.pair_metrics`: ``rank1``,
    ``epe_forward``, ``epe_backward``, ``epe_zero_motion``, losses). Under torchrun every process gets the same.
    """
    with distributed.session(config.device) as device:
        return _train_temporalnet(config, Path(out_dir), resume, progress, device)


def _train_temporalnet(config: TemporalTrainConfig, out: Path, resume, progress: bool, device: torch.device) -> dict:
    """The TemporalNet stage: the frozen SpatialNet, the pair data, losses and validation, trained by
    :func:`mpat_nb.train.run_training`."""
    check_run_settings(config, out)
    main_process, _ = start_process(config, device)
    model_config = get_temporal_config(config.preset)
    spatial_path = spatial_checkpoint_path(config.spatial_checkpoint, model_config)
    precision = resolve_precision(config.precision, device)
    spatial = precision.model(load_frozen_spatialnet(spatial_path, model_config, device))
    spatial_record = {"checkpoint": str(spatial_path), "fingerprint": weights_fingerprint(spatial),
                      "preset": spatial.config.name, "model_config": dataclasses.asdict(spatial.config)}
    model = precision.model(TemporalNet(model_config, config.resnet50_weights).to(device))
    if config.init_checkpoint and resume is None:
        initial = load_checkpoint(config.init_checkpoint, kind="temporalnet", preset=model_config.name,
                                  map_location=device)
        load_weights(model, initial["model"], config.init_checkpoint, f"TemporalNet {model_config.name!r}")
    state = None
    if resume is not None:   # every process loads the same checkpoint, so all start from the same state
        state = load_checkpoint(resume, kind="temporalnet", preset=model_config.name, map_location=device)
        _check_same_spatialnet(state, spatial_record, resume)
        load_weights(model, state["model"], resume, f"TemporalNet {model_config.name!r}")  # another architecture first
        check_resumable(state, config, resume)
    spatial_config = spatial.config
    dataset = SyntheticPairDataset(spatial_config.input_size, spatial_config.output_size, preset=config.synth_preset,
                                   split="train", length=config.steps * config.batch_size,
                                   render_size=(config.render_size, config.render_size),
                                   augment=AugmentConfig() if config.augment else None, seed=config.seed,
                                   max_frame_gap=config.max_frame_gap, long_frame_gap=config.he_frame_gap)
    val_batches = validation_pairs(config, spatial_config) if main_process else None

    def batch_losses(trained: torch.nn.Module, batch: PairBatch) -> dict[str, torch.Tensor]:
        """The float32 losses of one batch of b pairs: the HE triplet loss, L_TVF and their total."""
        batch = batch.to(device, non_blocking=True)
        with precision.autocast():
            output = pair_forward(spatial, trained, batch, precision.images)
        tvf_targets = tvf_on_short_gaps(batch.tvf, batch.frame_gap, config.max_frame_gap)   # (b, 2, h, w)
        losses = temporal_loss(as_float32(output), batch.identities("previous"), batch.identities("current"),
                               tvf_targets)                                                   # float32
        return balance_pooled_tvf(losses, tvf_targets)                                 # no-op in one process

    def describe(step: int, metrics: dict) -> str:
        """The line printed after a validation."""
        return (f"step {step}: validation HE rank-1 {100 * metrics['rank1']:.1f} %, TVF EPE forward "
                f"{metrics['epe_forward']:.2f} / backward {metrics['epe_backward']:.2f} px (zero motion "
                f"{metrics['epe_zero_motion']:.2f}) on {config.val_pairs} '{config.synth_preset}' pairs")

    # find_unused_parameters: a process whose pairs have no person skips the HE branch (no proposal to embed)
    stage = TrainingStage("temporalnet", model, dataset, collate_pairs, batch_losses,
                          validate=lambda temporal: pair_metrics(spatial, temporal, val_batches),
                          describe=describe, history_prefix="val_", progress_terms=("he", "tvf"),
                          batchnorm_items=config.batchnorm_pairs, batchnorm_collate=collate_pairs,
                          batchnorm_forward=functools.partial(pair_forward, spatial),
                          find_unused_parameters=True, checkpoint_entries={"spatial": spatial_record})
    return run_training(stage, config, out, precision, device, state=state, resume=resume, progress=progress)


def balance_pooled_tvf(losses: dict[str, torch.Tensor], tvf_targets) -> dict[str, torch.Tensor]:
    """Re-weight each process's L_fwd, L_bwd (pooled over its labelled pixels) by its share of the labelled pixels,
    so their mean over processes is the global batch's (as :func:`mpat_nb.train.balance_pooled_losses`); the
    triplet term is left as it is (mined per process). ``losses`` itself in one process.
    """
    if distributed.world_size() == 1:
        return losses
    counts = torch.stack([tvf_targets.forward_mask.sum().float(), tvf_targets.backward_mask.sum().float()])
    shares = counts / distributed.all_reduce_mean(counts).clamp(min=1e-12)
    balanced = dict(losses)
    for name, share in zip(("tvf_forward", "tvf_backward"), shares):
        extra = losses[name] * (share - 1.0)                                  # s_r L_r = L_r + (s_r - 1) L_r
        balanced[name] = losses[name] + extra
        balanced["tvf"] = balanced["tvf"] + extra
        balanced["total"] = balanced["total"] + TEMPORAL_LOSS_WEIGHTS["tvf"] * extra
    return balanced


def pair_forward(spatial: torch.nn.Module, temporal: torch.nn.Module, batch: PairBatch,
                 layout: Callable[[torch.Tensor], torch.Tensor] = lambda images: images) -> TemporalNetOutput:
    """The frozen SpatialNet, then TemporalNet, on a batch of b pairs; ``layout`` puts SpatialNet's
    (b, 3, S, S) frames in the training precision's memory layout. Without it (float32, as evaluation and
    inference run them), ``partial(pair_forward, spatial)`` is the forward pass re-estimating BatchNorm."""
    images = layout(batch.images_previous), layout(batch.images_current)
    previous, current = frozen_spatial_outputs(spatial, *images)
    return temporal(previous, current, batch.boxes_previous, batch.boxes_current, batch.images_previous,
                    batch.images_current)


def validation_pairs(config: TemporalTrainConfig, spatial_config) -> list[PairBatch]:
    """The fixed validation pairs: ``config.val_pairs`` pairs of validation clips, no augmentation, batched."""
    dataset = SyntheticPairDataset(spatial_config.input_size, spatial_config.output_size, preset=config.synth_preset,
                                   split="val", length=max(config.val_pairs, 1),
                                   render_size=(config.render_size, config.render_size), augment=None, seed=0,
                                   max_frame_gap=config.max_frame_gap)
    samples = [dataset[i] for i in range(len(dataset))]
    size = max(1, min(config.batch_size, 8))
    return [collate_pairs(samples[i:i + size]) for i in range(0, len(samples), size)]


def _check_same_spatialnet(state: dict, spatial_record: dict, resume) -> None:
    recorded = state.get("spatial") or {}
    if recorded.get("fingerprint") and recorded["fingerprint"] != spatial_record["fingerprint"]:
        raise InputError(f"cannot resume {resume}: it was trained on SpatialNet {recorded.get('checkpoint')} "
                         f"(fingerprint {recorded['fingerprint']}), not on {spatial_record['checkpoint']} "
                         f"({spatial_record['fingerprint']}); pass that one with --spatial-checkpoint")
