"""Presets and the method's open choices, in one place.

* :class:`SpatialNetConfig` describes a SpatialNet architecture; :data:`SPATIAL_PRESETS` holds three of them:
  ``paper`` (the supplementary's 4-stack, 256-channel, 512 -> 128 network), ``small`` (a Colab T4 GPU) and
  ``tiny`` (a 2-core CPU and CI). :func:`get_spatial_config` turns a name into a config.
* Every choice the paper leaves open (tagged [I] in ``docs/method.md``) that more than one module needs is a
  module-level constant below, with its default and a one-line reason. Change it here, nowhere else.

Provenance tags as in ``docs/method.md``: [Supp] supplementary, [B] base paper (Associative Embedding, AE),
[I] our choice; "docs/method.md 6, choice n" is row n of its table of open choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from mpat_nb.skeleton import NUM_JOINTS
from mpat_nb.utils import InputError

# ----------------------------------------------------------------------------------------------
# Targets and losses (docs/method.md 2.2-2.5 and 6)
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
#: other maps [I: docs/method.md 6, choice 7]. A constant (not the output size) so a value means the same
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
      dominate a narrow network (docs/method.md 2.1).
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
    # tiny: one wide stack; on a 2-core CPU width buys more than a second stack (the width / stacks trial in
    # mpat_nb/weights/README.md).
    "tiny": SpatialNetConfig(
        name="tiny", num_stacks=1, channels=96, hourglass_depth=4, increase=32,
        input_size=256, output_size=64, stem_channels=16,
        description="a 2-core CPU and CI: 1 stack, 96 ch, 256 -> 64",
    ),
}


def get_spatial_config(name_or_config: str | SpatialNetConfig | Mapping[str, Any]) -> SpatialNetConfig:
    """The SpatialNet config for a preset name, a config (returned as is) or a dict (as saved in checkpoints)."""
    return _resolve_config(name_or_config, SpatialNetConfig, SPATIAL_PRESETS, "SpatialNet")


def _resolve_config(name_or_config, config_class, presets: Mapping[str, Any], network: str):
    """A ``config_class`` from a preset name of ``presets``, an instance (returned as is) or a dict of its fields."""
    if isinstance(name_or_config, config_class):
        return name_or_config
    if isinstance(name_or_config, Mapping):
        known = {f.name for f in dataclasses.fields(config_class)}
        unknown = sorted(set(name_or_config) - known)
        if unknown:
            raise InputError(f"unknown {config_class.__name__} fields {unknown}; known fields: {sorted(known)}")
        # lists (e.g. from JSON) back to the tuples the dataclasses hold
        return config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in name_or_config.items()})
    if isinstance(name_or_config, str) and name_or_config in presets:
        return presets[name_or_config]
    raise InputError(f"unknown {network} preset {name_or_config!r}; choose one of {sorted(presets)}")


# ----------------------------------------------------------------------------------------------
# TemporalNet (docs/method.md 3): open choices and presets
# ----------------------------------------------------------------------------------------------
#: Margin of the batch-hard triplet loss on L2-normalised Human Embeddings [I: docs/method.md 6, choice 15; the
#: usual re-identification value (Hermans et al. 2017 use 0.2-0.3); on unit vectors distances lie in [0, 2]].
HE_TRIPLET_MARGIN = 0.3

#: Weights of the TemporalNet losses [I: both 1]. With SpatialNet frozen the two branches share no parameter, so
#: the weights move no optimum; but they do set the gradient scale, and Adam is scale-free only while gradients
#: are well above its eps (1e-8): with L_TVF weighted 1e-4 (as L_SIE) the TIE branch's gradients were measured
#: at 1e-6 down to 4.5e-9 per parameter, so it would barely learn. (End to end they would matter again.)
#: Treat as read-only; copy it before changing a weight.
TEMPORAL_LOSS_WEIGHTS: dict[str, float] = {"he": 1.0, "tvf": 1.0}

#: Largest frame gap |t - t'| of a training pair [Supp: "range-5 temporal window"].
MAX_FRAME_GAP = 5


@dataclass(frozen=True)
class TemporalNetConfig:
    """Architecture of TemporalNet: the Human Embedding (HE) and Temporal Instance Embedding (TIE) branches.

    - ``name``: preset name (stored in checkpoints).
    - ``spatial_preset``: the SpatialNet preset whose outputs it reads; ``feature_channels`` must equal that
      preset's ``channels`` (checked by :meth:`check_spatial`).
    - ``feature_channels``: C of SpatialNet's low-level features [Supp: 256]. ``num_joints``: K [15].
    - ``roi_size``: (h, w) of the RoI-Align grid per person [I: docs/method.md 6, choice 14: 32 x 16, people are
      tall]. ``he_stage_blocks`` / ``he_stage_planes`` / ``he_stage_strides``: bottleneck blocks, bottleneck
      widths (a block outputs 4 x planes) and first-block stride of the HE stages res3, res4, res5. The paper
      preset is ResNet-50's res3-res5 unchanged [I]: SpatialNet's 256-d stride-4 features are exactly what
      ResNet-50's res2 hands to res3, so an ImageNet ResNet-50 initialises every HE weight [Supp: the HE
      branch starts from ImageNet ResNet-50]. res5 needs >= 2 blocks (res5a and res5b feed the mid level).
    - ``mid_level_dim``: width of the fc on [GAP(res5a), GAP(res5b)] [Supp: 1024]. The high-level vector is
      GAP of the last res5 block (4 x ``he_stage_planes[-1]``, 2048 for ResNet-50), so HE has
      ``mid_level_dim + 4 * planes[-1]`` dimensions [Supp: 3072].
    - ``tie_channels``: width after the 1x1 reduction of the 2 (C + K + 2) input channels [I: 256, the
      SpatialNet width]; ``tie_hourglass_depth`` / ``tie_increase``: the one hourglass stage [Supp; I: as
      SpatialNet's]; ``tie_head_convs``: 3x3 conv-BN-ReLU layers before the 1x1 prediction [Supp: "a few";
      I: 2].
    - ``tie_residual``: predict T = v^(t-1) + dT and T' = v^(t) + dT' (SpatialNet's SVF of the frame the field
      lives on, plus a learned correction, the last conv starting at zero) instead of T and T' directly
      [I: the paper predicts the fields directly; T*(p) = c^(t) - p is the SVF target c^(t-1) - p plus the
      person's motion, so the residual starts at "nobody moves, as SpatialNet sees it" and learns the motion].
    - ``he_image_input``: HE also reads the RGB pixels of each box (RoI-Align on the normalised input image,
      3 more channels into res3) [I: the paper's HE reads only the shared features; a small SpatialNet trained
      for pose keeps little colour in its features, and colour is what tells synthetic people apart].
    - ``description``: one line for tables and ``--help``.
    """

    name: str
    spatial_preset: str
    feature_channels: int = 256
    num_joints: int = NUM_JOINTS
    roi_size: tuple[int, int] = (32, 16)
    he_stage_blocks: tuple[int, int, int] = (4, 6, 3)
    he_stage_planes: tuple[int, int, int] = (128, 256, 512)
    he_stage_strides: tuple[int, int, int] = (2, 2, 2)
    mid_level_dim: int = 1024
    tie_channels: int = 256
    tie_hourglass_depth: int = 4
    tie_increase: int = 128
    tie_head_convs: int = 2
    tie_residual: bool = False
    he_image_input: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        for field in ("feature_channels", "num_joints", "mid_level_dim", "tie_channels", "tie_hourglass_depth"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"TemporalNetConfig.{field} must be a positive int, got {value!r}")
        for field in ("roi_size", "he_stage_blocks", "he_stage_planes", "he_stage_strides"):
            value = getattr(self, field)
            if not (isinstance(value, tuple) and all(isinstance(v, int) and v >= 1 for v in value)):
                raise InputError(f"TemporalNetConfig.{field} must be a tuple of positive ints, got {value!r}")
        if len(self.roi_size) != 2:
            raise InputError(f"TemporalNetConfig.roi_size must be (h, w), got {self.roi_size}")
        if not len(self.he_stage_blocks) == len(self.he_stage_planes) == len(self.he_stage_strides) >= 1:
            raise InputError("TemporalNetConfig.he_stage_blocks, he_stage_planes and he_stage_strides need one "
                             f"entry per stage, got {self.he_stage_blocks}, {self.he_stage_planes}, "
                             f"{self.he_stage_strides}")
        if self.he_stage_blocks[-1] < 2:
            raise InputError(f"the last HE stage (res5) needs >= 2 blocks for res5a and res5b, got "
                             f"{self.he_stage_blocks[-1]}")
        if self.tie_increase < 0 or self.tie_head_convs < 0:
            raise InputError(f"TemporalNetConfig.tie_increase and tie_head_convs must be >= 0, got "
                             f"{self.tie_increase} and {self.tie_head_convs}")
        if self.tie_channels % 2 or self.tie_increase % 2:
            raise InputError("TemporalNetConfig.tie_channels and tie_increase must be even "
                             "(a residual block's bottleneck is half its width)")

    @property
    def high_level_dim(self) -> int:
        """Width of the last res5 block's output (a bottleneck outputs 4 x planes): 2048 for ResNet-50."""
        return 4 * self.he_stage_planes[-1]

    @property
    def human_embedding_dim(self) -> int:
        """D of the Human Embedding: mid level + high level (1024 + 2048 = 3072 in the paper)."""
        return self.mid_level_dim + self.high_level_dim

    @property
    def tie_in_channels(self) -> int:
        """Channels TIE concatenates: features, heatmaps and SVF of both frames, 2 (C + K + 2)."""
        return 2 * (self.feature_channels + self.num_joints + 2)

    def check_spatial(self, spatial: SpatialNetConfig | str) -> None:
        """Raise InputError unless a SpatialNet config produces the features and heatmaps this TemporalNet reads."""
        spatial = get_spatial_config(spatial)
        if (spatial.channels, spatial.num_joints) != (self.feature_channels, self.num_joints):
            raise InputError(f"TemporalNet {self.name!r} reads {self.feature_channels}-channel features and "
                             f"{self.num_joints} heatmaps, SpatialNet {spatial.name!r} gives {spatial.channels} and "
                             f"{spatial.num_joints}: use TemporalNet preset {spatial.name!r} if there is one, or "
                             f"set feature_channels={spatial.channels}")


TEMPORAL_PRESETS: dict[str, TemporalNetConfig] = {
    "paper": TemporalNetConfig(
        name="paper", spatial_preset="paper", feature_channels=256,
        description="the paper's TemporalNet: ResNet-50 res3-res5 HE (3072-d), 256-ch one-stage-hourglass TIE",
    ),
    # small: reads SpatialNet small (128 ch, 64 x 64 grid), for a Colab GPU (notebook 07). The tiny design at twice
    # its width: HE stages at 1/4 of ResNet-50's widths, two blocks in res3 and res4 (HE: 256 + 512 = 768-d), the
    # tiny RoI and strides (same grid), a 128-ch residual TIE with two head convs [I: not trained beyond notebook 07].
    "small": TemporalNetConfig(
        name="small", spatial_preset="small", feature_channels=128,
        roi_size=(16, 8), he_stage_blocks=(2, 2, 3), he_stage_planes=(32, 64, 128), he_stage_strides=(1, 2, 2),
        mid_level_dim=256, tie_channels=128, tie_hourglass_depth=4, tie_increase=64, tie_head_convs=2,
        tie_residual=True, he_image_input=True,
        description="a Colab GPU: 768-d HE (1/4-width ResNet stages, features + RGB), 128-ch residual TIE, "
                    "reads SpatialNet small",
    ),
    # tiny: reads SpatialNet tiny (96 ch, 64 x 64 grid). Every HE width is 1/8 of ResNet-50's and res3/res4
    # keep one block each (res5 keeps three: a, b and the high-level c); the RoI is halved (people are ~20-40
    # output pixels tall at 64 x 64) and res3 does not stride, so res5 still sees a 4 x 2 grid. HE: 128 + 256.
    "tiny": TemporalNetConfig(
        name="tiny", spatial_preset="tiny", feature_channels=96,
        roi_size=(16, 8), he_stage_blocks=(1, 1, 3), he_stage_planes=(16, 32, 64), he_stage_strides=(1, 2, 2),
        mid_level_dim=128, tie_channels=64, tie_hourglass_depth=4, tie_increase=32, tie_head_convs=1,
        tie_residual=True, he_image_input=True,
        description="a 2-core CPU and CI: 384-d HE (1/8-width ResNet stages, features + RGB), 64-ch residual TIE, "
                    "reads SpatialNet tiny",
    ),
}


def get_temporal_config(name_or_config: str | TemporalNetConfig | Mapping[str, Any]) -> TemporalNetConfig:
    """The TemporalNet config for a preset name, a config (returned as is) or a dict (as saved in checkpoints)."""
    return _resolve_config(name_or_config, TemporalNetConfig, TEMPORAL_PRESETS, "TemporalNet")
