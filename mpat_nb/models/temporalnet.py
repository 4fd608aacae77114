"""TemporalNet: links the people of frames t-1 and t (docs/method.md 3, supplementary 1.2-1.3).

Shape glossary: B batch (frame pairs), C SpatialNet feature channels, K joints, H x W the output grid,
N_b people (proposals) of image b, D = ``config.human_embedding_dim``.

Two branches read what a frozen SpatialNet computed for both frames:

* :class:`HumanEmbeddingBranch` (HE, appearance): RoI-Align of each person box on the low-level features
  ``(B, C, H, W)`` -> ResNet-50-style stages res3, res4, res5 (torchvision's ``Bottleneck``) -> mid level
  fc([GAP(res5a), GAP(res5b)]) (1024-d) and high level GAP(res5c) (2048-d) -> HE = [mid, high], 3072-d.
* :class:`TemporalInstanceBranch` (TIE, geometry): [features, heatmaps, SVF] of t-1 and t -> 1x1 conv ->
  one hourglass -> convs -> the temporal vector fields T (t-1 -> t) and T' (t -> t-1), 2 channels each.

Boxes are ``(x1, y1, x2, y2)`` in the **features' coordinate frame**: output-grid pixels with the codec's
pixel-centre convention (pixel (row y, column x) is centred at (x, y) and covers [x - 0.5, x + 0.5]), so a box
covering pixel columns 10..19 has x1 = 9.5, x2 = 19.5 (:func:`mpat_nb.codec_temporal.boxes_from_joints`
builds them). TVF values are in units of ``SVF_NORMALISER`` output pixels, like the SVF.
SpatialNet is frozen while TemporalNet trains [I: docs/method.md 3.2]: compute its outputs under ``torch.no_grad()``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, conv1x1
from torchvision.ops import roi_align

from mpat_nb.codec import instance_embedding, svf_to_pixels
from mpat_nb.config import IMAGE_MEAN, IMAGE_STD, TemporalNetConfig, get_temporal_config
from mpat_nb.models.hourglass import Hourglass, conv_bn_relu
from mpat_nb.utils import InputError

#: Bilinear samples per RoI bin and axis [I: Mask R-CNN's 2; a fixed count keeps the cost independent of
#: the box size, unlike torchvision's adaptive default].
ROI_SAMPLING_RATIO = 2

#: Our HE stages and the torchvision ResNet-50 layers they are initialised from (res2 = ``layer1`` is
#: SpatialNet's job: its 256-d stride-4 features replace it).
RESNET50_STAGES: dict[str, str] = {"res3": "layer2", "res4": "layer3", "res5": "layer4"}


@dataclass
class TemporalNetOutput:
    """What TemporalNet predicts for a batch of frame pairs (t-1, t).

    human_embedding_previous / human_embedding_current: one ``(N_b, D)`` tensor per image (``(0, D)`` for an
    image without proposals), in the order of its boxes; not normalised (the loss and the tracker L2-normalise).
    tvf_forward: (B, 2, H, W) T(p) on frame t-1's grid, pointing to the same person's centre in frame t;
    tvf_backward: (B, 2, H, W) T'(q) on frame t's grid, pointing to the centre in frame t-1. Channel 0 = x,
    1 = y, in units of ``SVF_NORMALISER`` output pixels.
    """

    human_embedding_previous: list[torch.Tensor]
    human_embedding_current: list[torch.Tensor]
    tvf_forward: torch.Tensor
    tvf_backward: torch.Tensor

    def temporal_instance_embedding(self, direction: str = "forward") -> torch.Tensor:
        """TIE(p) = p + Z T(p) in output pixels (x, y): (B, 2, H, W). docs/method.md 3.2. direction: forward | backward."""
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        return instance_embedding(svf_to_pixels(self.tvf_forward if direction == "forward" else self.tvf_backward))


class HumanEmbeddingBranch(nn.Module):
    """HE: RoI-Align -> res3, res4, res5 -> [fc(GAP(res5a), GAP(res5b)), GAP(res5c)] (supplementary 1.2).

    config: a :class:`TemporalNetConfig` or preset name. resnet50_weights: optional path of a torchvision
    ResNet-50 state dict (see :meth:`load_resnet50`); default: train from scratch.
    forward(features (B, C, H, W), boxes: B tensors (N_b, 4), images (B, 3, S, S) in [0, 1] or None) -> B tensors
    (N_b, D). With ``config.he_image_input`` the images are required: each box's RGB pixels, RoI-Aligned on the
    normalised input image at its own resolution, join the features as 3 more channels.
    """

    def __init__(self, config: TemporalNetConfig | str = "tiny", resnet50_weights: str | Path | None = None):
        super().__init__()
        self.config = config = get_temporal_config(config)
        inplanes = config.feature_channels + (3 if config.he_image_input else 0)
        for name, blocks, planes, stride in zip(RESNET50_STAGES, config.he_stage_blocks, config.he_stage_planes,
                                                config.he_stage_strides):
            setattr(self, name, _resnet_stage(inplanes, planes, blocks, stride))      # self.res3, res4, res5
            inplanes = planes * Bottleneck.expansion
        for module in self.modules():        # torchvision ResNet's initialisation, for training from scratch
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # mid level [Supp]: fc on [GAP(res5a), GAP(res5b)]; linear, as Yu et al.'s fusion layer [I]
        self.mid_level = nn.Linear(2 * config.high_level_dim, config.mid_level_dim)
        if resnet50_weights is not None:
            self.load_resnet50(resnet50_weights)
        # Fixed input normalisation of the RGB boxes (SpatialNet's); not persistent: checkpoints hold learned weights.
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

    def roi_features(self, features: torch.Tensor, boxes: Sequence[torch.Tensor],
                     images: torch.Tensor | None = None) -> torch.Tensor:
        """RoI-Align every box: features (B, C, H, W), B tensors (N_b, 4) -> (sum N_b, C, h, w), h x w = roi_size;
        with ``images`` (B, 3, S, S) in [0, 1], their normalised RGB boxes are appended: (sum N_b, C + 3, h, w).

        torchvision's ``aligned=True`` samples coordinate c at pixel-index c - 0.5 (pixel i covering [i, i + 1]);
        our boxes use the pixel-centre convention, so we shift them by + 0.5 first. In those corner coordinates a
        grid box maps onto the image by the scale S / H.
        """
        check_boxes(boxes, features)
        shifted = [b.to(features.device, features.dtype) + 0.5 for b in boxes]
        regions = roi_align(features, shifted, self.config.roi_size, spatial_scale=1.0,
                            sampling_ratio=ROI_SAMPLING_RATIO, aligned=True)
        if images is None:
            return regions
        scale = images.shape[-1] / features.shape[-1]                               # input pixels per grid pixel
        normalised = ((images.float() - self.mean) / self.std).to(features.dtype)  # (B, 3, S, S)
        pixels = roi_align(normalised, shifted, self.config.roi_size, spatial_scale=scale,
                           sampling_ratio=max(1, round(ROI_SAMPLING_RATIO * scale)), aligned=True)   # (L, 3, h, w)
        return torch.cat([regions, pixels], dim=1)

    def forward(self, features: torch.Tensor, boxes: Sequence[torch.Tensor],
                images: torch.Tensor | None = None) -> list[torch.Tensor]:
        if features.ndim != 4 or features.shape[1] != self.config.feature_channels:
            raise ValueError(f"HE expects SpatialNet features (B, {self.config.feature_channels}, H, W), got "
                             f"{tuple(features.shape)}: pass SpatialNetOutput.features of SpatialNet "
                             f"{self.config.spatial_preset!r}")
        if self.config.he_image_input:
            if images is None or images.ndim != 4 or images.shape[:2] != (features.shape[0], 3) \
                    or images.shape[-1] * features.shape[-2] != images.shape[-2] * features.shape[-1]:
                raise ValueError(f"HE {self.config.name!r} reads the RGB input images too: pass images (B, 3, S, S) in "
                                 f"[0, 1], the frames SpatialNet saw (features {tuple(features.shape)}), got "
                                 f"{None if images is None else tuple(images.shape)}")
        else:
            images = None
        regions = self.roi_features(features, boxes, images)                       # (L, C [+ 3], h, w)
        counts = [len(b) for b in boxes]
        if regions.shape[0] == 0:       # no proposal in the batch: BatchNorm must not see an empty batch
            empty = features.new_zeros(0, self.config.human_embedding_dim)
            return [empty for _ in counts]
        x = self.res4(self.res3(regions))                                          # (L, 4 planes_4, h', w')
        res5_outputs = []
        for block in self.res5:
            x = block(x)
            res5_outputs.append(x)                                                 # res5a, res5b, ..., res5c
        pooled = [out.mean(dim=(2, 3)) for out in res5_outputs]                    # GAP: (L, 4 planes_5) each
        mid = self.mid_level(torch.cat(pooled[:2], dim=1))                         # fc([res5a, res5b]): (L, 1024)
        high = pooled[-1]                                                          # GAP(res5c): (L, 2048)
        return list(torch.cat([mid, high], dim=1).split(counts))                   # HE = [mid, high]: (N_b, 3072)

    def load_resnet50(self, path: str | Path) -> None:
        """Initialise res3-res5 from a torchvision ResNet-50 state dict file (the mid-level fc stays random).

        ImageNet weights cannot be downloaded here. Where they can::

            torch.save(torchvision.models.resnet50(weights="IMAGENET1K_V2").state_dict(), "resnet50.pth")

        then ``TemporalNet("paper", resnet50_weights="resnet50.pth")``. The file is read with
        ``weights_only=True``; a ``module.`` prefix (DataParallel) is stripped. torchvision's ``layer2``,
        ``layer3``, ``layer4`` become ``res3``, ``res4``, ``res5``; ``conv1``, ``layer1`` and ``fc`` are not
        used. Only a config with ResNet-50's stages (the ``paper`` preset) fits; anything else raises
        InputError naming the first mismatching tensor.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"ResNet-50 weights {path} do not exist: save a torchvision resnet50 state_dict there")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unpickling failure means a foreign file
            raise InputError(f"{path} cannot be read as a state dict ({type(error).__name__}): save it with "
                             "torch.save(model.state_dict(), path)") from None
        if not isinstance(state, Mapping):
            raise InputError(f"{path} holds a {type(state).__name__}, not a state dict: save model.state_dict()")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        renamed = {ours + key[len(theirs):]: value for ours, theirs in RESNET50_STAGES.items()
                   for key, value in state.items() if key.startswith(theirs + ".")}
        own = {k: v for k, v in self.state_dict().items() if k.split(".")[0] in RESNET50_STAGES}
        missing, unexpected = sorted(set(own) - set(renamed)), sorted(set(renamed) - set(own))
        wrong = [k for k in own if k in renamed and renamed[k].shape != own[k].shape]
        if missing or unexpected or wrong:
            details = (f"first wrong shape {wrong[0]}: file {tuple(renamed[wrong[0]].shape)} vs model "
                       f"{tuple(own[wrong[0]].shape)}" if wrong else
                       f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}")
            raise InputError(f"{path} does not fit HE {self.config.name!r} ({len(missing)} missing, {len(unexpected)} "
                             f"unexpected, {len(wrong)} wrong-shape tensors; {details}): it must be a torchvision "
                             "resnet50 state dict and the config must have ResNet-50's stages (preset 'paper')")
        self.load_state_dict(renamed, strict=False)


class TemporalInstanceBranch(nn.Module):
    """TIE: concat -> 1x1 conv -> one hourglass -> 3x3 convs -> 1x1 to T (2 ch) and T' (2 ch) (supplementary 1.3).

    forward(features, heatmaps, svf of frame t-1, then of frame t) with features (B, C, H, W), heatmaps
    (B, K, H, W), svf (B, 2, H, W); H and W multiples of 2**tie_hourglass_depth.
    Returns (tvf_forward, tvf_backward), each (B, 2, H, W).
    """

    def __init__(self, config: TemporalNetConfig | str = "tiny"):
        super().__init__()
        self.config = config = get_temporal_config(config)
        width = config.tie_channels
        self.reduce = conv_bn_relu(config.tie_in_channels, width)                   # 1x1: 2 (C + K + 2) -> width
        self.hourglass = Hourglass(config.tie_hourglass_depth, width, config.tie_increase)
        self.convs = nn.Sequential(*(nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False),
                                                   nn.BatchNorm2d(width), nn.ReLU(inplace=True))
                                     for _ in range(config.tie_head_convs)))
        self.predict = nn.Conv2d(width, 4, 1)                                       # [T_x, T_y, T'_x, T'_y]
        if config.tie_residual:               # start at T = v^(t-1), T' = v^(t): "nobody moves" (config.py)
            nn.init.zeros_(self.predict.weight)
            nn.init.zeros_(self.predict.bias)

    def forward(self, features_previous: torch.Tensor, heatmaps_previous: torch.Tensor, svf_previous: torch.Tensor,
                features_current: torch.Tensor, heatmaps_current: torch.Tensor,
                svf_current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = [features_previous, heatmaps_previous, svf_previous, features_current, heatmaps_current, svf_current]
        self._check(inputs)
        x = self.reduce(torch.cat(inputs, dim=1))                                   # (B, width, H, W)
        x = self.convs(self.hourglass(x))                                           # (B, width, H, W)
        tvf = self.predict(x)                                                       # (B, 4, H, W)
        if self.config.tie_residual:
            return svf_previous + tvf[:, :2], svf_current + tvf[:, 2:]              # T = v^(t-1) + dT, T' = v^(t) + dT'
        return tvf[:, :2], tvf[:, 2:]                                               # T (t-1 -> t), T' (t -> t-1)

    def _check(self, inputs: list[torch.Tensor]) -> None:
        c, k = self.config.feature_channels, self.config.num_joints
        expected = [c, k, 2] * 2
        names = ["features", "heatmaps", "svf"]
        reference = inputs[0].shape
        for i, (tensor, channels) in enumerate(zip(inputs, expected)):
            name = f"{names[i % 3]}_{'previous' if i < 3 else 'current'}"
            if tensor.ndim != 4 or tensor.shape[1] != channels:
                raise ValueError(f"TIE: {name} must be (B, {channels}, H, W), got {tuple(tensor.shape)}")
            if tensor.shape[0] != reference[0] or tensor.shape[2:] != reference[2:]:
                raise ValueError(f"TIE: {name} is {tuple(tensor.shape)} but features_previous is {tuple(reference)}: "
                                 "both frames must share B and the H x W grid; letterbox both frames to the same "
                                 "input size (mpat_nb.data.pairs does)")


class TemporalNet(nn.Module):
    """HE + TIE on the SpatialNet outputs of frames t-1 and t.

    config: a :class:`TemporalNetConfig` or preset name (``"tiny"``, ``"paper"``); resnet50_weights: see
    :meth:`HumanEmbeddingBranch.load_resnet50`.
    forward(previous, current, boxes_previous, boxes_current, images_previous, images_current) ->
    :class:`TemporalNetOutput`, where the images (B, 3, S, S) in [0, 1] are needed with ``he_image_input``, and previous /
    current are :class:`~mpat_nb.models.spatialnet.SpatialNetOutput` of frames t-1 and t (their ``features``,
    last-stack ``heatmaps_final`` and ``svf_final`` are read) and boxes_* are B tensors (N_b, 4) each.
    """

    def __init__(self, config: TemporalNetConfig | str = "tiny", resnet50_weights: str | Path | None = None):
        super().__init__()
        self.config = get_temporal_config(config)
        self.human_embedding = HumanEmbeddingBranch(self.config, resnet50_weights)
        self.temporal_instance = TemporalInstanceBranch(self.config)

    def forward(self, previous, current, boxes_previous: Sequence[torch.Tensor],
                boxes_current: Sequence[torch.Tensor], images_previous: torch.Tensor | None = None,
                images_current: torch.Tensor | None = None) -> TemporalNetOutput:
        tvf_forward, tvf_backward = self.temporal_instance(
            previous.features, previous.heatmaps_final, previous.svf_final,
            current.features, current.heatmaps_final, current.svf_final)
        # One HE pass for both frames: stack them as 2B images (their grids agree, TIE checked it).
        batch = previous.features.shape[0]
        if len(boxes_previous) != batch or len(boxes_current) != batch:
            raise ValueError(f"need one box tensor per image: {batch} images, got {len(boxes_previous)} and "
                             f"{len(boxes_current)} box tensors")
        images = torch.cat([images_previous, images_current]) if images_previous is not None else None
        embeddings = self.human_embedding(torch.cat([previous.features, current.features]),
                                          [*boxes_previous, *boxes_current], images)
        return TemporalNetOutput(embeddings[:batch], embeddings[batch:], tvf_forward, tvf_backward)


@torch.no_grad()
def frozen_spatial_outputs(spatial: nn.Module, images_previous: torch.Tensor, images_current: torch.Tensor):
    """SpatialNet's outputs for both frames of a batch of pairs, computed once under ``torch.no_grad()``.

    images_previous, images_current: (B, 3, S, S). Returns two :class:`~mpat_nb.models.spatialnet.SpatialNetOutput`
    (frame t-1, frame t). One forward pass of the 2B images; the caller keeps ``spatial`` in eval mode (a
    frozen SpatialNet's BatchNorm statistics must not follow the batches) [I: docs/method.md 3.2, SpatialNet frozen].
    """
    from mpat_nb.models.spatialnet import SpatialNetOutput

    if images_previous.shape != images_current.shape:
        raise ValueError(f"both frames of a pair must have one shape, got {tuple(images_previous.shape)} and "
                         f"{tuple(images_current.shape)}: letterbox both to the same input size")
    batch = images_previous.shape[0]
    both = spatial(torch.cat([images_previous, images_current]))
    fields = [f.name for f in dataclasses.fields(SpatialNetOutput)]
    return (SpatialNetOutput(*(getattr(both, name)[:batch] for name in fields)),
            SpatialNetOutput(*(getattr(both, name)[batch:] for name in fields)))


def check_boxes(boxes: Sequence[torch.Tensor], features: torch.Tensor) -> None:
    """Raise ValueError naming the fix unless boxes is B float tensors (N_b, 4) x1 <= x2, y1 <= y2, finite."""
    if torch.is_tensor(boxes) or len(boxes) != features.shape[0]:
        raise ValueError(f"boxes must be a list of one (N_b, 4) tensor per image ({features.shape[0]} images), got "
                         f"{'a tensor' if torch.is_tensor(boxes) else len(boxes)}: wrap a single image's boxes in [ ]")
    for b, box in enumerate(boxes):
        if not torch.is_tensor(box) or box.ndim != 2 or box.shape[1] != 4:
            raise ValueError(f"boxes[{b}] must be an (N, 4) tensor x1, y1, x2, y2 (use shape (0, 4) for no people), "
                             f"got {getattr(box, 'shape', type(box).__name__)}")
        if box.device.type != "meta" and len(box) and (not torch.isfinite(box).all()
                                                       or (box[:, 2:] < box[:, :2]).any()):
            raise ValueError(f"boxes[{b}] has a non-finite box or one with x2 < x1 or y2 < y1: boxes are "
                             "x1, y1, x2, y2 (corners), not x, y, w, h")


def _resnet_stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """A ResNet stage of torchvision ``Bottleneck`` blocks, as torchvision's ``ResNet._make_layer`` builds it
    (same module names, so a ResNet-50 state dict loads): the first block strides and projects the skip."""
    downsample = None
    if stride != 1 or inplanes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(conv1x1(inplanes, planes * Bottleneck.expansion, stride),
                                   nn.BatchNorm2d(planes * Bottleneck.expansion))
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


__all__ = ["HumanEmbeddingBranch", "TemporalInstanceBranch", "TemporalNet", "TemporalNetOutput", "check_boxes",
           "frozen_spatial_outputs", "ROI_SAMPLING_RATIO", "RESNET50_STAGES"]
