"""Inference fast paths: one switch per trick, each measured against the plain eager path.

``prepare_for_inference(model, InferenceOptions(...))`` returns an eval-mode *copy* of a SpatialNet or
TemporalNet (the model given is left as it was, so a training model can be passed), with:

* ``fuse_batchnorm``: every BatchNorm that directly follows a conv folded into that conv (below);
* ``channels_last``: weights in NHWC memory order (the tensors stay NCHW-shaped: only strides change);
* ``compile``: ``torch.compile`` of the model (for a TemporalNet: of each branch, since the tracker calls the
  HE and TIE branches one at a time).

``inference_context(options, device)`` is the matching context: ``torch.inference_mode()`` always (no
autograd record, no version counters; outputs cannot enter autograd later), plus ``torch.autocast`` when an
autocast dtype is set (bf16 on a CPU or CUDA, fp16 on CUDA).

Options a device cannot use (``autocast="fp16"`` or ``cudnn_benchmark`` off CUDA, any autocast on MPS) are
**ignored with a warning**, not an error: one options object then serves a notebook that runs on a Colab GPU and
on a CPU in CI.

``inference_options(precision, device)`` maps the command line's ``--precision`` to options: ``fp32`` (the
default of ``track`` and ``demo``) is plain eager float32, so results never depend on whether the CPU has bf16;
``bf16`` is bf16 autocast with BN folding and channels-last; ``auto`` is bf16 where training would use it
(:func:`mpat_nb.precision.resolve_precision`).

Defaults (``InferenceOptions()``: BN folding and channels-last on) come from ``benchmarks/bench_inference.py`` on
a shared 2-core CPU (ratios in ``benchmarks/RESULTS.md``; SpatialNet tiny / small, one frame, one thread, CPU
time, eager / variant): channels-last 1.30-1.37x, BN folding alone 0.98-1.11x (noise), both 1.44-1.63x; with 2
threads the wall-clock ratios were too noisy to read (other jobs held the cores). Both change float rounding
only (1e-9 on the heatmaps) - but AE grouping of a weak model can flip on such a change, so code that must
reproduce earlier numbers exactly passes no options (``NetworkObserver``'s default). Not measured on CUDA in
this project yet: run the benchmark there before relying on the defaults (``InferenceOptions(channels_last=False,
fuse_batchnorm=False)`` is plain eager under inference mode).

Conv + BN folding. In eval mode BN is the affine map per channel
``BN(y) = gamma (y - mu) / sqrt(var + eps) + beta``, so for ``y = W * x + b`` it folds into the conv:

    s = gamma / sqrt(var + eps),   W' = s W (per output channel),   b' = s (b - mu) + beta

which is exact when the conv's output feeds the BN and nothing else. Where that holds is read from the modules'
own structure (:data:`FOLDABLE_PAIRS`), not guessed from the order of registration:

* ``nn.Sequential``: a ``Conv2d`` child immediately followed by a ``BatchNorm2d`` child (the stacks'
  ``conv_bn_relu``, the TIE head convs, torchvision's ``downsample``);
* hourglass ``Stem``: conv -> bn;
* pre-activation ``Residual`` (BN-ReLU-conv1 -> BN-ReLU-conv2 -> BN-ReLU-conv3): conv1 -> bn2 and conv2 -> bn3.
  Its ``bn1`` stays: it comes before a ReLU and a conv (BN -> ReLU -> conv cannot be folded into the conv: the
  ReLU sits between them), and the block's input also feeds the skip branch (and the hourglass's upper
  branch), so it cannot be folded into the layer before it either;
* torchvision ``Bottleneck`` (HE branch, post-activation): conv1 -> bn1, conv2 -> bn2, conv3 -> bn3.

Only BN layers in eval mode with running statistics are folded (a BN without them normalises with the batch's
statistics even in eval mode).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models.resnet import Bottleneck

from mpat_nb.models.hourglass import Residual, Stem
from mpat_nb.precision import resolve_precision

#: Autocast names -> dtypes (bf16: CPU and CUDA; fp16: CUDA).
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: Module class -> (conv, BN) attribute pairs where the conv's output feeds that BN and nothing else.
FOLDABLE_PAIRS: dict[type, tuple[tuple[str, str], ...]] = {
    Residual: (("conv1", "bn2"), ("conv2", "bn3")),        # pre-activation: bn1 precedes a ReLU, not foldable
    Stem: (("conv", "bn"),),
    Bottleneck: (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")),
}


@dataclass(frozen=True)
class InferenceOptions:
    """How a model runs at inference (every switch off = plain eager inference under ``inference_mode``).

    - ``channels_last``: NHWC weights (and so activations) [measured: 1.3x faster on a 2-core CPU].
    - ``fuse_batchnorm``: fold conv + BN pairs (see the module docstring); exact up to float rounding
      (``tests/test_inference.py``) [measured: alone within noise, with channels-last 1.4-1.6x on that CPU].
    - ``autocast``: None, ``"bf16"`` or ``"fp16"``: autocast of the forward pass (bf16 on a CPU or CUDA, fp16 on
      CUDA); ignored with a warning where the device cannot.
    - ``cudnn_benchmark``: let cuDNN time its convolution algorithms on the first call of each input shape
      (sets the process-wide ``torch.backends.cudnn.benchmark``); ignored with a warning off CUDA.
    - ``compile``: ``torch.compile`` the model (for a TemporalNet, its two branches). The first call of each
      input shape compiles: minutes on a CPU (a test-size SpatialNet took 94 s here) and a C++ compiler is
      needed there; worth it on a GPU for long videos, if the benchmark says so.
    """

    channels_last: bool = True
    fuse_batchnorm: bool = True
    autocast: str | None = None
    cudnn_benchmark: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("channels_last", "fuse_batchnorm", "cudnn_benchmark", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"InferenceOptions.{name} must be True or False, got {getattr(self, name)!r}")
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"InferenceOptions.autocast must be None, 'bf16' or 'fp16', got {self.autocast!r}")

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return AUTOCAST_DTYPES[self.autocast] if self.autocast else None


def prepare_for_inference(model: nn.Module, options: InferenceOptions = InferenceOptions()) -> nn.Module:
    """An eval-mode copy of ``model`` with the fast paths of ``options`` applied (``model`` is not modified).

    Run it under :func:`inference_context` (the copy must not be trained: folded BN layers are gone).
    """
    if not isinstance(options, InferenceOptions):
        raise ValueError(f"options must be an InferenceOptions, got {type(options).__name__}")
    device = _device_of(model)
    _warn_unusable_options(options, device)
    prepared = copy.deepcopy(model).eval()
    if options.fuse_batchnorm:
        fuse_conv_batchnorm(prepared)
    if options.channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    if options.cudnn_benchmark and device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if options.compile:
        branches = [getattr(prepared, name) for name in ("human_embedding", "temporal_instance")
                    if isinstance(getattr(prepared, name, None), nn.Module)]
        for module in branches or [prepared]:      # TemporalNet: the branches are what the tracker calls
            module.compile()
    for parameter in prepared.parameters():
        parameter.requires_grad_(False)
    return prepared


@contextlib.contextmanager
def inference_context(options: InferenceOptions | None = None,
                      device: torch.device | str = "cpu") -> Iterator[None]:
    """``torch.inference_mode()``, plus autocast to ``options.autocast`` where ``device`` supports it."""
    options = options or InferenceOptions()
    device = torch.device(device)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        if _autocast_applies(options, device):
            stack.enter_context(torch.autocast(device.type, dtype=options.autocast_dtype))
        yield


def inference_options(precision: str = "fp32", device: torch.device | str = "cpu") -> InferenceOptions | None:
    """The options of ``--precision``: None (plain eager float32) for ``fp32``; bf16 autocast with BN folding and
    channels-last for ``bf16``, and for ``auto`` where :func:`mpat_nb.precision.resolve_precision` picks bf16."""
    resolved = resolve_precision(precision, device)
    return None if resolved.dtype is None else InferenceOptions(autocast=resolved.name)


def _autocast_applies(options: InferenceOptions, device: torch.device) -> bool:
    return options.autocast is not None and (device.type == "cuda" or (device.type == "cpu" and options.autocast == "bf16"))


def fuse_conv_batchnorm(model: nn.Module) -> int:
    """Fold every foldable conv -> BN pair of ``model`` in place (BN replaced by ``nn.Identity``).

    The model must be in eval mode. Returns the number of BN layers folded; the others are left as they are.
    """
    if model.training:
        raise ValueError("fuse_conv_batchnorm needs an eval-mode model (call model.eval() first): in training "
                         "mode BN normalises with batch statistics, which cannot be folded")
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for conv_name, bn_name in zip(names, names[1:]):
                folded += _fold_pair(module, conv_name, bn_name)
        else:
            for cls, pairs in FOLDABLE_PAIRS.items():
                if isinstance(module, cls):
                    folded += sum(_fold_pair(module, conv_name, bn_name) for conv_name, bn_name in pairs)
    return folded


def _fold_pair(parent: nn.Module, conv_name: str, bn_name: str) -> int:
    """Fold ``parent.<bn_name>`` into ``parent.<conv_name>`` if both are what they should be; 1 if folded."""
    conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
    if not (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.running_mean is not None
            and bn.running_var is not None and conv.out_channels == bn.num_features):
        return 0
    fused = fuse_conv_bn_eval(conv, bn)                       # W' = s W, b' = s (b - mu) + beta (module docstring)
    setattr(parent, conv_name, fused)
    setattr(parent, bn_name, nn.Identity())
    return 1


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _warn_unusable_options(options: InferenceOptions, device: torch.device) -> None:
    ignored = [name for name, on in (("autocast", options.autocast is not None and not _autocast_applies(options, device)),
                                     ("cudnn_benchmark", options.cudnn_benchmark and device.type != "cuda")) if on]
    if ignored:
        warnings.warn(f"InferenceOptions {', '.join(ignored)} cannot be used on {device.type} (autocast: bf16 on a "
                      f"CPU or CUDA, fp16 on CUDA; cudnn_benchmark: CUDA); ignored", stacklevel=3)


__all__ = ["AUTOCAST_DTYPES", "FOLDABLE_PAIRS", "InferenceOptions", "fuse_conv_batchnorm", "inference_context",
           "inference_options", "prepare_for_inference"]
