"""Training SpatialNet (and its PGG fine-tuning stage): one entry point for the Python API and the command line.

``train_spatialnet(SpatialTrainConfig(...), out_dir)`` runs Adam with the paper's step schedule scaled to
the preset (2e-4, then 1e-5 for the last sixth: 250K of 300K iterations in the paper), the supplementary's
augmentations (``augment=False`` switches them off), synthetic data generated on the fly (or real PoseTrack / COCO
annotations), a progress bar, periodic validation mAP with the project's PoseTrack evaluator, and checkpoints that
resume exactly (data item i is a pure function of (seed, i), so the stream restarts where it stopped).

The fine-tuning stage of the paper is the same entry point with ``pgg_iterations=1``, ``lr=1e-5`` and
``init_checkpoint`` the trained SpatialNet: L_PGG (``losses.pgg_loss``) on the Pose-Guided-Grouping-refined
KE + SIE of the ground-truth joints joins the four SpatialNet losses; validation then decodes with PGG.

A NaN or infinite loss stops training with an error naming the step; the last good checkpoint is left
untouched (checkpoints are written atomically).

Several GPUs or nodes (:mod:`mpat_nb.distributed`): launched by ``torchrun``, every process runs this function;
``batch_size`` is the *global* batch (the paper's 16), each of the P processes reads its own slice of batch / P
items of every step, DistributedDataParallel averages the gradients, process 0 alone prints, validates and writes
checkpoints (the unwrapped model's weights, no ``module.`` prefix). The gradients equal those of one process on
the global batch (``tests/test_distributed.py``) up to BatchNorm, whose statistics are each process's slice unless
``sync_batchnorm`` (GPUs only; off by default [I: the paper's 4 GPUs x 4 images do not say; AE did not sync]).

A run is also described by a JSON file of :class:`SpatialTrainConfig` fields (:func:`read_config_file`;
``configs/paper_*.json``, ``mpat-nb train spatial --config FILE``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import types
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mpat_nb import distributed
from mpat_nb.checkpoints import decode_tuning, load_checkpoint, load_weights, save_checkpoint
from mpat_nb.codec import svf_to_pixels
from mpat_nb.config import LOSS_WEIGHTS, get_spatial_config
from mpat_nb.data.augment import AugmentConfig
from mpat_nb.data.datasets import (
    AnnotatedFramesDataset,
    SyntheticSpatialDataset,
    coco_frames,
    collate_samples,
    posetrack_frames,
)
from mpat_nb.data.synth import validation_clips
from mpat_nb.decode import DecodeConfig, predict_videos, tuned_decode_config
from mpat_nb.losses import pgg_loss, spatial_loss
from mpat_nb.models.pgg import PoseGuidedGrouping, gather_points
from mpat_nb.models.spatialnet import SpatialNet
from mpat_nb.precision import Precision, resolve_precision
from mpat_nb.utils import InputError, TrainingError, atomic_write_text, check_output_folder, seed_everything


@dataclass
class SpatialTrainConfig:
    """Everything that defines a SpatialNet training run (saved in every checkpoint)."""

    preset: str = "tiny"                 # model preset (mpat_nb.config.SPATIAL_PRESETS)
    steps: int = 3000                    # optimiser steps in total
    batch_size: int = 16                 # paper: 16
    lr: float = 2e-4                     # paper: Adam 2e-4 ...
    lr_final: float = 1e-5               # ... then 1e-5 ...
    lr_drop_fraction: float = 250 / 300  # ... after 250K of 300K iterations [I: total length not given]
    lr_schedule: str = "drop"            # "drop": the paper's step above; "cosine": half a cosine from lr to
                                         # lr_final over the run; "onecycle": a linear warm-up from lr / 25 over
                                         # the first tenth, then the cosine (CosineSchedule); "constant": lr
    heatmap_sigma: float | None = None   # heatmap target std in output pixels; None: codec.HEATMAP_SIGMA scaled to
                                         # the output (2 px at 128 x 128, AE; 1 px at tiny's 64 x 64)
    det_foreground_weight: float = 0.0   # alpha of losses.detection_loss; 0 = the paper's plain masked MSE
    pgg_iterations: int = 0              # > 0: the PGG fine-tuning stage (docs/method.md 2.6): L_PGG on the embeddings
                                         # of the GT joints refined by R = pgg_iterations mean-shift steps, added
                                         # with LOSS_WEIGHTS["pgg"] = 1e-4 [Supp: R = 1, lr 1e-5, from SpatialNet]
    decode_embedding: str = "ke"         # what validation groups by: "ke" (AE baseline), "sie", "ke+sie"
    data: str = "synthetic"              # "synthetic", "posetrack" or "coco"
    synth_preset: str = "mixed"          # generator preset for synthetic data and validation
    render_size: int = 256               # synthetic frame size (square)
    augment: bool = True                 # the supplementary's augmentations (mpat_nb.data.augment.AugmentConfig);
                                         # False: none. On endless synthetic data (no image seen twice) they only
                                         # make each step harder: off, the tiny preset scored 14.7 against 11.8
                                         # validation mAP after the same 581 steps (mpat_nb/weights/README.md)
    frames_per_clip: int = 4             # synthetic data: frames used of each rendered clip, 3 frames apart, in
                                         # frames_per_clip consecutive batches (batch_size clips in each); 1: one
                                         # clip per image (SyntheticSpatialDataset)
    annotations: str | None = None       # real data: annotation file or folder
    image_root: str | None = None        # real data: folder the annotation file names are relative to
    seed: int = 0
    val_every: int = 500                 # steps between validations (0: only at the end)
    val_clips: int = 4                   # synthetic validation clips (seeds disjoint from training)
    val_frames: int = 8                  # frames per validation clip
    log_every: int = 25
    num_workers: int = 0                 # DataLoader workers (synthetic data is cheap; 0 is fine on CPU)
    precision: str = "auto"              # "auto", "fp32" or "bf16" (mpat_nb.precision): auto = bf16 autocast +
                                         # channels-last on a CPU with native bf16 or a CUDA GPU, else fp32
    device: str | None = None            # None: cuda -> mps -> cpu
    init_checkpoint: str | None = None   # start from these weights (not a resume)
    max_minutes: float | None = None     # wall-clock budget: stop early (validate + save) when it is spent;
                                         # the lr then drops at lr_drop_fraction of the budget or of the steps
    epochs: float | None = None          # real data: passes over the labelled frames; sets steps =
                                         # ceil(epochs x frames / batch_size) [Supp: PGG stage 40 epochs]
    batchnorm_images: int = 256          # before each validation and save, BatchNorm's running statistics are
                                         # re-estimated as the plain mean over this many training images spread
                                         # over the whole data stream (recalibrate_batchnorm); 0: keep the running
                                         # averages [I: with batch 8 they follow the last few batches: measured on
                                         # the tiny preset at step 8000, 26.3 validation mAP as saved, 45.2 after]
    sync_batchnorm: bool = False         # several GPUs: BatchNorm statistics of the global batch (SyncBatchNorm);
                                         # off: each GPU's slice [I: the paper does not say; off as in AE]


def train_spatialnet(config: SpatialTrainConfig, out_dir: str | Path, *, resume: str | Path | None = None,
                     progress: bool = True) -> dict:
    """Train (or resume training) SpatialNet; returns ``{"history", "checkpoint", "val_map"}``.

    Under torchrun every process calls this and gets the same result back (:mod:`mpat_nb.distributed`).
    """
    with distributed.session(config.device) as device:
        return _train_spatialnet(config, Path(out_dir), resume, progress, device)


def _train_spatialnet(config: SpatialTrainConfig, out: Path, resume, progress: bool, device: torch.device) -> dict:
    """The SpatialNet / PGG stage: its model, data, losses and validation, trained by :func:`run_training`."""
    check_run_settings(config, out)
    main_process, _ = start_process(config, device)
    model_config = get_spatial_config(config.preset)
    dataset, config = training_data(config, model_config)                # epochs -> steps on real data
    precision = resolve_precision(config.precision, device)
    model = SpatialNet(model_config).to(device)
    pgg = PoseGuidedGrouping(iterations=config.pgg_iterations).to(device) if config.pgg_iterations else None
    if config.init_checkpoint:
        initial = load_checkpoint(config.init_checkpoint, kind="spatialnet", preset=model_config.name)
        load_weights(model, initial["model"], config.init_checkpoint, f"SpatialNet {model_config.name!r}")
        model.decode_tuning = decode_tuning(initial, config.init_checkpoint)   # validation decodes with it
    state = None
    if resume is not None:   # every process loads the same checkpoint, so all start from the same state
        state = load_checkpoint(resume, kind="spatialnet", preset=model_config.name, map_location=device)
        load_weights(model, state["model"], resume, f"SpatialNet {model_config.name!r}")   # another architecture first
        check_resumable(state, config, resume)
        model.decode_tuning = decode_tuning(state, resume)
    precision.model(model)                                                # channels-last with autocast
    val_set = validation_clips(config.synth_preset, config.val_clips, config.val_frames, config.render_size) \
        if main_process else None
    val_decode = validation_decode_config(config, model)

    def batch_losses(trained: nn.Module, batch) -> dict[str, torch.Tensor]:
        """The float32 losses of one batch: the four SpatialNet terms (+ L_PGG in the PGG stage), total."""
        images, targets = batch                                           # (b, 3, S, S); SpatialTargets
        images, targets = precision.images(images.to(device, non_blocking=True)), targets.to(device)
        with precision.autocast():
            output = as_float32(trained(images))                          # losses in float32
        losses = spatial_loss(output, targets, det_foreground_weight=config.det_foreground_weight)  # float32
        if pgg is not None:
            losses.update(pgg_stage_loss(pgg, output, targets))
            losses["total"] = losses["total"] + LOSS_WEIGHTS["pgg"] * losses["pgg"]
        return balance_pooled_losses(losses, targets)                     # no-op in one process

    def describe(step: int, metrics: dict) -> str:
        """The line printed after a validation."""
        return f"step {step}: validation mAP {metrics['val_map']:.1f} on {config.val_clips} " \
               f"'{config.synth_preset}' clips"

    stage = TrainingStage("spatialnet", model, dataset, collate_samples, batch_losses,
                          validate=lambda net: {"val_map": validation_map(net, val_set, val_decode)},
                          describe=describe, progress_terms=("det",), batchnorm_items=config.batchnorm_images,
                          batchnorm_collate=collate_images,
                          checkpoint_entries={"decode": model.decode_tuning})
    run = run_training(stage, config, out, precision, device, state=state, resume=resume, progress=progress)
    return {"history": run["history"], "checkpoint": run["checkpoint"], "val_map": run["metrics"]["val_map"]}


@dataclass
class TrainingStage:
    """The parts of a training stage (SpatialNet / PGG, TemporalNet) that :func:`run_training` calls. Only
    ``batch_losses`` gets the model as trained (in DistributedDataParallel under torchrun), the rest the
    model itself."""

    kind: str                                  # "spatialnet" / "temporalnet": checkpoint kind, progress bar
    model: nn.Module                           # what is trained (its ``config`` is saved with the weights)
    dataset: torch.utils.data.Dataset          # training items; item i is a pure function of (seed, i)
    collate: Callable                          # list of items -> one batch of the DataLoader
    batch_losses: Callable                     # (trained, batch) -> {name: float32 scalar}, "total" minimised
    validate: Callable[[nn.Module], dict]      # model -> validation metrics (process 0, BN re-estimated)
    describe: Callable[[int, dict], str]       # (step, metrics) -> the line printed after a validation
    history_prefix: str = ""                   # before the metric names in a validation's history record
    progress_terms: tuple[str, ...] = ()       # loss terms the progress bar shows after the total
    batchnorm_items: int = 0                   # training items BatchNorm is re-estimated on (0: it is not)
    batchnorm_collate: Callable | None = None  # list of items -> a batch with ``.to(device)``, for that
    batchnorm_forward: Callable = lambda model, batch: model(batch)   # one forward pass, for that
    find_unused_parameters: bool = False       # DDP: a batch may leave parameters out of the loss
    checkpoint_entries: dict = dataclasses.field(default_factory=dict)   # the stage's own checkpoint entries


def run_training(stage: TrainingStage, config, out: Path, precision: Precision, device: torch.device, *,
                 state: dict | None, resume, progress: bool) -> dict:
    """Train ``stage.model`` (Adam, ``config.lr_schedule``); returns ``{"history", "checkpoint", "metrics"}``.

    Each step: the stage's losses, the optimiser step (a NaN loss stops), the schedule, a log record every
    ``log_every``. Every ``val_every`` steps, at the end and when ``max_minutes`` is spent: BatchNorm
    re-estimation, validation, an atomic checkpoint and ``history.json``. ``state``: the checkpoint ``resume``
    (weights loaded, :func:`check_resumable` passed) whose optimiser, schedule, step, history and RNG go on.
    """
    main_process, local_batch = distributed.is_main_process(), config.batch_size // distributed.world_size()
    optimizer = torch.optim.Adam(stage.model.parameters(), lr=config.lr)
    schedule = learning_rate_schedule(config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)   # saves and restores schedule's state
    start_step, history, metrics = 0, [], {}
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])                # the drop flag of a time budget too
        else:                     # saved before the stage had a schedule (TemporalNet): on at the rate it had
            scheduler.base_lrs = [group["lr"] for group in optimizer.param_groups]
        start_step, history = int(state["step"]), list(state.get("history", []))
        metrics = state.get("metrics", {})
        torch.set_rng_state(state["rng"].cpu())
        resume_schedule(schedule, optimizer, scheduler, state, config, resume)
    trained = distributed.wrap_model(stage.model, device, find_unused_parameters=stage.find_unused_parameters,
                                     sync_batchnorm=config.sync_batchnorm)   # DDP, or the model itself
    if main_process:                                 # after every input check: a refused run leaves no folder
        out.mkdir(parents=True, exist_ok=True)

    sampler = distributed.GlobalBatchSampler(start_step, config.steps, config.batch_size, distributed.rank(),
                                             distributed.world_size())
    loader = DataLoader(stage.dataset, batch_size=local_batch, sampler=sampler, collate_fn=stage.collate,
                        num_workers=config.num_workers, persistent_workers=config.num_workers > 0)
    scaler = precision.grad_scaler()
    checkpoint_path = out / "last.pt"

    trained.train()
    step = start_step
    bar = tqdm(total=config.steps, initial=start_step, desc=f"train {stage.kind}/{stage.model.config.name}",
               disable=not (progress and main_process))
    say = bar.write if main_process else (lambda message: None)
    started = time.perf_counter()
    running = RunningLosses()
    for batch in loader:
        losses = stage.batch_losses(trained, batch)                       # {name: float32 scalar}
        optimizer_step(losses["total"], optimizer, scaler, step + 1, checkpoint_path)
        minutes = minutes_spent(started, config)
        if config.max_minutes is not None:                               # saved with the scheduler's state
            schedule_time_spent(schedule, minutes / config.max_minutes, config)
        scheduler.step()                                                  # the lr of the next step
        step += 1
        running.add(losses)
        if step % config.log_every == 0 or step == config.steps:
            seconds = round(time.perf_counter() - started, 1)
            record = {"step": step, "lr": scheduler.get_last_lr()[0], "seconds": seconds,
                      **mean_over_processes(running.record())}
            history.append(record)
            bar.set_postfix(loss=f"{record['total']:.4g}",
                            **{term: f"{record.get(term, 0):.3g}" for term in stage.progress_terms})
        bar.update(1)
        out_of_time = config.max_minutes is not None and minutes >= config.max_minutes
        if (config.val_every and step % config.val_every == 0) or step == config.steps or out_of_time:
            model = distributed.unwrap(trained)
            if main_process:
                batches = batchnorm_batches(stage.dataset, stage.batchnorm_items, local_batch,
                                            stage.batchnorm_collate, device)
                recalibrate_batchnorm(model, batches, stage.batchnorm_forward)
                metrics = stage.validate(model)
            metrics = distributed.broadcast_object(metrics)
            history.append({"step": step, **{stage.history_prefix + k: v for k, v in metrics.items()}})
            say(stage.describe(step, metrics))
            trained.train()
            if main_process:
                save_checkpoint(checkpoint_path, kind=stage.kind, model=model, model_config=model.config,
                                optimizer=optimizer.state_dict(),
                                scheduler=scheduler.state_dict(), step=step, rng=torch.get_rng_state(),
                                train_config=dataclasses.asdict(config), history=history, metrics=metrics,
                                **stage.checkpoint_entries, world_size=distributed.world_size())
                atomic_write_text(out / "history.json", json.dumps(history, indent=1))
        if out_of_time:
            say(f"time budget of {config.max_minutes} min spent at step {step}; stopped")
            break
    bar.close()
    return {"history": history, "checkpoint": str(checkpoint_path), "metrics": metrics}


def recalibrate_batchnorm(model: torch.nn.Module, batches: Sequence, forward: Callable[[torch.nn.Module, object], object]
                          = lambda model, images: model(images)) -> int:
    """Re-estimate every BatchNorm's running mean and variance as the plain average over ``batches``.

    ``forward(model, batch)`` runs the model on one batch of training data (default ``model(batch)``). The running
    averages (momentum 0.1) that training leaves behind follow the last few batches; with small batches of
    correlated synthetic frames they can be far from the data's statistics, and evaluation, which uses them,
    suffers [I: "precise BN"]. Runs under ``torch.no_grad()`` in train mode, then restores each layer's momentum and
    the model's mode. Returns the number of batches (0: no BatchNorm or no batch; nothing changed).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or not len(batches):
        return 0
    was_training, momenta = model.training, [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None                              # cumulative average: each batch weighs the same
    model.train()
    with torch.no_grad():
        for batch in batches:
            forward(model, batch)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.train(was_training)
    return len(batches)


def batchnorm_indices(dataset_length: int, num_items: int) -> np.ndarray:
    """``num_items`` evenly spaced item indices over a training stream (many different clips), for
    :func:`recalibrate_batchnorm`; empty for 0."""
    if num_items <= 0 or dataset_length <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, dataset_length - 1, min(num_items, dataset_length)).astype(np.int64))


def batchnorm_batches(dataset, num_items: int, batch_size: int, collate: Callable, device: torch.device) -> list:
    """``num_items`` items spread over the training ``dataset`` (:func:`batchnorm_indices`), collated in batches of
    ``batch_size`` by ``collate`` and moved to ``device``: the batches :func:`recalibrate_batchnorm` reads.
    ``collate`` returns something with ``.to(device)`` (SpatialNet: the images; TemporalNet: a ``PairBatch``)."""
    indices = batchnorm_indices(len(dataset), num_items)
    return [collate([dataset[int(i)] for i in indices[start:start + batch_size]]).to(device)
            for start in range(0, len(indices), batch_size)]


def collate_images(samples) -> torch.Tensor:
    """(B, 3, S, S) images of SpatialNet samples (their targets are not needed to re-estimate BatchNorm)."""
    return collate_samples(samples)[0]


def start_process(config, device: torch.device) -> tuple[bool, int]:
    """(is this the main process, this process's share of the global batch); seeds and sets CPU threads.

    Shared by the SpatialNet and TemporalNet training loops; fails before anything is built when the number of
    processes does not divide ``config.batch_size``.
    """
    local_batch = distributed.per_process_batch(config.batch_size)
    seed_everything(config.seed)
    if device.type == "cpu" and config.num_workers > 0 and "OMP_NUM_THREADS" not in os.environ:
        # leave a core to each data worker: oversubscribed OpenMP threads spin and slow everything down
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - config.num_workers))
    return distributed.is_main_process(), local_batch


def as_float32(output):
    """A dataclass of network outputs (SpatialNetOutput, TemporalNetOutput) with every floating tensor, also
    those in a list, in float32 (autocast gives bf16 / fp16)."""
    def cast(value):
        if isinstance(value, list):
            return [cast(item) for item in value]
        return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value
    return dataclasses.replace(output, **{field.name: cast(getattr(output, field.name))
                                          for field in dataclasses.fields(output)})


def optimizer_step(total: torch.Tensor, optimizer, scaler, step: int, checkpoint_path: Path) -> None:
    """One update from the loss ``total``; every process stops together (with the step named) on a NaN loss."""
    check_finite_loss(distributed.all_reduce_mean(total.detach()), step, checkpoint_path)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()                                    # DDP: gradients averaged over processes
    scaler.step(optimizer)
    scaler.update()


def minutes_spent(started: float, config) -> float:
    """Minutes since ``started``; with a time budget, the slowest process's (one clock for all: the same lr drop
    and the same last step everywhere)."""
    minutes = (time.perf_counter() - started) / 60
    return distributed.all_reduce_max(minutes) if config.max_minutes is not None else minutes


def read_config_file(path: str | Path, config_class: type = SpatialTrainConfig) -> dict:
    """The fields a JSON config file sets: ``{name: value}`` for :class:`SpatialTrainConfig` (or ``config_class``,
    e.g. :class:`mpat_nb.train_temporal.TemporalTrainConfig`).

    The file holds one JSON object whose keys are field names; keys starting with ``_`` are comments (JSON has
    none) and are dropped. Raises InputError naming the file for a missing file, bad JSON, unknown keys (all of
    them, in one line) or a value of the wrong type. Paths inside are relative to the working directory, as on
    the command line. Use as ``SpatialTrainConfig(**read_config_file("configs/paper_spatial.json"))``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"config file {path} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise InputError(f"config file {path} must hold one JSON object of {config_class.__name__} fields")
    values = {key: value for key, value in values.items() if not key.startswith("_")}
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"config file {path}: unknown keys {unknown} (not fields of {config_class.__name__}; "
                         f"known: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(config_class)
    return {key: _checked_value(path, key, hints[key], value) for key, value in values.items()}


def check_resumable(state: dict, config, path: str | Path) -> None:
    """InputError unless a checkpoint's run read the data the way ``config`` does (the same global batch).

    Step s reads items s x batch_size onwards, so resuming with another global batch would re-read or skip data
    (the number of processes may change: each takes global batch / processes).
    """
    missing = [key for key in ("optimizer", "step", "rng") if key not in state]
    if missing:
        raise InputError(f"cannot resume {path}: it has no optimiser state ({', '.join(missing)} missing: an "
                         f"exported or shipped checkpoint keeps only the weights); --init {path} starts a new run "
                         "from its weights")
    saved = (state.get("train_config") or {}).get("batch_size")
    if saved is not None and saved != config.batch_size:
        raise InputError(f"cannot resume {path}: it was trained with a global batch of {saved}, this run has "
                         f"{config.batch_size}; pass --batch-size {saved}")
    # a checkpoint from before lr_schedule was recorded ran its stage's default ("drop"; temporal "constant")
    saved_schedule = (state.get("train_config") or {}).get("lr_schedule", type(config).lr_schedule)
    if saved_schedule != config.lr_schedule:
        raise InputError(f"cannot resume {path}: it was trained with lr_schedule {saved_schedule!r}, this run has "
                         f"{config.lr_schedule!r}; pass --lr-schedule {saved_schedule}")
    if int(state["step"]) >= config.steps:
        raise InputError(f"cannot resume {path}: it is already at step {int(state['step'])} and this run has "
                         f"{config.steps} steps; pass a larger --steps to train on (the learning-rate schedule is "
                         "recomputed for it)")


class ConstantSchedule:
    """The learning-rate factor 1 at every step, for ``LambdaLR``: the rate stays ``lr`` (TemporalNet's
    default [Supp 2.2 gives no later rate]). An object with no state, like the other schedules."""

    def __call__(self, step: int) -> float:
        return 1.0


class LearningRateDrop:
    """The learning-rate factor of step s for ``LambdaLR``: 1 before ``drop_step``, ``final_factor`` (lr_final / lr)
    from it on, or from the moment a time budget drops it early (``dropped_early``).

    An object rather than a lambda so that ``LambdaLR.state_dict()`` saves its attributes (it stores the
    ``__dict__`` of callable objects, nothing for functions) and a resumed run keeps an early drop.
    """

    def __init__(self, drop_step: int, final_factor: float) -> None:
        self.drop_step = drop_step
        self.final_factor = final_factor
        self.dropped_early = False

    def __call__(self, step: int) -> float:
        return self.final_factor if self.dropped_early or step >= self.drop_step else 1.0


class CosineSchedule:
    """The learning-rate factor of step s for ``LambdaLR``: an optional linear warm-up, then half a cosine.

    With progress u in [0, 1] through the run, f the final factor (lr_final / lr), w the warm-up fraction and
    f0 the warm-up's starting factor: factor = f0 + (1 - f0) u / w for u < w, else
    f + (1 - f) (1 + cos(pi (u - w) / (1 - w))) / 2. Progress is the larger of s / steps and the fraction of a
    time budget spent (``time_fraction``, set by the training loop), so a run stopped by ``max_minutes`` still
    ends at lr_final. An object, like :class:`LearningRateDrop`, so that ``LambdaLR.state_dict()`` keeps it.
    """

    def __init__(self, steps: int, final_factor: float, warmup_fraction: float = 0.0, warmup_factor: float = 1.0) -> None:
        self.steps = steps
        self.final_factor = final_factor
        self.warmup_fraction = warmup_fraction
        self.warmup_factor = warmup_factor
        self.time_fraction = 0.0

    def __call__(self, step: int) -> float:
        progress = min(1.0, max(step / max(1, self.steps), self.time_fraction))
        if progress < self.warmup_fraction:
            return self.warmup_factor + (1.0 - self.warmup_factor) * progress / self.warmup_fraction
        within = (progress - self.warmup_fraction) / max(1e-12, 1.0 - self.warmup_fraction)
        return self.final_factor + (1.0 - self.final_factor) * 0.5 * (1.0 + math.cos(math.pi * within))


#: The learning-rate schedules a training config can name (``lr_schedule``, ``--lr-schedule``)
LR_SCHEDULES = ("constant", "drop", "cosine", "onecycle")
Schedule = typing.Union[ConstantSchedule, LearningRateDrop, CosineSchedule]


def learning_rate_schedule(config) -> Schedule:
    """The ``LambdaLR`` factor object of ``config.lr_schedule`` (one of :data:`LR_SCHEDULES`)."""
    final = config.lr_final / config.lr
    if config.lr_schedule == "constant":
        return ConstantSchedule()
    if config.lr_schedule == "drop":
        return LearningRateDrop(int(round(config.lr_drop_fraction * config.steps)), final)
    if config.lr_schedule == "cosine":
        return CosineSchedule(config.steps, final)
    if config.lr_schedule == "onecycle":
        return CosineSchedule(config.steps, final, warmup_fraction=0.1, warmup_factor=1 / 25)
    raise InputError(f"lr_schedule must be {', '.join(map(repr, LR_SCHEDULES))}, got {config.lr_schedule!r}")


def schedule_time_spent(schedule: Schedule, fraction: float, config) -> None:
    """Tell the schedule that ``fraction`` of the time budget is spent: the step drops once it passes
    ``lr_drop_fraction``; the cosine follows whichever of steps and time is further along; constant stays."""
    if isinstance(schedule, LearningRateDrop):
        if fraction >= config.lr_drop_fraction:
            schedule.dropped_early = True
    elif isinstance(schedule, CosineSchedule):
        schedule.time_fraction = max(schedule.time_fraction, min(1.0, fraction))


def resume_schedule(schedule: Schedule, optimizer, scheduler, state: dict, config, path) -> None:
    """After loading a checkpoint's scheduler state: the rule for a resumed run with another ``steps``.

    Same ``steps``: the schedule is the checkpoint's (bit for bit the run that was interrupted). Other ``steps``:
    the drop step is recomputed for the new length (``lr_drop_fraction x steps``; an early drop by the time
    budget stays), the learning rate of the next step is set from it, and a warning says so, in particular when
    the learning rate goes back up because the new drop comes later than the step already reached. A constant
    schedule has nothing to recompute.
    """
    saved_steps = (state.get("train_config") or {}).get("steps")
    new_drop = int(round(config.lr_drop_fraction * config.steps))
    if saved_steps is None or saved_steps == config.steps or isinstance(schedule, ConstantSchedule):
        return
    step = int(state["step"])
    before = optimizer.param_groups[0]["lr"]
    if isinstance(schedule, CosineSchedule):
        schedule.steps, schedule.final_factor = config.steps, config.lr_final / config.lr
    else:
        schedule.drop_step, schedule.final_factor = new_drop, config.lr_final / config.lr
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * schedule(step)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]   # what get_last_lr() (the log) reports
    after = optimizer.param_groups[0]["lr"]
    change = f"the learning rate goes back up from {before:g} to {after:g} until then" if after > before else \
        f"the learning rate at step {step} is {after:g}"
    what = "cosine is recomputed for the new length" if isinstance(schedule, CosineSchedule) else \
        f"drop is recomputed for the new length, to step {new_drop}" \
        f"{' (or already done by the time budget)' if schedule.dropped_early else ''}"
    warnings.warn(f"resuming {path} (trained for {saved_steps} steps) with steps={config.steps}: the learning-rate "
                  f"{what}; {change}", stacklevel=2)


def check_run_settings(config, out: str | Path) -> None:
    """InputError naming the setting for values a run cannot use, before anything is built or written.

    Shared by the SpatialNet and TemporalNet training loops: a finite positive learning rate, at least 0 data
    workers, a positive time budget, and an output folder that is not a file.
    """
    if not (isinstance(config.lr, (int, float)) and math.isfinite(config.lr) and config.lr > 0):
        raise InputError(f"the learning rate (--lr) must be a positive number, got {config.lr}")
    if config.num_workers < 0:
        raise InputError(f"the number of data workers (--workers) must be 0 (load in the main process) or more, "
                         f"got {config.num_workers}")
    if config.max_minutes is not None and not (math.isfinite(config.max_minutes) and config.max_minutes > 0):
        raise InputError(f"the time budget (--max-minutes) must be a positive number of minutes, got "
                         f"{config.max_minutes}; leave it out to train for all --steps")
    check_output_folder(out, "--out")


def balance_pooled_losses(losses: dict[str, torch.Tensor], targets) -> dict[str, torch.Tensor]:
    """Make the mean over processes of their losses the loss of the global batch (DDP averages the gradients).

    L_det and L_KE are means over images: the mean over P processes of their means over b images each is the mean
    over the G = P b images. L_SIE, L_aux and L_PGG's SIE term are pooled over the labelled pixels (points) of the
    batch, L_r = e_r / n_r on process r, so each is scaled by the process's share s_r = n_r / mean_r n_r:
        mean_r s_r L_r = sum_r e_r / sum_r n_r = the pooled loss of the global batch.
    Returns the losses with those terms, ``pgg`` and ``total`` adjusted; ``losses`` itself in one process.
    """
    if distributed.world_size() == 1:
        return losses
    pooled = {"sie": (targets.svf_mask.sum(), LOSS_WEIGHTS["sie"]), "aux": (targets.ordinal_mask.sum(), LOSS_WEIGHTS["aux"])}
    if "pgg_sie" in losses:
        pooled["pgg_sie"] = ((targets.keypoint_indices[..., 1] > 0).sum(), LOSS_WEIGHTS["pgg"])
    counts = torch.stack([count.float() for count, _ in pooled.values()])
    shares = counts / distributed.all_reduce_mean(counts).clamp(min=1e-12)   # s_r (0 where nothing is labelled)
    balanced = dict(losses)
    for (name, (_, weight)), share in zip(pooled.items(), shares):
        extra = losses[name] * (share - 1.0)                                  # s_r L_r = L_r + (s_r - 1) L_r
        balanced[name] = losses[name] + extra
        balanced["total"] = balanced["total"] + weight * extra
        if name == "pgg_sie":
            balanced["pgg"] = balanced["pgg"] + extra
    return balanced


def mean_over_processes(means: dict[str, float]) -> dict[str, float]:
    """Each value averaged over the processes (for the loss log); unchanged in one process."""
    if distributed.world_size() == 1 or not means:
        return means
    averaged = distributed.all_reduce_mean(torch.tensor([means[key] for key in means], dtype=torch.float64))
    return {key: float(value) for key, value in zip(means, averaged)}


def check_finite_loss(total: torch.Tensor, step: int, checkpoint_path: Path) -> None:
    """Stop training with a :class:`TrainingError` naming ``step`` when the loss is NaN or infinite.

    Checkpoints are written atomically, so the last good one (if any) is intact; the message says where it is.
    """
    if not torch.isfinite(total):
        raise TrainingError(f"the loss became {total.item()} at step {step}; stopped. The last good checkpoint "
                            f"({checkpoint_path if checkpoint_path.exists() else 'none yet'}) is intact.")


class RunningLosses:
    """Sums the losses of the steps since the last log record; :meth:`record` averages and starts over."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach())
        self.count += 1

    def record(self, **fields) -> dict:
        """``fields`` (step, lr, seconds, ...) followed by the mean of every loss since the last record."""
        record = {**fields, **{key: value / max(1, self.count) for key, value in self.sums.items()}}
        self.sums, self.count = {}, 0
        return record


def pgg_stage_loss(pgg, output, targets) -> dict[str, torch.Tensor]:
    """L_PGG of one batch: the last stack's KE and SIE at the GT joints, refined by PGG, against the GT people.

    output: SpatialNetOutput; targets: collated SpatialTargets. Returns ``pgg`` (the unweighted L_PGG) and its
    parts ``pgg_ke``, ``pgg_sie``; the caller adds ``LOSS_WEIGHTS["pgg"] * pgg`` to the total.
    """
    svf_pixels = svf_to_pixels(output.svf[:, -1].float())                        # (B, 2, H, W) output pixels
    points = gather_points(output.keypoint_embedding[:, -1].float(), svf_pixels, targets.keypoint_indices)
    refined = pgg(points.ke, points.sie, points.valid, svf_pixels.shape[-1])     # (B, M, .) with M = N K
    terms = pgg_loss(refined, points.person, points.valid, targets.centres)
    return {"pgg": terms["total"], "pgg_ke": terms["ke"], "pgg_sie": terms["sie"]}


def validation_decode_config(config: SpatialTrainConfig, model: SpatialNet | None = None) -> DecodeConfig:
    """How validation decodes: the run's ``decode_embedding``; with PGG (KE + SIE) in the fine-tuning stage. The
    bandwidths are those tuned for the weights the run started from (``--init``'s "decode" entry), if any."""
    if config.pgg_iterations:
        return tuned_decode_config(model, embedding="ke+sie", pgg_iterations=config.pgg_iterations)
    return tuned_decode_config(model, embedding=config.decode_embedding)


@torch.no_grad()
def validation_map(model: SpatialNet, clips, decode_config: DecodeConfig = DecodeConfig()) -> float:
    """Total mAP (PoseTrack evaluator) of the model's poses on the given clips."""
    from mpat_nb.evaluate import evaluate

    return float(evaluate([c.video for c in clips], predict_videos(model, clips, decode_config)).total_map)


def training_data(config: SpatialTrainConfig, model_config):
    """The training dataset and the config, with ``steps`` set from ``epochs`` (real data only)."""
    if config.data == "synthetic":
        if config.epochs is not None:
            raise InputError("epochs counts passes over a real data set; synthetic data is endless: give steps "
                             "instead (--steps), or train on --data posetrack / coco")
        return SyntheticSpatialDataset(model_config.input_size, model_config.output_size, preset=config.synth_preset,
                                       split="train", length=config.steps * config.batch_size,
                                       render_size=(config.render_size, config.render_size),
                                       augment=AugmentConfig() if config.augment else None, seed=config.seed,
                                       frames_per_clip=config.frames_per_clip, clips_in_flight=config.batch_size,
                                       heatmap_sigma=config.heatmap_sigma), config
    if config.data not in ("posetrack", "coco"):
        raise InputError(f"data must be 'synthetic', 'posetrack' or 'coco', got {config.data!r}")
    check_real_data_paths(config)
    frames = posetrack_frames(config.annotations) if config.data == "posetrack" else coco_frames(config.annotations)

    def dataset(length):
        return AnnotatedFramesDataset(frames, config.image_root, model_config.input_size, model_config.output_size,
                                      augment=AugmentConfig() if config.augment else None, seed=config.seed,
                                      length=length, heatmap_sigma=config.heatmap_sigma)

    if config.epochs is not None:
        if config.epochs <= 0:
            raise InputError(f"epochs must be positive, got {config.epochs}")
        usable = len(dataset(None).frames)                                   # labelled frames with people
        config = dataclasses.replace(config, steps=max(1, math.ceil(config.epochs * usable / config.batch_size)))
    return dataset(config.steps * config.batch_size), config


def check_real_data_paths(config: SpatialTrainConfig) -> None:
    """InputError naming the setting unless the annotations and the image folder of real data exist."""
    what = {"posetrack": "a PoseTrack17/18 annotation JSON file or a folder of them",
            "coco": "a COCO person_keypoints_*.json file"}[config.data]
    if not config.annotations or not config.image_root:
        raise InputError(f"data={config.data!r} needs --annotations ({what}) and --image-root")
    annotations, image_root = Path(config.annotations), Path(config.image_root)
    layout = "see 'Training at full scale' in README.md for the expected folder layout"
    if not annotations.exists() or (config.data == "coco" and not annotations.is_file()):
        raise InputError(f"annotations {annotations} does not exist: set 'annotations' (--annotations) to {what}; "
                         f"{layout}")
    if not image_root.is_dir():
        raise InputError(f"image root {image_root} is not a folder: set 'image_root' (--image-root) to the folder the "
                         f"annotations' image file names are relative to; {layout}")


#: What JSON value each config-field type accepts (a float field also takes a JSON integer, 1 -> 1.0)
_JSON_TYPES = {int: (int,), float: (int, float), bool: (bool,), str: (str,), type(None): (type(None),)}


def _checked_value(path: Path, key: str, hint, value):
    """``value`` if JSON gave the type of field ``key`` (its resolved type hint: ``int``, ``float | None``, ...),
    else InputError. A type with no JSON form raises TypeError: a config field of that type cannot be read."""
    parts = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    unknown = [part for part in parts if part not in _JSON_TYPES]
    if unknown:
        raise TypeError(f"config field {key} has type {hint}, which a JSON config file cannot give")
    allowed = tuple(t for part in parts for t in _JSON_TYPES[part])
    if isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed):
        is_whole = isinstance(value, int) and not isinstance(value, bool)
        return float(value) if is_whole and float in parts and int not in parts else value   # 1 -> 1.0
    names = " | ".join("None" if part is type(None) else part.__name__ for part in parts)
    raise InputError(f"config file {path}: {key} must be {names}, got {value!r}")
