"""Multi-GPU and multi-node training with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

``torchrun --nproc-per-node 8 -m mpat_nb train spatial ...`` starts one process per GPU and tells each, through
the environment, who it is: ``RANK`` (0 .. WORLD_SIZE - 1 over all nodes), ``WORLD_SIZE`` and ``LOCAL_RANK`` (its
GPU on this node), plus ``MASTER_ADDR`` / ``MASTER_PORT``. :func:`session` reads them, starts the process group
(NCCL between GPUs, Gloo on CPUs) and picks the device ``cuda:LOCAL_RANK``; the training loops then

* give each process its own slice of every global batch (:class:`GlobalBatchSampler`),
* wrap the model in DistributedDataParallel (:func:`wrap_model`), which averages the gradients over processes
  during ``backward()``, so every process takes the same optimiser step,
* let process 0 alone print, validate and write checkpoints (:func:`is_main_process`).

Without torchrun (no ``RANK`` / ``WORLD_SIZE`` in the environment) every helper is a no-op: one process, world
size 1, rank 0, the device of :func:`mpat_nb.utils.get_device`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from mpat_nb.utils import InputError, get_device

#: How long a process waits in a collective before giving up [I: process 0 validates and writes checkpoints
#: while the others wait at their next gradient all-reduce; NCCL's default of 10 minutes is short for a slow disk].
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=60)


def launched_by_torchrun() -> bool:
    """True when the environment names this process's rank and the world size (torchrun, or a launcher like it)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@contextlib.contextmanager
def session(device: str | None = None) -> Iterator[torch.device]:
    """Start the process group if torchrun launched us (and nobody started it yet); yield this process's device.

    device: ``None`` / ``"cuda"`` / ``"cpu"`` as for :func:`mpat_nb.utils.get_device`. Under torchrun a CUDA
    device is ``cuda:LOCAL_RANK`` (NCCL backend); a CPU device uses the Gloo backend. The group is destroyed on
    exit if this call started it. In one process: just ``get_device(device)``.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield _device_of_running_group(device) if dist.is_initialized() else get_device(device)
        return
    chosen = _torchrun_device(device)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield chosen
    finally:
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside a started process group (even of one process)."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes taking part in training (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1 (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    """True for rank 0: the one process that prints, validates and writes files."""
    return rank() == 0


def launched_as_main() -> bool:
    """False only for a torchrun process of RANK > 0: who prints a summary once the process group is gone."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    """Wait until every process gets here (no-op in one process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_mean(value: float | torch.Tensor) -> float | torch.Tensor:
    """The mean over processes of a float (returns a float) or a tensor (returns a new tensor, same device).

    Every process must call it at the same point. In one process the value comes back unchanged.
    """
    return _all_reduce(value, "mean")


def all_reduce_max(value: float | torch.Tensor) -> float | torch.Tensor:
    """The maximum over processes, like :func:`all_reduce_mean` (e.g. "has any process run out of time?")."""
    return _all_reduce(value, "max")


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Process ``src``'s ``obj`` (any picklable value) on every process; ``obj`` unchanged in one process."""
    if not is_distributed() or world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_model(model: torch.nn.Module, device: torch.device, *, find_unused_parameters: bool = False,
               sync_batchnorm: bool = False) -> torch.nn.Module:
    """``model`` in DistributedDataParallel inside a process group; ``model`` itself in one process.

    find_unused_parameters: set it only for a model whose forward may leave parameters out of the loss (DDP then
    walks the graph every step to mark them done; TemporalNet's HE branch is skipped on a batch without people).
    sync_batchnorm: BatchNorm statistics over the global batch instead of each process's slice (CUDA only).
    The parameters stay those of ``model``: build the optimiser on ``model`` (or :func:`unwrap`) either way.
    """
    if not is_distributed():
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            raise InputError("sync_batchnorm needs CUDA devices (PyTorch's SyncBatchNorm has no CPU kernel): "
                             "drop --sync-batchnorm or train on GPUs")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                     find_unused_parameters=find_unused_parameters)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DistributedDataParallel (its state dict has no ``module.`` prefix); else ``model``."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def per_process_batch(global_batch: int) -> int:
    """Items each process takes of a global batch; InputError unless the world size divides it."""
    processes = world_size()
    if global_batch % processes:
        lower, higher = global_batch - global_batch % processes, global_batch + processes - global_batch % processes
        raise InputError(f"the batch size {global_batch} is the global batch, split over {processes} processes: it "
                         f"must be a multiple of {processes} (e.g. {lower or higher} or {higher})")
    return global_batch // processes


class GlobalBatchSampler(Sampler[int]):
    """This process's items of global batches ``start_step .. steps - 1``: items s G + r b .. s G + (r + 1) b - 1.

    G is the global batch, b = G / world size, r the rank. Step s of the run reads items s G .. (s + 1) G - 1 of the
    dataset whatever the number of processes, each process a contiguous slice of b of them, so the union over
    processes is exactly the batch a single process would read, and a run resumed at step s (with any number of
    processes) reads on where it stopped. Used instead of ``DistributedSampler``: our datasets are already a pure
    function of (seed, i) (:class:`~mpat_nb.data.datasets.AnnotatedFramesDataset` reshuffles every epoch itself),
    so no sampler-side shuffling, ``set_epoch`` or padding is needed. Indices are computed lazily (300K steps x 16
    items would be a large list).
    """

    def __init__(self, start_step: int, steps: int, global_batch: int, rank: int = 0, world_size: int = 1):
        if world_size < 1 or not 0 <= rank < world_size or global_batch % world_size:
            raise ValueError(f"GlobalBatchSampler: rank {rank} of {world_size} processes cannot split a global "
                             f"batch of {global_batch}")
        self.start_step, self.steps, self.global_batch = start_step, steps, global_batch
        self.rank, self.world_size = rank, world_size
        self.local_batch = global_batch // world_size

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.local_batch

    def __iter__(self) -> Iterator[int]:
        offset = self.rank * self.local_batch
        for step in range(self.start_step, self.steps):
            first = step * self.global_batch + offset
            yield from range(first, first + self.local_batch)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _torchrun_device(device: str | None) -> torch.device:
    """This torchrun process's device: ``cuda:LOCAL_RANK`` for CUDA, else the CPU."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is not None and device.startswith("cuda:"):
        raise InputError(f"under torchrun each process takes the GPU cuda:LOCAL_RANK; pass --device cuda, not {device}")
    chosen = get_device(device)
    if chosen.type == "mps":
        raise InputError("distributed training does not run on MPS: pass --device cpu (or run on CUDA GPUs)")
    if chosen.type != "cuda":
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise InputError(f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} GPUs: start at most "
                         f"that many processes per node (torchrun --nproc-per-node)")
    return torch.device("cuda", local_rank)


def _device_of_running_group(device: str | None) -> torch.device:
    """The device for a process group someone else started: ``cuda:LOCAL_RANK`` on NCCL, else as asked."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    chosen = get_device(device)
    return torch.device("cpu") if chosen.type != "cuda" else chosen


def _all_reduce(value: float | torch.Tensor, how: str) -> float | torch.Tensor:
    if not is_distributed() or world_size() == 1:
        return value
    as_float = not isinstance(value, torch.Tensor)
    # NCCL reduces CUDA tensors only; Gloo takes CPU tensors
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor(float(value), dtype=torch.float64, device=device) if as_float else value.detach().clone()
    original_device = None if as_float else tensor.device
    tensor = tensor.to(device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX if how == "max" else dist.ReduceOp.SUM)
    if how == "mean":
        tensor = tensor / world_size()
    return float(tensor) if as_float else tensor.to(original_device)
