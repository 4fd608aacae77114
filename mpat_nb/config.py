"""Presets and the method's open choices, in one place.

* :class:`SpatialNetConfig` describes a SpatialNet architecture; :data:`SPATIAL_PRESETS` holds three of them:
  ``paper`` (the supplementary's 4-stack, 256-channel, 512 -> 128 network), ``small`` (a Colab T4 GPU) and
  ``tiny`` (a 2-core CPU and CI). :func:`get_spatial_config` turns a name into a config.
* Every choice the paper leaves open (tagged [I] in ``docs/method.md``) that more than one module needs is a
  module-level constant below, with its default and a one-line reason. Change it here, nowhere else.

Provenance tags as in ``method.md``: [Supp] supplementary, [B] base paper (Associative Embedding, AE),
[I] our choice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from mpat_nb.skeleton import NUM_JOINTS
from mpat_nb.utils import InputError

# ----------------------------------------------------------------------------------------------
# Targets and losses (method.md 2.2-2.5 and 6)
# ----------------------------------------------------------------------------------------------
#: Gaussian std of the heatmap targets in pixels at a 128 x 128 output [B: AE uses output_res / 64];
#: the codec scales it with the output size (1 px at 64 x 64).
HEATMAP_SIGMA = 2.0

#: The six ordinal maps, in channel order [Supp names three relations; I: each in both directions].
ORDINAL_RELATIONS: tuple[str, ...] = (
    "left_to_right", "right_to_left",
    "top_to_bottom", "bottom_to_top",
    "far_to_near", "near_to_far",
)

#: Z in v* = (c_n - p) / Z: SVF targets in units of 128 output pixels, so they are O(0.1-1) like the
#: other maps [I: method.md 6, choice 7]. A constant (not the output size) so a value means the same
#: distance in every preset.
SVF_NORMALISER = 128.0

#: Weights of the loss terms [Supp: det 1, KE 1e-3, aux 1e-4, SIE 1e-4, PGG 1e-4].
#: Treat as read-only; copy it (``dict(LOSS_WEIGHTS)``) before changing a weight.
LOSS_WEIGHTS: dict[str, float] = {"det": 1.0, "ke": 1e-3, "sie": 1e-4, "aux": 1e-4, "pgg": 1e-4}

# ----------------------------------------------------------------------------------------------
# Model details the paper does not give
# ----------------------------------------------------------------------------------------------
#: SpatialNet's output grid is the input / 4 [Supp: 512 -> 128]; fixed by the stem (conv /2, pool /2).
OUTPUT_STRIDE = 4

#: Images enter SpatialNet as float RGB in [0, 1] and are normalised inside the model with these fixed
#: statistics [I: the ImageNet values; any fixed values work, they just centre the input near 0, std 1].
IMAGE_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGE_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Std of the initial weights of the heatmap channels of every prediction head (bias 0), so initial
#: heatmaps are ~0 and the MSE starts at the target energy instead of fitting noise [I: as HRNet/mmpose].
HEATMAP_HEAD_INIT_STD = 1e-3


# ----------------------------------------------------------------------------------------------
# SpatialNet presets
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpatialNetConfig:
    """Architecture of SpatialNet (a stacked hourglass with a KE / SVF / ordinal head).

    - ``name``: preset name (stored in checkpoints).
    - ``num_stacks``: S, hourglasses in a row, each with its own supervised prediction [Supp: 4].
    - ``channels``: C, feature width between the stacks; also the width of the "low-level features" that
      TemporalNet consumes [Supp: 256].
    - ``hourglass_depth``: times each hourglass halves the resolution [B: AE 4; 128 -> 8 at paper size].
    - ``increase``: channels added at every lower hourglass level [B: AE 128, so 256 -> 768 at the
      bottom]. The small presets scale it with the width (C / 2, the paper's ratio): AE's fixed 128 would
      dominate a narrow network (method.md 2.1).
    - ``input_size`` / ``output_size``: square input side and output side = input / 4 [Supp: 512 / 128].
    - ``num_joints``: K [PoseTrack: 15]. ``num_ordinal``: ordinal maps [I: 6, see ORDINAL_RELATIONS].
    - ``stem_channels``: width of the stem's first 7x7 conv; the stem's middle width is twice this
      [B: AE 64 -> 128 -> 256].
    - ``description``: one line for tables and ``--help``.
    """

    name: str
    num_stacks: int
    channels: int
    hourglass_depth: int = 4
    increase: int = 128
    input_size: int = 512
    output_size: int = 128
    num_joints: int = NUM_JOINTS
    num_ordinal: int = len(ORDINAL_RELATIONS)
    stem_channels: int = 64
    description: str = ""

    def __post_init__(self) -> None:
        for field in ("num_stacks", "channels", "hourglass_depth", "input_size", "output_size", "num_joints",
                      "stem_channels"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"SpatialNetConfig.{field} must be a positive int, got {value!r}")
        if self.increase < 0 or self.num_ordinal < 0:
            raise InputError(f"SpatialNetConfig.increase and num_ordinal must be >= 0, got "
                             f"{self.increase} and {self.num_ordinal}")
        if self.channels % 2 or self.stem_channels % 2 or self.increase % 2:
            raise InputError("SpatialNetConfig.channels, stem_channels and increase must be even "
                             "(a residual block's bottleneck is half its width)")
        if self.input_size % self.input_multiple:
            raise InputError(f"SpatialNetConfig.input_size={self.input_size} must be a multiple of "
                             f"{self.input_multiple} (stride {OUTPUT_STRIDE} x 2**hourglass_depth)")
        if self.output_size * OUTPUT_STRIDE != self.input_size:
            raise InputError(f"SpatialNetConfig.output_size must be input_size / {OUTPUT_STRIDE} = "
                             f"{self.input_size // OUTPUT_STRIDE}, got {self.output_size}")

    @property
    def input_multiple(self) -> int:
        """Input height and width must be multiples of this: the stem's /4 times the hourglass's 2**depth."""
        return OUTPUT_STRIDE * 2 ** self.hourglass_depth

    @property
    def head_channels(self) -> int:
        """Prediction channels per stack: K heatmaps + K KE maps + 2 SVF + ordinal maps."""
        return 2 * self.num_joints + 2 + self.num_ordinal


SPATIAL_PRESETS: dict[str, SpatialNetConfig] = {
    "paper": SpatialNetConfig(
        name="paper", num_stacks=4, channels=256, hourglass_depth=4, increase=128,
        input_size=512, output_size=128, stem_channels=64,
        description="the paper's SpatialNet (AE backbone): 4 stacks, 256 ch, 512 -> 128",
    ),
    "small": SpatialNetConfig(
        name="small", num_stacks=2, channels=128, hourglass_depth=4, increase=64,
        input_size=256, output_size=64, stem_channels=32,
        description="a Colab T4 GPU: 2 stacks, 128 ch, 256 -> 64",
    ),
    "tiny": SpatialNetConfig(
        name="tiny", num_stacks=2, channels=32, hourglass_depth=4, increase=16,
        input_size=256, output_size=64, stem_channels=16,
        description="a 2-core CPU and CI: 2 stacks, 32 ch, 256 -> 64",
    ),
}


def get_spatial_config(name_or_config: str | SpatialNetConfig | Mapping[str, Any]) -> SpatialNetConfig:
    """The SpatialNet config for a preset name, a config (returned as is) or a dict (as saved in checkpoints)."""
    if isinstance(name_or_config, SpatialNetConfig):
        return name_or_config
    if isinstance(name_or_config, Mapping):
        known = {f.name for f in dataclasses.fields(SpatialNetConfig)}
        unknown = sorted(set(name_or_config) - known)
        if unknown:
            raise InputError(f"unknown SpatialNetConfig fields {unknown}; known fields: {sorted(known)}")
        return SpatialNetConfig(**name_or_config)
    if isinstance(name_or_config, str) and name_or_config in SPATIAL_PRESETS:
        return SPATIAL_PRESETS[name_or_config]
    raise InputError(f"unknown SpatialNet preset {name_or_config!r}; choose one of {sorted(SPATIAL_PRESETS)}")
