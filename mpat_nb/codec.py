"""SpatialNet targets (encoding) and the first decoding steps (NMS, candidates, sub-pixel refinement).

The codec is the only place that turns annotated joints into the dense maps SpatialNet is trained on
(``docs/method.md`` 2.2-2.5) and turns predicted heatmaps back into candidate points (2.8). It knows
nothing about the network; the losses in :mod:`mpat_nb.losses` read what it writes.

Glossary: B batch, N people (padded to N_max = ``max_people``), K = 15 joints, M candidates per joint,
H x W the output grid (128 x 128 for the paper). Coordinates are output-grid pixels with the
**pixel-centre convention**: pixel (row y, column x) has its centre at integer coordinates (x, y) and
covers [x - 0.5, x + 0.5] x [y - 0.5, y + 0.5]; this is the convention of :mod:`mpat_nb.data.augment`.
A joint's pixel is its nearest pixel, (floor(x + 0.5), floor(y + 0.5)).

Note on sizes: every ``*_size`` here is ``(H, W)`` (rows, columns), as in NCHW tensors. (The augmentation
module speaks OpenCV's ``(width, height)``; for the square sizes we train on the two agree.)

Targets for one image (all float32 torch tensors unless said otherwise):

* ``heatmaps (K, H, W)``: docs/method.md 2.2, Eq. (1), H*_k(p) = max_n exp(-||p - x_nk||^2 / (2 sigma^2)) (cut to 0 beyond
  4 sigma).
* ``keypoint_indices (N_max, K, 2)`` int64: flat pixel index y * W + x of each joint and a valid flag;
  the Keypoint-Embedding pull/push loss gathers the KE maps at these pixels.
* ``svf (2, H, W)``: the Spatial Vector Field v*(p) = (c_n - p) / Z (docs/method.md 2.5) on the pixels that
  person n owns (disks of radius r around its joints, overlaps go to the nearer joint).
* ``ordinal (6, H, W)``: normalised ranks of person n in the six ordinal relations (docs/method.md 2.4),
  painted on the same owned pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mpat_nb.config import HEATMAP_SIGMA, ORDINAL_RELATIONS, SVF_NORMALISER
from mpat_nb.utils import DeviceMovable

#: Output resolution at which ``HEATMAP_SIGMA`` is given; sigma scales linearly with the output height.
SIGMA_REFERENCE_SIZE = 128
#: Default people per image; targets are padded to this many so that a batch stacks. AE used 30 too.
MAX_PEOPLE = 30
#: Disk radius of the SVF / ordinal labels, in units of sigma [I]: docs/method.md 6, choice 5 (r = 2 sigma).
DISK_RADIUS_IN_SIGMAS = 2.0
#: Heatmap Gaussians are cut to 0 beyond this many sigmas [I: AE cuts at 3 sigma; at 4 sigma the value
#: dropped is below exp(-8) = 3.4e-4]. The cut lets the encoder touch only a window around each joint.
GAUSSIAN_TRUNCATE_IN_SIGMAS = 4.0

#: Ordinal relation name -> (sort key, reversed). Keys: "x" / "y" of the person centre, "scale" (bigger
#: = nearer). "left_to_right" gives the leftmost person 0 and the rightmost 1; the reversed relation
#: is 1 - o (docs/method.md 2.4, choice 3: three relations in both directions).
ORDINAL_KEYS: dict[str, tuple[str, bool]] = {
    "left_to_right": ("x", False),
    "right_to_left": ("x", True),
    "top_to_bottom": ("y", False),
    "bottom_to_top": ("y", True),
    "far_to_near": ("scale", False),
    "near_to_far": ("scale", True),
}


@dataclass
class SpatialTargets(DeviceMovable):
    """Training targets of SpatialNet for one image, or a batch of them (leading ``B`` after collation).

    heatmaps: (K, H, W) float, max-over-people Gaussians (docs/method.md 2.2, Eq. (1)).
    heatmap_mask: (H, W) float, 1 = supervised, 0 = ignore region.
    keypoint_indices: (N_max, K, 2) int64, [..., 0] flat pixel index y * W + x, [..., 1] valid flag (0/1).
    svf: (2, H, W) float, v*(p) = (c_n - p) / SVF_NORMALISER on owned pixels, 0 elsewhere.
    svf_mask: (H, W) float, 1 on the owned (labelled) pixels.
    ordinal: (6, H, W) float in [0, 1], channels in ``ORDINAL_RELATIONS`` order, 0 where unlabelled.
    ordinal_mask: (H, W) float, 1 where ``ordinal`` is painted (the same pixels as ``svf_mask``).
    instance_map: (H, W) int64, index + 1 of the person owning the pixel, 0 = nobody.
    centres: (N_max, 2) float, person centres c_n (x, y) in output pixels; zero padding.
    """

    heatmaps: torch.Tensor
    heatmap_mask: torch.Tensor
    keypoint_indices: torch.Tensor
    svf: torch.Tensor
    svf_mask: torch.Tensor
    ordinal: torch.Tensor
    ordinal_mask: torch.Tensor
    instance_map: torch.Tensor
    centres: torch.Tensor


    @property
    def person_valid(self) -> torch.Tensor:
        """(..., N_max) bool: padded slots and people with no joint on the grid are False."""
        return self.keypoint_indices[..., 1].bool().any(dim=-1)


def encode_targets(
    joints,
    centres,
    scales,
    output_size: tuple[int, int] | int,
    *,
    sigma: float | None = None,
    radius: float | None = None,
    truncate: float = GAUSSIAN_TRUNCATE_IN_SIGMAS,
    max_people: int = MAX_PEOPLE,
    ignore_mask=None,
    device: torch.device | str | None = None,
) -> SpatialTargets:
    """Encode the people of one image into SpatialNet targets (see :class:`SpatialTargets`).

    joints: (N, K, 3) x, y, v in output-grid pixels, v > 0 present (use shape (0, K, 3) for no people).
    centres: (N, 2) person centres c_n in output pixels, or None for the mean of the present joints.
    scales: (N,) person size (bbox diagonal in output pixels; larger = nearer), or None for the
        diagonal of the present joints' box. Only the order of the scales matters (far_to_near).
    output_size: (H, W) of the output grid, or one int for a square grid.
    sigma: Gaussian std in pixels; default ``HEATMAP_SIGMA * H / 128`` (2 px at 128 x 128, AE).
    radius: disk radius of the SVF / ordinal labels; default ``2 * sigma``.
    truncate: the Gaussian is 0 where ||p - x_nk|| > truncate * sigma.
    max_people: N_max, the padded person count of ``keypoint_indices`` and ``centres``.
    ignore_mask: optional (H, W), non-zero marks ignore regions; they get ``heatmap_mask = 0``. The SVF /
        ordinal labels come from annotated people only and are left as they are.
    device: where the targets are created; default the device of ``joints`` if it is a tensor, else CPU.

    Conventions [I]: a joint is *on the grid* when it is present and its nearest pixel lies inside the
    grid; joints off the grid give no heatmap peak, an invalid index and no disk (AE skips them too).
    Gaussians are centred at the sub-pixel joint position (so the peak is 1 only for integer joints).
    Overlapping disks go to the person with the nearer joint; exact ties go to the lower person index.
    Ordinal ranks are taken among the people with at least one joint on the grid (people the network
    cannot see do not shift the others' ranks); ties in a key keep the input order (stable sort), and
    the reversed relation is 1 - o, so its tie order is the opposite one.

    Cost: each joint touches only a window around it (no N x K x H x W tensor); about 7 ms for 5 people
    and 15 ms for 30 at 128 x 128 on one CPU thread.
    """
    height, width = _size_hw(output_size)
    joints = _as_float_tensor(joints, "joints", device)
    device = joints.device
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise ValueError(f"joints must be (N, K, 3) x, y, v in output pixels, got shape {tuple(joints.shape)}; "
                         "pass an array of shape (0, K, 3) for an image without people")
    num_people, num_joints, _ = joints.shape
    if num_people > max_people:
        raise ValueError(f"{num_people} people in one image but max_people={max_people}: raise max_people "
                         "(targets are padded to it so that a batch stacks) or drop people before encoding")
    if centres is None or scales is None:
        default_centres, default_scales = centres_and_scales_from_joints(joints)
    centres = default_centres if centres is None else _as_float_tensor(centres, "centres", device)
    scales = default_scales if scales is None else _as_float_tensor(scales, "scales", device)
    if centres.shape != (num_people, 2) or scales.shape != (num_people,):
        raise ValueError(f"centres must be (N, 2) and scales (N,) with N = {num_people} people, "
                         f"got {tuple(centres.shape)} and {tuple(scales.shape)}")
    sigma = float(HEATMAP_SIGMA * height / SIGMA_REFERENCE_SIZE) if sigma is None else float(sigma)
    radius = DISK_RADIUS_IN_SIGMAS * sigma if radius is None else float(radius)
    if sigma <= 0 or radius < 0 or truncate <= 0:
        raise ValueError(f"sigma and truncate must be > 0 and radius >= 0, got sigma={sigma}, "
                         f"radius={radius}, truncate={truncate}")

    heatmap_mask = torch.ones(height, width, device=device)
    if ignore_mask is not None:
        ignore = torch.as_tensor(np.asarray(ignore_mask) if not torch.is_tensor(ignore_mask) else ignore_mask,
                                 device=device)
        if ignore.shape != (height, width):
            raise ValueError(f"ignore_mask must be (H, W) = {(height, width)}, got {tuple(ignore.shape)}")
        heatmap_mask = heatmap_mask.masked_fill(ignore != 0, 0.0)

    # Nearest pixel of each joint and whether it is on the grid.
    x, y, v = joints.unbind(-1)                                                   # each (N, K)
    pixel_x, pixel_y = nearest_pixel(x), nearest_pixel(y)
    on_grid = (v > 0) & (pixel_x >= 0) & (pixel_x < width) & (pixel_y >= 0) & (pixel_y < height)
    keypoint_indices = torch.zeros(max_people, num_joints, 2, dtype=torch.long, device=device)
    keypoint_indices[:num_people, :, 0] = torch.where(on_grid, pixel_y * width + pixel_x, 0)
    keypoint_indices[:num_people, :, 1] = on_grid.long()
    padded_centres = torch.zeros(max_people, 2, device=device)
    padded_centres[:num_people] = centres

    targets = SpatialTargets(
        heatmaps=torch.zeros(num_joints, height, width, device=device),
        heatmap_mask=heatmap_mask,
        keypoint_indices=keypoint_indices,
        svf=torch.zeros(2, height, width, device=device),
        svf_mask=torch.zeros(height, width, device=device),
        ordinal=torch.zeros(len(ORDINAL_RELATIONS), height, width, device=device),
        ordinal_mask=torch.zeros(height, width, device=device),
        instance_map=torch.zeros(height, width, dtype=torch.long, device=device),
        centres=padded_centres,
    )
    if num_people == 0:
        return targets

    # Each joint touches only a (2w + 1)^2 window of pixels around its nearest pixel, w covering both the
    # truncated Gaussian and the label disk; gathering the windows keeps the work at N K (2w + 1)^2
    # instead of N K H W, with no loop over people.
    reach = max(truncate * sigma, radius)
    half = int(np.ceil(reach + 0.5))                                             # |pixel - x| <= reach + 0.5
    offsets = torch.arange(-half, half + 1, device=device)
    offset_y, offset_x = (o.reshape(-1) for o in torch.meshgrid(offsets, offsets, indexing="ij"))  # (P,)
    window_x = pixel_x[..., None] + offset_x                                     # (N, K, P)
    window_y = pixel_y[..., None] + offset_y
    in_window = (on_grid[..., None] & (window_x >= 0) & (window_x < width)
                 & (window_y >= 0) & (window_y < height))
    distance2 = (window_x - x[..., None]) ** 2 + (window_y - y[..., None]) ** 2  # ||p - x_nk||^2, (N, K, P)
    window_pixel = window_y * width + window_x

    # docs/method.md 2.2, Eq. (1): H*_k(p) = max_n exp(-||p - x_nk||^2 / (2 sigma^2)), cut to 0 beyond truncate * sigma.
    gaussian = torch.exp(-distance2 / (2.0 * sigma ** 2))
    in_gaussian = in_window & (distance2 <= (truncate * sigma) ** 2)
    joint_slot = torch.arange(num_joints, device=device)[None, :, None] * (height * width) + window_pixel
    targets.heatmaps = _scatter_reduce_flat(
        gaussian, joint_slot, in_gaussian, num_joints * height * width, "amax", 0.0,
    ).reshape(num_joints, height, width)

    # Ownership: person n's distance to p is its nearest joint within the disk; the owner is the nearest
    # person (an exact tie goes to the lower index: torch.min returns the first minimum).
    in_disk = in_window & (distance2 <= radius ** 2)
    person_slot = torch.arange(num_people, device=device)[:, None, None] * (height * width) + window_pixel
    person_distance2 = _scatter_reduce_flat(
        distance2, person_slot, in_disk, num_people * height * width, "amin", float("inf"),
    ).reshape(num_people, height, width)
    owner_distance2, owner = person_distance2.min(dim=0)                         # (H, W)
    labelled = torch.isfinite(owner_distance2)                                   # inside some joint disk
    targets.instance_map = torch.where(labelled, owner + 1, 0)
    targets.svf_mask = labelled.float()
    targets.ordinal_mask = labelled.float()

    # SVF (docs/method.md 2.5): v*(p) = (c_n - p) / Z for the owner n of p.
    grid_x = torch.arange(width, device=device, dtype=torch.float32)
    grid_y = torch.arange(height, device=device, dtype=torch.float32)
    pixel = torch.stack(torch.meshgrid(grid_x, grid_y, indexing="xy"), dim=0)   # (2, H, W) x, y
    owner_centre = centres[owner].permute(2, 0, 1)                               # (2, H, W)
    targets.svf = torch.where(labelled, (owner_centre - pixel) / SVF_NORMALISER, 0.0)

    # Ordinal maps (docs/method.md 2.4): o_r(n) = rank_r(n) / max(N - 1, 1) painted on n's pixels.
    person_ordinal = ordinal_values(centres, scales, on_grid.any(dim=1))        # (N, 6)
    targets.ordinal = torch.where(labelled, person_ordinal[owner].permute(2, 0, 1), 0.0)
    return targets


def ordinal_values(centres: torch.Tensor, scales: torch.Tensor, ranked: torch.Tensor | None = None) -> torch.Tensor:
    """Per-person ordinal targets, one column per name in ``ORDINAL_RELATIONS``.

    centres: (N, 2) x, y; scales: (N,) (larger = nearer); ranked: (N,) bool, the people that take part
    (default all). Returns (N, R) with o_r(n) = rank_r(n) / max(N_ranked - 1, 1) for a forward relation
    and 1 - o_r(n) for a reversed one; people not ranked get 0. Ties keep the input order (stable sort).
    """
    if ranked is None:
        ranked = torch.ones(centres.shape[0], dtype=torch.bool, device=centres.device)
    keys = {"x": centres[:, 0], "y": centres[:, 1], "scale": scales}
    denominator = max(int(ranked.sum()) - 1, 1)
    columns = []
    for name in ORDINAL_RELATIONS:
        if name not in ORDINAL_KEYS:
            raise ValueError(f"unknown ordinal relation {name!r} in config.ORDINAL_RELATIONS; "
                             f"known: {sorted(ORDINAL_KEYS)}")
        key_name, reverse = ORDINAL_KEYS[name]
        key = torch.where(ranked, keys[key_name], float("inf"))                  # unranked people sort last
        order = torch.argsort(key, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order), device=order.device)
        value = rank.float() / denominator                                       # o_r(n) = rank / max(N-1, 1)
        columns.append(torch.where(ranked, 1.0 - value if reverse else value, 0.0))
    return torch.stack(columns, dim=1)


def centres_and_scales_from_joints(joints) -> tuple[torch.Tensor, torch.Tensor]:
    """Default person centres and scales from the present joints (docs/method.md 6, choices 4 and 6).

    joints: (N, K, 3) -> centres (N, 2) = mean of the present joints, scales (N,) = diagonal of their
    bounding box. A person with no present joint gets centre (0, 0) and scale 0.
    """
    joints = _as_float_tensor(joints, "joints", None)
    present = joints[..., 2] > 0                                                  # (N, K)
    count = present.sum(dim=1, keepdim=True).clamp(min=1)
    centres = (joints[..., :2] * present[..., None]).sum(dim=1) / count
    low = torch.where(present[..., None], joints[..., :2], float("inf")).amin(dim=1)
    high = torch.where(present[..., None], joints[..., :2], float("-inf")).amax(dim=1)
    scales = torch.where(present.any(dim=1), (high - low).norm(dim=1), 0.0)
    return centres, scales


def collate_targets(targets: Sequence[SpatialTargets]) -> SpatialTargets:
    """Stack per-image targets into a batch: every field gains a leading B dimension."""
    if len(targets) == 0:
        raise ValueError("collate_targets needs at least one SpatialTargets")
    stacked = {}
    for f in dataclasses.fields(SpatialTargets):
        values = [getattr(t, f.name) for t in targets]
        shapes = {tuple(value.shape) for value in values}
        if len(shapes) > 1:
            raise ValueError(f"cannot stack SpatialTargets.{f.name} of shapes {sorted(shapes)}: encode every "
                             "image with the same output_size and max_people")
        stacked[f.name] = torch.stack(values)
    return SpatialTargets(**stacked)


def joints_to_output_coords(joints, input_size: tuple[int, int] | int, output_size: tuple[int, int] | int):
    """Map joints from network-input pixels to output-grid pixels (pixel-centre convention).

    joints: (..., C) with x, y in the first two columns (C = 3 adds v). input_size, output_size: (H, W)
    or one int. With s = output / input per axis, x_out = (x_in + 0.5) * s - 0.5: pixel edges map to
    pixel edges, so the centre of the input ((W_in - 1) / 2) lands on the centre of the output, as in
    :func:`mpat_nb.data.augment.augmentation_matrix`. For C = 3 absent joints (v == 0) stay at (0, 0).
    Returns the same type as given (a torch tensor, or a float64 NumPy array).
    """
    in_h, in_w = _size_hw(input_size)
    out_h, out_w = _size_hw(output_size)
    is_tensor = torch.is_tensor(joints)
    values = joints.clone().float() if is_tensor else np.array(joints, dtype=np.float64)
    if values.shape[-1] < 2:
        raise ValueError(f"joints must have x, y in the last axis, got shape {tuple(values.shape)}")
    scale_x, scale_y = out_w / in_w, out_h / in_h
    new_x = (values[..., 0] + 0.5) * scale_x - 0.5
    new_y = (values[..., 1] + 0.5) * scale_y - 0.5
    if values.shape[-1] >= 3:
        absent = values[..., 2] <= 0
        new_x = new_x * ~absent if is_tensor else np.where(absent, 0.0, new_x)
        new_y = new_y * ~absent if is_tensor else np.where(absent, 0.0, new_y)
    values[..., 0] = new_x
    values[..., 1] = new_y
    return values


# ----------------------------------------------------------------------------------------------
# Decoding helpers (docs/method.md 2.8, steps 2 and 5)
# ----------------------------------------------------------------------------------------------
def nearest_pixel(coordinates):
    """The pixel of each coordinate, floor(c + 0.5), as int64 (torch tensor in, tensor out; anything else, NumPy).

    The one rounding rule of the project (pixel-centre convention): training targets (:func:`encode_targets`),
    the tracker's SIE / TIE reads (:func:`instance_embedding_at`) and decoding all read the same pixel, also at
    the half-way points where ``round`` / ``np.rint`` would round to even (2.5 -> 3 here, 2 there).
    """
    if isinstance(coordinates, torch.Tensor):
        return torch.floor(coordinates + 0.5).long()
    return np.floor(np.asarray(coordinates, dtype=np.float64) + 0.5).astype(np.int64)


def instance_embedding(field: torch.Tensor) -> torch.Tensor:
    """SIE / TIE at every pixel: p + v(p), (..., 2, H, W) (x, y) in output pixels, for a field in output pixels.

    docs/method.md 2.5, Eq. (1) (SIE(p) = p + v(p), v the SVF) and 3.2 (TIE(p) = p + T(p), T a TVF).
    """
    height, width = field.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height, device=field.device, dtype=field.dtype),
                            torch.arange(width, device=field.device, dtype=field.dtype), indexing="ij")
    return torch.stack([xs, ys]) + field                                             # p + v(p)


def instance_embedding_gathered(field: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """SIE / TIE p + v(p) at given pixels: field (B, 2, H, W) in output pixels, flat (B, M) int64 pixel indices
    y W + x -> (B, M, 2) (x, y). The pixel itself is the position (not a sub-pixel joint): a perfect field's
    vote is then exact, since the field is trained as c - p at pixel centres."""
    batch, _, height, width = field.shape
    values = field.reshape(batch, 2, height * width).gather(2, flat[:, None].expand(batch, 2, flat.shape[1]))
    position = torch.stack([flat % width, torch.div(flat, width, rounding_mode="floor")], dim=-1)   # (B, M, 2)
    return position.to(field.dtype) + values.transpose(1, 2)                                          # p + v(p)


def instance_embedding_at(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """SIE / TIE at the pixels nearest to points (NumPy, the tracker's side): q + v(q), q = :func:`nearest_pixel`
    of p clamped to the grid. field: (2, H, W) in output pixels; points: (..., 2) x, y -> (..., 2)."""
    height, width = field.shape[1:]
    xs = np.clip(nearest_pixel(points[..., 0]), 0, width - 1)
    ys = np.clip(nearest_pixel(points[..., 1]), 0, height - 1)
    return np.stack([xs + field[0, ys, xs], ys + field[1, ys, xs]], axis=-1)


def svf_to_pixels(svf: torch.Tensor) -> torch.Tensor:
    """A network's SVF / TVF (units of ``SVF_NORMALISER`` output pixels) in output pixels: v = Z v_net."""
    return svf * SVF_NORMALISER


def heatmap_nms(heatmaps: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Keep local maxima: a value survives where it equals the max of its kernel x kernel window.

    heatmaps: (B, K, H, W) -> (B, K, H, W) with non-maxima set to 0. Plateaus keep all their equal
    pixels (AE's max-pool equality test).
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, K, H, W), got shape {tuple(heatmaps.shape)}")
    if kernel % 2 != 1:
        raise ValueError(f"the NMS kernel must be odd so that the window is centred, got {kernel}")
    window_max = F.max_pool2d(heatmaps, kernel, stride=1, padding=kernel // 2)
    return heatmaps * (heatmaps == window_max)


def topk_candidates(
    heatmaps: torch.Tensor, k: int = 30, *, nms_kernel: int | None = 3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k highest peaks of each joint map.

    heatmaps: (B, K, H, W). nms_kernel: NMS window applied first (None if the maps are already
    suppressed). Returns scores (B, K, k) in decreasing order and their integer pixel ys, xs (B, K, k).
    """
    batch, num_joints, height, width = heatmaps.shape
    if k > height * width:
        raise ValueError(f"k = {k} candidates asked for but a map has only {height * width} pixels")
    if nms_kernel is not None:
        heatmaps = heatmap_nms(heatmaps, nms_kernel)
    scores, flat = heatmaps.reshape(batch, num_joints, height * width).topk(k, dim=-1)
    return scores, torch.div(flat, width, rounding_mode="floor"), flat % width


def subpixel_refine(heatmaps: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each integer peak a quarter pixel toward its higher neighbour, per axis (AE / hourglass).

    heatmaps: (B, K, H, W); ys, xs: (B, K, M) integer pixels. Returns float x, y (B, K, M):
    x + 0.25 * sign(h(y, x + 1) - h(y, x - 1)), likewise for y. A point on the border does not move
    along that axis (it has only one neighbour there).
    """
    batch, num_joints, height, width = heatmaps.shape
    flat_maps = heatmaps.reshape(batch, num_joints, height * width)

    def value_at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        index = y.clamp(0, height - 1) * width + x.clamp(0, width - 1)
        return flat_maps.gather(2, index)

    ys, xs = ys.long(), xs.long()
    step_x = torch.sign(value_at(ys, xs + 1) - value_at(ys, xs - 1)) * ((xs > 0) & (xs < width - 1))
    step_y = torch.sign(value_at(ys + 1, xs) - value_at(ys - 1, xs)) * ((ys > 0) & (ys < height - 1))
    return xs.float() + 0.25 * step_x, ys.float() + 0.25 * step_y


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _scatter_reduce_flat(
    values: torch.Tensor, slots: torch.Tensor, keep: torch.Tensor, size: int, reduce: str, fill: float,
) -> torch.Tensor:
    """Reduce ``values[keep]`` into a flat buffer of ``size`` slots (start value ``fill``) by ``reduce``."""
    buffer = torch.full((size,), fill, dtype=values.dtype, device=values.device)
    return buffer.scatter_reduce(0, slots[keep], values[keep], reduce=reduce, include_self=True)


def _size_hw(size: tuple[int, int] | int) -> tuple[int, int]:
    """(H, W) from an int or a pair, with a clear error."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"a size must be (H, W) with positive entries or one int, got {size!r}")
    return int(size[0]), int(size[1])


def _as_float_tensor(values, name: str, device: torch.device | str | None) -> torch.Tensor:
    """float32 tensor on ``device`` (default: the tensor's own device, else CPU)."""
    if torch.is_tensor(values):
        return values.to(device=device if device is not None else values.device, dtype=torch.float32)
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric (array or tensor): {error}") from None
    return torch.from_numpy(array).to(device if device is not None else "cpu")
