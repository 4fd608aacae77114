"""Numeric precision of training: float32, or bfloat16 autocast with channels-last tensors.

``resolve_precision(name, device)`` turns the ``precision`` setting of a training run (``"auto"``, ``"fp32"``,
``"bf16"``) into a :class:`Precision`; :meth:`Precision.autocast` is the context the forward pass runs in.

* ``"auto"``: bf16 autocast on a CPU with native bf16 instructions (x86 AVX512-BF16 / AMX, ARM BF16), bf16 on a
  CUDA GPU with bf16 tensor cores (compute capability >= 8.0) and fp16 with gradient scaling on an older one (a T4);
  fp32 elsewhere (MPS, older CPUs, where emulated bf16 is slower than fp32).
* ``"fp32"``: no autocast.
* ``"bf16"``: bf16 autocast on any CPU or CUDA device that can run it (without native bf16 it runs, slowly).

Channels-last (NHWC strides, the tensors keep their NCHW shapes) goes with autocast on a CPU or a GPU: oneDNN and
cuDNN pick their fast bf16 convolutions for that layout [measured on a 2-core AVX512-BF16 CPU: bf16 alone 1.35x,
channels-last alone 1.23x, both 2.16x the fp32 train step of tiny SpatialNet; ``benchmarks/bench_spatialnet.py``].

Autocast runs the convolutions in bf16 and keeps the weights, the optimiser and the losses in float32: callers
cast the network's outputs to float32 before computing a loss.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from mpat_nb.utils import InputError

PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 instructions (x86: avx512_bf16 or amx_bf16; ARM: bf16), read from the
    operating system's CPU flags (Linux ``/proc/cpuinfo``); False where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "bf16" in flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cuda_has_native_bf16(device: torch.device) -> bool:
    """True for a CUDA GPU with bf16 tensor cores (compute capability 8.0 or more: A100, L4, H100, ...) and for ROCm.

    Not ``torch.cuda.is_bf16_supported()``: it also says True where bf16 is only emulated (a T4, compute capability
    7.5, as on Colab's free tier), where fp16 with gradient scaling is the fast choice.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device) >= (8, 0)


@dataclass(frozen=True)
class Precision:
    """What a run computes in: ``dtype`` None is plain float32; ``scale_gradients`` for fp16 (CUDA only)."""

    name: str                           # "fp32", "bf16" or "fp16" (what "auto" resolved to)
    device_type: str
    dtype: torch.dtype | None = None
    channels_last: bool = False
    scale_gradients: bool = False

    def autocast(self):
        """The context of the forward pass: ``torch.autocast`` to ``dtype``, or nothing for float32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) network input in this precision's memory layout."""
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` (in place) in this precision's memory layout."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, active only for fp16 on CUDA (bf16 has float32's range)."""
        return torch.amp.GradScaler("cuda", enabled=self.scale_gradients)


def resolve_precision(name: str, device: torch.device | str) -> Precision:
    """The :class:`Precision` that the setting ``name`` (one of :data:`PRECISIONS`) means on ``device``."""
    if name not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r} (--precision)")
    device = torch.device(device)
    kind = device.type
    if name == "fp32" or kind not in ("cpu", "cuda") or (name == "auto" and kind == "cpu" and not cpu_has_native_bf16()):
        return Precision("fp32", kind)
    if kind == "cuda" and name == "bf16" and not torch.cuda.is_bf16_supported():
        raise InputError("this GPU has no bf16: use --precision auto (fp16 with gradient scaling) or fp32")
    if kind == "cuda" and name == "auto" and not cuda_has_native_bf16(device):
        return Precision("fp16", kind, torch.float16, channels_last=True, scale_gradients=True)
    return Precision("bf16", kind, torch.bfloat16, channels_last=True)
