"""SpatialNet: one frame in; heatmaps, Keypoint Embedding, Spatial Vector Field and ordinal maps out.

Shape glossary: B batch, S stacks, K joints (15), C feature channels, H x W the output grid (input / 4).

Input convention: ``images (B, 3, H_in, W_in)`` float RGB in [0, 1]; the model normalises them itself with
the fixed ``config.IMAGE_MEAN`` / ``IMAGE_STD``. H_in and W_in must be multiples of
``config.input_multiple`` = 4 * 2**hourglass_depth (64 for every preset): the stem divides by 4 and each
hourglass halves the grid ``hourglass_depth`` times.

Each stack's 1x1 prediction head has ``2K + 2 + 6`` linear channels (no sigmoid, as in AE), split in order:

==========  ==========  ===========================================================================
channels    name        meaning
==========  ==========  ===========================================================================
0 .. K-1    heatmaps    one detection map per joint, target = Gaussians (docs/method.md 2.2)
K .. 2K-1   KE          Keypoint Embedding: one scalar tag map per joint (2.3)
2K, 2K+1    svf         Spatial Vector Field v(p) = (dx, dy) / Z, Z = SVF_NORMALISER; SIE(p) = p + Z v(p)
2K+2 ..     ordinal     six ordinal maps in ``config.ORDINAL_RELATIONS`` order (2.4)
==========  ==========  ===========================================================================

Also here: :func:`count_parameters`, :func:`estimate_flops` and :func:`preset_table` (parameters and FLOPs of
every preset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from mpat_nb.codec import instance_embedding, svf_to_pixels
from mpat_nb.config import (
    HEATMAP_HEAD_INIT_STD,
    IMAGE_MEAN,
    IMAGE_STD,
    SPATIAL_PRESETS,
    SpatialNetConfig,
    get_spatial_config,
)
from mpat_nb.models.hourglass import StackedHourglass


@dataclass
class SpatialNetOutput:
    """Everything SpatialNet predicts for a batch, one entry per stack (intermediate supervision).

    heatmaps: (B, S, K, H, W); keypoint_embedding: (B, S, K, H, W); svf: (B, S, 2, H, W) in units of
    ``SVF_NORMALISER`` output pixels, channel 0 = x, 1 = y; ordinal: (B, S, 6, H, W);
    features: (B, C, H, W), the last stack's pre-head features (TemporalNet's "low-level features").
    The ``*_final`` properties give the last stack, which is the one used at inference.
    """

    heatmaps: torch.Tensor
    keypoint_embedding: torch.Tensor
    svf: torch.Tensor
    ordinal: torch.Tensor
    features: torch.Tensor

    @property
    def num_stacks(self) -> int:
        return self.heatmaps.shape[1]

    @property
    def heatmaps_final(self) -> torch.Tensor:
        return self.heatmaps[:, -1]                  # (B, K, H, W)

    @property
    def keypoint_embedding_final(self) -> torch.Tensor:
        return self.keypoint_embedding[:, -1]        # (B, K, H, W)

    @property
    def svf_final(self) -> torch.Tensor:
        return self.svf[:, -1]                       # (B, 2, H, W)

    @property
    def ordinal_final(self) -> torch.Tensor:
        return self.ordinal[:, -1]                   # (B, 6, H, W)

    def spatial_instance_embedding(self, stack: int = -1) -> torch.Tensor:
        """SIE(p) = p + v(p) in output pixels (x, y): (B, 2, H, W). docs/method.md 2.5, Eq. (1)."""
        return instance_embedding(svf_to_pixels(self.svf[:, stack]))                # (B, 2, H, W)


class SpatialNet(nn.Module):
    """The per-frame network of the paper: a stacked hourglass with a 2K + 2 + 6 channel head per stack.

    config: a :class:`SpatialNetConfig` or a preset name (``"tiny"``, ``"small"``, ``"paper"``).
    forward(images (B, 3, H_in, W_in) float in [0, 1]) -> :class:`SpatialNetOutput` on the H_in/4 x W_in/4 grid.
    """

    def __init__(self, config: SpatialNetConfig | str = "tiny"):
        super().__init__()
        self.config = get_spatial_config(config)
        self.backbone = StackedHourglass(self.config, out_channels=self.config.head_channels)
        # Fixed input normalisation; not persistent, so checkpoints hold only learned weights.
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)
        # Decoding bandwidths tuned for these weights (a checkpoint's "decode" entry, set by the loaders:
        # mpat_nb.checkpoints.decode_tuning); empty: DecodeConfig's defaults. Read by decode.tuned_decode_config.
        self.decode_tuning: dict[str, float] = {}
        self._init_heatmap_heads()

    def _init_heatmap_heads(self) -> None:
        """Heatmap channels start near 0 (tiny weights, zero bias): the MSE then starts at the target energy."""
        k = self.config.num_joints
        with torch.no_grad():
            for head in self.backbone.predictions:
                head.weight[:k].normal_(0.0, HEATMAP_HEAD_INIT_STD)
                head.bias[:k].zero_()

    def check_input(self, images: torch.Tensor) -> None:
        """Raise a ValueError naming the fix unless images is float (B, 3, H, W), H and W multiples of
        ``config.input_multiple``."""
        multiple = self.config.input_multiple
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"SpatialNet expects images of shape (B, 3, H, W) (RGB, channels first), got "
                             f"{tuple(images.shape)}: add a batch axis with images[None] or permute(0, 3, 1, 2) "
                             f"an (B, H, W, 3) batch")
        if not images.is_floating_point():
            raise ValueError(f"SpatialNet expects float images in [0, 1], got dtype {images.dtype}: "
                             f"use images.float() / 255")
        height, width = images.shape[-2:]
        if height % multiple or width % multiple:
            fixed = (-(-height // multiple) * multiple, -(-width // multiple) * multiple)
            raise ValueError(f"SpatialNet ({self.config.name}) needs H and W multiples of {multiple} "
                             f"(stride 4 x 2**{self.config.hourglass_depth} hourglass pooling), got ({height}, "
                             f"{width}): pad or resize the images to e.g. {fixed}")

    def forward(self, images: torch.Tensor) -> SpatialNetOutput:
        self.check_input(images)
        x = (images - self.mean) / self.std                                       # (B, 3, H_in, W_in)
        predictions, features = self.backbone(x)          # (B, S, 2K + 2 + 6, H, W), (B, C, H, W)
        k = self.config.num_joints
        heatmaps, keypoint_embedding, svf, ordinal = predictions.split(
            [k, k, 2, self.config.num_ordinal], dim=2)    # (B, S, K | K | 2 | 6, H, W)
        return SpatialNetOutput(heatmaps, keypoint_embedding, svf, ordinal, features)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (works on ``meta``-device models too)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def estimate_flops(config: SpatialNetConfig | str | Mapping[str, Any],
                   input_size: int | tuple[int, int] | None = None) -> float:
    """GFLOPs of one forward pass on one image, counted as 2 x multiply-adds (the usual convention).

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` on a ``meta``-device model, so even ``paper``
    costs no memory or time. Only convolutions (and matmuls) count; BN, ReLU, pooling and additions are
    left out (a few per cent). input_size: side or (H, W); default ``config.input_size``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    config = get_spatial_config(config)
    size = config.input_size if input_size is None else input_size
    height, width = (size, size) if isinstance(size, int) else size
    with torch.device("meta"):
        model = SpatialNet(config).eval()
        images = torch.zeros(1, 3, height, width)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(images)
    return counter.get_total_flops() / 1e9


def preset_table(presets: Mapping[str, SpatialNetConfig] | None = None) -> str:
    """A text table: name, stacks, channels, increase, input/output size, parameters (M), GFLOPs per image."""
    presets = SPATIAL_PRESETS if presets is None else presets
    lines = [f"{'preset':8s} {'stacks':>6s} {'ch':>4s} {'incr':>4s} {'input':>6s} {'output':>6s} "
             f"{'params':>8s} {'GFLOPs':>7s}"]
    for name, config in presets.items():
        with torch.device("meta"):
            params = count_parameters(SpatialNet(config))
        lines.append(f"{name:8s} {config.num_stacks:6d} {config.channels:4d} {config.increase:4d} "
                     f"{config.input_size:6d} {config.output_size:6d} {params / 1e6:7.2f}M "
                     f"{estimate_flops(config):7.1f}")
    lines.append("GFLOPs = 2 x conv multiply-adds for one image at the preset's input size.")
    return "\n".join(lines)


__all__ = ["SpatialNet", "SpatialNetOutput", "count_parameters", "estimate_flops", "preset_table"]
