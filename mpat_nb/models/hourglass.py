"""The stacked hourglass backbone of SpatialNet (Newell et al. 2016, as used by Associative Embedding).

Shape glossary: B batch, C channels, H x W a feature grid, S stacks, O prediction channels per stack.

* :class:`Residual` - a pre-activation bottleneck block, the only building block of the hourglass.
* :class:`Hourglass` - recursive: a full-resolution branch plus a pooled branch that contains a smaller
  hourglass; the two are summed, so every output pixel sees both fine and coarse context.
* :class:`Stem` - the first layers: image (B, 3, H, W) -> features (B, C, H/4, W/4).
* :class:`StackedHourglass` - stem + S hourglasses, each with its own prediction (intermediate supervision)
  that is merged back into the features of the next stack.
"""

from __future__ import annotations

import torch
from torch import nn

from mpat_nb.config import SpatialNetConfig


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-conv1x1(out/2) -> BN-ReLU-conv3x3 -> BN-ReLU-conv1x1(out), plus skip.

    x: (B, in_ch, H, W) -> (B, out_ch, H, W). The skip is a 1x1 conv when the widths differ, else identity.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        mid_ch = out_ch // 2
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid_ch, 1, bias=False)               # a BN follows: no bias needed
        self.bn2 = nn.BatchNorm2d(mid_ch)
        self.conv2 = nn.Conv2d(mid_ch, mid_ch, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid_ch)
        self.conv3 = nn.Conv2d(mid_ch, out_ch, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.relu(self.bn1(x)))       # (B, out/2, H, W)
        y = self.conv2(self.relu(self.bn2(y)))       # (B, out/2, H, W)
        y = self.conv3(self.relu(self.bn3(y)))       # (B, out, H, W)
        return y + self.skip(x)                      # (B, out, H, W)


class Hourglass(nn.Module):
    """One hourglass of the given depth: x (B, C, H, W) -> (B, C, H, W); H and W multiples of 2**depth.

    - ``upper``: a residual at full resolution (keeps the detail).
    - lower branch: ``pool`` (/2) -> ``lower_in`` (C -> C + increase) -> ``inner`` (a depth - 1 hourglass,
      or one residual at the bottom) -> ``lower_out`` (back to C) -> ``upsample`` (x2, nearest).
    - output = upper + lower.
    """

    def __init__(self, depth: int, channels: int, increase: int = 0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"Hourglass depth must be >= 1, got {depth}")
        self.depth = depth
        inner_channels = channels + increase
        self.upper = Residual(channels, channels)
        self.pool = nn.MaxPool2d(2)
        self.lower_in = Residual(channels, inner_channels)
        if depth > 1:
            self.inner = Hourglass(depth - 1, inner_channels, increase)
        else:
            self.inner = Residual(inner_channels, inner_channels)
        self.lower_out = Residual(inner_channels, channels)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2 ** self.depth
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(f"a depth-{self.depth} Hourglass needs H and W multiples of {multiple}, got "
                             f"{tuple(x.shape[-2:])}: pad or resize the input")
        upper = self.upper(x)                        # (B, C, H, W)
        lower = self.lower_in(self.pool(x))          # (B, C + increase, H/2, W/2)
        lower = self.inner(lower)                    # (B, C + increase, H/2, W/2)
        lower = self.lower_out(lower)                # (B, C, H/2, W/2)
        return upper + self.upsample(lower)          # (B, C, H, W)


class Stem(nn.Module):
    """Image to features at stride 4: conv7x7/2-BN-ReLU -> residual -> maxpool/2 -> residual -> residual.

    x: (B, 3, H, W) -> (B, channels, H/4, W/4). Widths follow AE: stem_channels -> 2 * stem_channels -> channels.
    """

    def __init__(self, stem_channels: int, channels: int, in_channels: int = 3):
        super().__init__()
        mid_channels = 2 * stem_channels
        self.conv = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.residual1 = Residual(stem_channels, mid_channels)
        self.pool = nn.MaxPool2d(2)
        self.residual2 = Residual(mid_channels, mid_channels)
        self.residual3 = Residual(mid_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))         # (B, stem, H/2, W/2)
        x = self.residual1(x)                        # (B, 2 stem, H/2, W/2)
        x = self.pool(x)                             # (B, 2 stem, H/4, W/4)
        x = self.residual2(x)                        # (B, 2 stem, H/4, W/4)
        return self.residual3(x)                     # (B, C, H/4, W/4)


def conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    """1x1 conv -> BN -> ReLU (the last layer of each stack's "features")."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class StackedHourglass(nn.Module):
    """Stem + S hourglasses with intermediate supervision (the AE / SpatialNet backbone).

    images: (B, 3, H, W), H and W multiples of ``config.input_multiple``. Returns
    ``predictions (B, S, O, H/4, W/4)`` (one prediction per stack, O = ``out_channels``) and
    ``features (B, C, H/4, W/4)``, the last stack's features just before its prediction head.

    Stack s: ``hourglasses[s]`` -> ``features[s]`` (residual + 1x1 conv-BN-ReLU) -> ``predictions[s]`` (1x1
    conv, linear). For every stack but the last:
    x <- x + merge_features[s](features) + merge_predictions[s](predictions).
    """

    def __init__(self, config: SpatialNetConfig, out_channels: int):
        super().__init__()
        channels, num_stacks = config.channels, config.num_stacks
        self.stem = Stem(config.stem_channels, channels)
        self.hourglasses = nn.ModuleList(
            Hourglass(config.hourglass_depth, channels, config.increase) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(channels, channels), conv_bn_relu(channels, channels)) for _ in range(num_stacks))
        self.predictions = nn.ModuleList(nn.Conv2d(channels, out_channels, 1) for _ in range(num_stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(num_stacks - 1))
        self.merge_predictions = nn.ModuleList(nn.Conv2d(out_channels, channels, 1) for _ in range(num_stacks - 1))

    @property
    def num_stacks(self) -> int:
        return len(self.hourglasses)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(images)                                        # (B, C, H/4, W/4)
        all_predictions = []
        for s in range(self.num_stacks):
            features = self.features[s](self.hourglasses[s](x))      # (B, C, H/4, W/4)
            predictions = self.predictions[s](features)              # (B, O, H/4, W/4)
            all_predictions.append(predictions)
            if s < self.num_stacks - 1:
                x = x + self.merge_features[s](features) + self.merge_predictions[s](predictions)
        return torch.stack(all_predictions, dim=1), features         # (B, S, O, H/4, W/4), (B, C, H/4, W/4)
