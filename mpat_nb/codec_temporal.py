"""TemporalNet targets: person boxes for the HE branch and the temporal vector fields (TVF) of the TIE branch.

The SpatialNet codec (:mod:`mpat_nb.codec`) stays the home of the single-frame targets; this module adds
what needs two frames (``docs/method.md`` 3.1-3.2). Same conventions: output-grid pixels, pixel-centre convention
(pixel (row y, column x) is centred at (x, y)), sizes ``(H, W)``, float32 torch tensors.

Glossary: N, N' people of frames t-1 and t (the "previous" and "current" frame), K joints, H x W output grid.

* :func:`boxes_from_joints` -> ``boxes (N, 4)`` x1, y1, x2, y2: the HE proposals.
* :func:`encode_tvf_targets` -> :class:`TVFTargets`: for a pixel p owned by person n in frame t-1,
  T*(p) = (c_n^(t) - p) / Z; for a pixel q owned by person n in frame t, T'*(q) = (c_n^(t-1) - q) / Z
  (Z = ``SVF_NORMALISER``, as the SVF). "Owned" pixels are exactly the SVF's: disks of radius r around the
  person's joints, overlaps to the nearer joint (:func:`mpat_nb.codec.encode_targets` decides).
  People are matched across the frames by track id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch

from mpat_nb.codec import _as_float_tensor, _size_hw, encode_targets
from mpat_nb.config import SVF_NORMALISER
from mpat_nb.utils import DeviceMovable

#: HE proposals are the joints' box enlarged by this fraction of its width and height (half on each side)
#: [I: docs/method.md 3.1 "enlarged ~15 %"]: the limbs and clothes around the outermost joints are part of the look.
BOX_PADDING = 0.15
#: Smallest side of a proposal in output pixels [I]: a person with one or two visible joints still gets a
#: region a RoI-Align grid can sample meaningfully (about a head at 64 x 64).
MIN_BOX_SIZE = 4.0


@dataclass
class TVFTargets(DeviceMovable):
    """Targets of the bi-directional temporal vector fields for one frame pair, or a batch (leading B).

    forward: (2, H, W) T*(p) = (c_n^(t) - p) / Z on frame t-1's grid, 0 where unlabelled.
    forward_mask: (H, W) float, 1 on pixels of frame t-1 owned by a person who is also in frame t.
    backward: (2, H, W) T'*(q) = (c_n^(t-1) - q) / Z on frame t's grid; backward_mask: (H, W) likewise.
    """

    forward: torch.Tensor
    forward_mask: torch.Tensor
    backward: torch.Tensor
    backward_mask: torch.Tensor


def encode_tvf_targets(
    joints_previous, centres_previous, track_ids_previous,
    joints_current, centres_current, track_ids_current,
    output_size: tuple[int, int] | int,
    *,
    sigma: float | None = None,
    radius: float | None = None,
) -> TVFTargets:
    """Forward and backward TVF targets and masks for frames t-1 (previous) and t (current), docs/method.md 3.2.

    joints_*: (N, K, 3) x, y, v in output pixels (v > 0 present); centres_*: (N, 2) person centres c_n in
    output pixels (may lie off the grid); track_ids_*: (N,) ints, unique within a frame.
    output_size: (H, W) or one int. sigma, radius: as :func:`mpat_nb.codec.encode_targets` (the disks of
    the labelled pixels; defaults give the SVF's).

    People present in only one frame (entering, leaving, hidden, or cut at a shot change) have no centre in
    the other frame: their pixels get mask 0 [I]. They stay owners of their pixels, so a neighbour's vector
    is never painted onto them. A person present in both frames is supervised even when a centre lies off
    the grid (the vector just points outside). Vectorised: one ownership map per frame, no loop over people.
    """
    height, width = _size_hw(output_size)
    previous = _frame_arrays(joints_previous, centres_previous, track_ids_previous, "previous")
    current = _frame_arrays(joints_current, centres_current, track_ids_current, "current")
    device = previous[0].device
    current = tuple(t.to(device) for t in current)
    pixel = torch.stack(torch.meshgrid(torch.arange(width, device=device, dtype=torch.float32),
                                       torch.arange(height, device=device, dtype=torch.float32),
                                       indexing="xy"))                                       # (2, H, W) x, y
    fields = []
    for (joints, centres, ids), (_, other_centres, other_ids) in ((previous, current), (current, previous)):
        owner = encode_targets(joints, centres, torch.zeros(len(joints), device=device), (height, width),
                               sigma=sigma, radius=radius, max_people=max(len(joints), 1)).instance_map  # (H, W)
        same = ids[:, None] == other_ids[None, :]                                  # (N, N') same track id
        has_partner = same.any(dim=1)                                              # (N,)
        partner_centre = other_centres[same.float().argmax(dim=1)] if len(other_ids) else centres * 0
        # Row 0 stands for "nobody" (instance_map 0): a table lookup replaces a loop over people.
        target_centre = torch.cat([centres.new_zeros(1, 2), partner_centre])      # (N + 1, 2)
        labelled = torch.cat([has_partner.new_zeros(1), has_partner])[owner]       # (H, W)
        vector = (target_centre[owner].permute(2, 0, 1) - pixel) / SVF_NORMALISER  # T*(p) = (c^other - p) / Z
        fields += [torch.where(labelled, vector, 0.0), labelled.float()]
    return TVFTargets(*fields)


def boxes_from_joints(joints, output_size: tuple[int, int] | int, *, padding: float = BOX_PADDING,
                      min_size: float = MIN_BOX_SIZE) -> torch.Tensor:
    """HE proposals: the box of each person's present joints, enlarged and clipped to the grid.

    joints: (N, K, 3) x, y, v in output pixels. Returns (N, 4) x1, y1, x2, y2 in the same frame (pixel-centre
    convention: the box covers the joints' pixels, [min - 0.5, max + 0.5]), grown by ``padding`` x its side,
    at least ``min_size`` a side, then clipped to the grid [-0.5, W - 0.5] x [-0.5, H - 0.5].
    """
    height, width = _size_hw(output_size)
    joints = _as_float_tensor(joints, "joints", None)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise ValueError(f"joints must be (N, K, 3) x, y, v, got shape {tuple(joints.shape)}")
    present = joints[..., 2] > 0                                                    # (N, K)
    if not present.any(dim=1).all():
        raise ValueError("every person needs at least one present joint for a box: drop people with none first")
    low = torch.where(present[..., None], joints[..., :2], float("inf")).amin(dim=1) - 0.5    # (N, 2)
    high = torch.where(present[..., None], joints[..., :2], float("-inf")).amax(dim=1) + 0.5
    centre, side = (low + high) / 2, (high - low) * (1.0 + padding)                # grown by padding x side
    side = side.clamp(min=min_size)
    limit = torch.tensor([width, height], dtype=joints.dtype, device=joints.device) - 0.5
    low, high = (centre - side / 2).clamp(min=-0.5), torch.minimum(centre + side / 2, limit)
    return torch.cat([low, high], dim=1)


def collate_tvf_targets(targets: Sequence[TVFTargets]) -> TVFTargets:
    """Stack per-pair targets into a batch: every field gains a leading B dimension."""
    if len(targets) == 0:
        raise ValueError("collate_tvf_targets needs at least one TVFTargets")
    shapes = {tuple(t.forward.shape) for t in targets}
    if len(shapes) > 1:
        raise ValueError(f"cannot stack TVF targets of shapes {sorted(shapes)}: encode every pair with one output_size")
    return TVFTargets(*(torch.stack([getattr(t, f.name) for t in targets]) for f in dataclasses.fields(TVFTargets)))


def _frame_arrays(joints, centres, track_ids, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """joints (N, K, 3), centres (N, 2) float and track ids (N,) int64 of one frame, checked."""
    joints = _as_float_tensor(joints, f"joints_{name}", None)
    centres = _as_float_tensor(centres, f"centres_{name}", joints.device)
    ids = torch.as_tensor(track_ids, dtype=torch.int64, device=joints.device).reshape(-1)
    if joints.ndim != 3 or joints.shape[-1] != 3 or centres.shape != (len(joints), 2) or ids.shape != (len(joints),):
        raise ValueError(f"frame {name}: joints must be (N, K, 3), centres (N, 2) and track ids (N,); got "
                         f"{tuple(joints.shape)}, {tuple(centres.shape)}, {tuple(ids.shape)}")
    if len(torch.unique(ids)) != len(ids):
        raise ValueError(f"frame {name}: track ids {ids.tolist()} repeat; one person per track id and frame")
    return joints, centres, ids
