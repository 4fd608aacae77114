"""Pose-Guided Grouping (PGG): Gaussian blurring mean shift on the embeddings of the keypoints (docs/method.md 2.6).

Shape glossary: B images, M points per image (padded; M = N x K at training), E KE channels per point
(1, or 2 with the flip test), D = E + 2 the joint embedding, N people, K joints, H x W the output grid.

What the paper says [P/Supp]: grouping is a differentiable recurrent module, trained end to end; after it the
KE is more compact; fine-tuning uses R = 1 iteration and an L_PGG weighted 1e-4. Everything else here is our
reading of it as Gaussian blurring mean shift (GBMS, Kong & Fowlkes) [R/I]. The steps are those of
docs/method.md 2.6, and "Eq. n" in the comments below is its Eq. (n):

1. **Points, "pose-guided"**: every point i is a keypoint with a joint type k_i. Training takes the GT joints
   (:func:`gather_points`), inference the heatmap NMS candidates (:func:`mpat_nb.decode.pgg_refiner`). The KE of a point is
   read from the map of its own joint type, so the pose picks the channel.
2. **Joint embedding**: e_i = [ h_{k_i}(p_i) / delta_KE , SIE(p_i) / (delta_SIE W) ], SIE(p) = p + v(p).
3. **Kernel**: K_ij = exp(-||e_i - e_j||^2 / 2) = exp(-dKE^2 / 2 delta_KE^2) exp(-||dSIE||^2 / 2 (delta_SIE W)^2):
   two points attract only if they agree in KE *and* in predicted centre.
4. **Update**, R times, every point at once (blurring: the attractors move too):
   e_i <- sum_j K_ij e_j / sum_j K_ij.

Cost: the kernel is M x M per image. :class:`PoseGuidedGrouping` computes it in row blocks of at most
``chunk_entries`` entries (recomputed in the backward pass, so training memory is bounded too) and refuses more
than ``max_points`` points per image with a message that says what to change.

L_PGG lives with the other losses: :func:`mpat_nb.losses.pgg_loss`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from mpat_nb.codec import instance_embedding_gathered

#: Default R [Supp: "R = 1 is sufficient, more iterations do not lead to much gain"].
PGG_ITERATIONS = 1
#: delta_KE in KE units [I: AE's tag threshold is 1, and DecodeConfig.ke_bandwidth is 1].
PGG_KE_BANDWIDTH = 1.0
#: delta_SIE as a fraction of the output width [I: ~6 px at 128 x 128, the same as DecodeConfig.sie_bandwidth].
PGG_SIE_BANDWIDTH = 6.0 / 128
#: Kernel entries (B x rows x M) computed at once [I: 2**22 entries = 16 MiB per float32 block, whatever B and
#: M: one block alive at inference (it is worked on in place), about four during a recomputed backward
#: (benchmarks/bench_pgg.py measures ~17 and ~70 MiB); a training batch of 16 x 450 x 450 is a single block].
PGG_CHUNK_ENTRIES = 2**22
#: Hard cap on M per image [I: 20 000 points = 4 x 10^8 kernel entries per image, ~100 blocks per image and
#: iteration; a real frame has <= K x top_k = 450 candidates, so more means a misconfigured decoder].
PGG_MAX_POINTS = 20_000


@dataclass
class PGGOutput:
    """Refined embeddings of every point.

    ke: (B, M, E) in KE units; sie: (B, M, 2) in output pixels; embeddings: (B, M, E + 2) the joint embedding
    [ke / delta_KE, sie / (delta_SIE W)] in bandwidth units (what the grouping compares). Padded points
    (valid False) hold their input values, unchanged.
    """

    ke: torch.Tensor
    sie: torch.Tensor
    embeddings: torch.Tensor


class PoseGuidedGrouping(nn.Module):
    """R iterations of Gaussian blurring mean shift over the keypoints of each image, batched over images.

    - ``iterations``: R, mean-shift steps [Supp: 1]. R = 0 returns the input.
    - ``ke_bandwidth``: delta_KE in KE units [I: 1, AE's tag threshold].
    - ``sie_bandwidth``: delta_SIE as a fraction of the output width W [I: 6 / 128, i.e. 6 px at 128 x 128,
      as ``DecodeConfig.sie_bandwidth``], so one value works for every preset.
    - ``learnable_bandwidths``: make log delta_KE and log delta_SIE parameters [I: off; the paper does not say
      it learns them, and L_PGG alone does not pin them (pull favours a wide kernel, push a narrow one)].
    - ``chunk_entries``: kernel entries computed at once; the rows of a block are
      max(1, chunk_entries // (B M)) [I: 2**22, see ``PGG_CHUNK_ENTRIES``].
    - ``checkpoint_chunks``: when gradients are on and there is more than one block, recompute each block in
      the backward pass instead of storing its kernel, so training memory is O(block) too [I: on; costs one
      extra forward of the kernel].
    - ``max_points``: largest M accepted; beyond it ``forward`` raises ValueError [I: 20 000].
    """

    def __init__(
        self,
        iterations: int = PGG_ITERATIONS,
        ke_bandwidth: float = PGG_KE_BANDWIDTH,
        sie_bandwidth: float = PGG_SIE_BANDWIDTH,
        learnable_bandwidths: bool = False,
        chunk_entries: int = PGG_CHUNK_ENTRIES,
        checkpoint_chunks: bool = True,
        max_points: int = PGG_MAX_POINTS,
    ) -> None:
        super().__init__()
        if not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"PoseGuidedGrouping: iterations must be an int >= 0, got {iterations!r}")
        if not (ke_bandwidth > 0 and sie_bandwidth > 0):
            raise ValueError(f"PoseGuidedGrouping: bandwidths must be > 0, got ke_bandwidth={ke_bandwidth}, "
                             f"sie_bandwidth={sie_bandwidth}")
        if chunk_entries < 1 or max_points < 1:
            raise ValueError(f"PoseGuidedGrouping: chunk_entries and max_points must be >= 1, got "
                             f"{chunk_entries} and {max_points}")
        self.iterations = iterations
        self.chunk_entries = int(chunk_entries)
        self.checkpoint_chunks = checkpoint_chunks
        self.max_points = int(max_points)
        # log-bandwidths: a learned bandwidth stays positive; a buffer moves with .to() and is saved.
        log_bandwidths = torch.tensor([math.log(ke_bandwidth), math.log(sie_bandwidth)])
        if learnable_bandwidths:
            self.log_bandwidths = nn.Parameter(log_bandwidths)
        else:
            self.register_buffer("log_bandwidths", log_bandwidths)

    @property
    def ke_bandwidth(self) -> torch.Tensor:
        """delta_KE (scalar tensor, KE units)."""
        return self.log_bandwidths[0].exp()

    @property
    def sie_bandwidth(self) -> torch.Tensor:
        """delta_SIE (scalar tensor, fraction of the output width)."""
        return self.log_bandwidths[1].exp()

    def extra_repr(self) -> str:
        return (f"iterations={self.iterations}, ke_bandwidth={self.ke_bandwidth.item():.4g}, "
                f"sie_bandwidth={self.sie_bandwidth.item():.4g}, "
                f"learnable_bandwidths={isinstance(self.log_bandwidths, nn.Parameter)}, "
                f"chunk_entries={self.chunk_entries}, max_points={self.max_points}")

    def forward(self, ke: torch.Tensor, sie: torch.Tensor, valid: torch.Tensor, output_width: int) -> PGGOutput:
        """Refine the embeddings of every image's points.

        ke: (B, M, E) (or (B, M) for E = 1) the KE of each point, read from its own joint's map;
        sie: (B, M, 2) SIE = position + SVF, output pixels; valid: (B, M) bool, False = padding;
        output_width: W of the output grid (delta_SIE is a fraction of it).
        Padded points neither move nor attract, whatever values they hold (even NaN).
        """
        if ke.ndim == 2:
            ke = ke.unsqueeze(-1)
        self._check_inputs(ke, sie, valid, output_width)
        valid = valid.bool()
        num_ke = ke.shape[-1]
        dtype = torch.promote_types(torch.promote_types(ke.dtype, sie.dtype), torch.float32)  # never half
        ke_scale = self.ke_bandwidth.to(dtype)
        sie_scale = self.sie_bandwidth.to(dtype) * output_width
        # Eq. 2: e_i = [ke_i / delta_KE, sie_i / (delta_SIE W)]
        embeddings = torch.cat([ke.to(dtype) / ke_scale, sie.to(dtype) / sie_scale], dim=-1)   # (B, M, D)
        if self.iterations == 0:
            return PGGOutput(ke=ke, sie=sie, embeddings=embeddings)
        refined = self._mean_shift(embeddings, valid)                                # (B, M, D)
        mask = valid[..., None]
        # Back to KE units and output pixels; padded points get their inputs back bit for bit.
        return PGGOutput(
            ke=torch.where(mask, (refined[..., :num_ke] * ke_scale).to(ke.dtype), ke),
            sie=torch.where(mask, (refined[..., num_ke:] * sie_scale).to(sie.dtype), sie),
            embeddings=refined,
        )

    # ------------------------------------------------------------------------------------------
    def _mean_shift(self, embeddings: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """R blurring mean-shift steps on (B, M, D) embeddings; padded rows are returned as given."""
        batch, num_points, _ = embeddings.shape
        if batch == 0 or num_points == 0:
            return embeddings
        mask = valid[..., None]                                                  # (B, M, 1)
        # Padded slots may hold anything: zero them so that 0-weight x NaN cannot poison a sum.
        points = torch.where(mask, embeddings, 0.0)
        # Mean shift is translation-equivariant; centring on the valid mean keeps |e|^2 small, so the
        # expansion ||e_i - e_j||^2 = |e_i|^2 + |e_j|^2 - 2 e_i.e_j loses no precision. Added back below.
        count = mask.sum(dim=1, keepdim=True).clamp(min=1)
        centre = points.sum(dim=1, keepdim=True) / count                         # (B, 1, D)
        points = torch.where(mask, points - centre, 0.0)
        rows = max(1, self.chunk_entries // max(1, batch * num_points))
        use_recompute = self.checkpoint_chunks and torch.is_grad_enabled() and points.requires_grad \
            and rows < num_points
        with torch.autocast(device_type=points.device.type, enabled=False):     # keep the kernel in fp32+
            for _ in range(self.iterations):
                row_side, column_side, values = _augment(points, valid)
                # Blurring: every block reads the *old* points; the new set replaces them only afterwards.
                blocks = []
                for start in range(0, num_points, rows):
                    block = row_side[:, start:start + rows]
                    shift = _RecomputedShift.apply if use_recompute else _shift_block
                    blocks.append(shift(block, start, column_side, values))
                points = torch.where(mask, torch.cat(blocks, dim=1), 0.0)
        return torch.where(mask, points + centre, embeddings)                    # padded rows untouched

    def _check_inputs(self, ke: torch.Tensor, sie: torch.Tensor, valid: torch.Tensor, output_width: int) -> None:
        if ke.ndim != 3 or sie.ndim != 3 or sie.shape[-1] != 2 or ke.shape[:2] != sie.shape[:2] \
                or tuple(valid.shape) != tuple(ke.shape[:2]):
            raise ValueError(f"PoseGuidedGrouping expects ke (B, M, E), sie (B, M, 2) and valid (B, M); got "
                             f"{tuple(ke.shape)}, {tuple(sie.shape)} and {tuple(valid.shape)}")
        if not output_width or output_width <= 0:
            raise ValueError(f"PoseGuidedGrouping: output_width must be the positive width W of the output grid, "
                             f"got {output_width!r}")
        num_points = ke.shape[1]
        if num_points > self.max_points:
            gib = ke.shape[0] * num_points**2 * 4 / 2**30
            raise ValueError(
                f"PoseGuidedGrouping got M = {num_points} points per image, above max_points = {self.max_points}: "
                f"the kernel has M x M entries per image ({gib:.1f} GiB in float32 for this batch; it is "
                f"computed in blocks, but the work grows as M^2). Fix: pass fewer points (lower "
                f"DecodeConfig.top_k or raise the detection threshold), or build "
                f"PoseGuidedGrouping(max_points=...) with a larger cap if you mean it.")


#: Stands in for -|e_j|^2 / 2 of a padded column j: its logit is <= -1e4, so K_ij = exp(logit) = 0 exactly in
#: float32 and float64, and its gradient is 0 too (a -inf would give 0 x inf = NaN in backward).
_PADDED_LOGIT = -1e4


def _augment(points: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augmented vectors that turn the whole kernel exponent into one batched matrix product.

    points: (B, M, D), zero where padded; valid: (B, M). Returns
    row_side a_i = [e_i, 1, -|e_i|^2 / 2] (B, M, D + 2), column_side b_j = [e_j, -|e_j|^2 / 2, 1] (B, M, D + 2)
    with a_i . b_j = e_i.e_j - |e_j|^2 / 2 - |e_i|^2 / 2 = -||e_i - e_j||^2 / 2, and values [e_j, 1] (B, M, D + 1)
    so one more product gives numerator and denominator of the mean-shift step together.
    """
    half_norm = 0.5 * (points * points).sum(dim=-1, keepdim=True)                 # |e|^2 / 2, (B, M, 1)
    ones = torch.ones_like(half_norm)
    column_norm = torch.where(valid[..., None], -half_norm, _PADDED_LOGIT)          # padded never attract
    row_side = torch.cat([points, ones, -half_norm], dim=-1)
    column_side = torch.cat([points, column_norm, ones], dim=-1)
    return row_side, column_side, torch.cat([points, ones], dim=-1)


def _shift_block(row_side: torch.Tensor, start: int, column_side: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """One mean-shift step for the rows i = start .. start + C - 1.

    row_side: (B, C, D + 2) and column_side: (B, M, D + 2) from :func:`_augment`; values: (B, M, D + 1).
    Returns (B, C, D): sum_j K_ij e_j / sum_j K_ij. Without autograd it works in place: one (B, C, M) block.
    """
    # -||e_i - e_j||^2 / 2 for the whole block in one product
    logits = torch.bmm(row_side, column_side.transpose(1, 2))                       # (B, C, M)
    # ||e_i - e_i|| = 0 exactly (rounding of the expansion must not make K_ii < 1 far from the centre)
    logits.diagonal(offset=start, dim1=1, dim2=2).zero_()
    if torch.is_grad_enabled() and (row_side.requires_grad or column_side.requires_grad):
        kernel = logits.clamp(max=0.0).exp()              # Eq. 3: K_ij = exp(-||e_i - e_j||^2 / 2) <= 1
    else:
        kernel = logits.clamp_(max=0.0).exp_()            # the same, in place
    weighted = torch.bmm(kernel, values)                   # [sum_j K_ij e_j, sum_j K_ij], (B, C, D + 1)
    # sum_j K_ij >= K_ii = 1 for a valid row; a padded row may have no weight, its result is discarded.
    return weighted[..., :-1] / weighted[..., -1:].clamp(min=torch.finfo(weighted.dtype).tiny)   # Eq. 4


class _RecomputedShift(torch.autograd.Function):
    """:func:`_shift_block` that stores only its inputs and recomputes the (B, C, M) kernel in backward.

    This is gradient checkpointing written out (``torch.utils.checkpoint`` does the same, but its first call
    imports ``torch._dynamo``, seconds on a small CPU): with it, the memory of a training pass is O(one block)
    instead of O(M^2) per image, for the price of computing each block twice.
    """

    @staticmethod
    def forward(ctx, row_side, start, column_side, values):
        ctx.save_for_backward(row_side, column_side, values)
        ctx.start = start
        return _shift_block(row_side, start, column_side, values)       # autograd is off here: in place

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        saved = ctx.saved_tensors
        with torch.enable_grad():
            row_side, column_side, values = (tensor.detach().requires_grad_(True) for tensor in saved)
            shifted = _shift_block(row_side, ctx.start, column_side, values)
            grads = torch.autograd.grad(shifted, (row_side, column_side, values), grad_output)
        return grads[0], None, grads[1], grads[2]


# ----------------------------------------------------------------------------------------------
# Gathering the points
# ----------------------------------------------------------------------------------------------
class GatheredPoints(NamedTuple):
    """The GT keypoints of a batch, flattened to M = N x K points per image (point m = n K + k).

    ke: (B, M, E); sie: (B, M, 2) output pixels; valid: (B, M) bool; joint_type: (B, M) int64 k;
    person: (B, M) int64 n.
    """

    ke: torch.Tensor
    sie: torch.Tensor
    valid: torch.Tensor
    joint_type: torch.Tensor
    person: torch.Tensor


def gather_points(ke_maps: torch.Tensor, svf: torch.Tensor, keypoint_indices: torch.Tensor) -> GatheredPoints:
    """Read KE and SIE at the GT joints, for training PGG (docs/method.md 2.6, step 1).

    ke_maps: (B, K, H, W) or (B, K, H, W, E) one KE map per joint (pass one stack, e.g. the last);
    svf: (B, 2, H, W) in output pixels (SpatialNet's svf x SVF_NORMALISER);
    keypoint_indices: (B, N, K, 2) from the codec, [..., 0] flat pixel y W + x, [..., 1] valid flag.
    The KE of joint k of person n is read from map k only ("pose-guided"); SIE(p) = p + v(p) with p the
    joint's pixel (x, y). Differentiable with respect to ``ke_maps`` and ``svf``.
    """
    if ke_maps.ndim == 4:
        ke_maps = ke_maps.unsqueeze(-1)
    if ke_maps.ndim != 5 or svf.ndim != 4 or svf.shape[1] != 2 or keypoint_indices.ndim != 4 \
            or svf.shape[0] != ke_maps.shape[0] or svf.shape[2:] != ke_maps.shape[2:4] \
            or keypoint_indices.shape[0] != ke_maps.shape[0] or keypoint_indices.shape[2] != ke_maps.shape[1]:
        raise ValueError(f"gather_points expects ke_maps (B, K, H, W[, E]), svf (B, 2, H, W) and keypoint_indices "
                         f"(B, N, K, 2) with the same B, K, H, W; got {tuple(ke_maps.shape)}, {tuple(svf.shape)} "
                         f"and {tuple(keypoint_indices.shape)}")
    batch, num_joints, height, width, num_ke = ke_maps.shape
    num_people = keypoint_indices.shape[1]
    num_points = num_people * num_joints
    pixel = keypoint_indices[..., 0].long().clamp(0, height * width - 1)           # (B, N, K); invalid masked
    valid = keypoint_indices[..., 1] > 0                                            # (B, N, K)
    # h_{k}(x_nk): joint k's point reads map k
    index = pixel.transpose(1, 2)[..., None].expand(batch, num_joints, num_people, num_ke)     # (B, K, N, E)
    ke = ke_maps.reshape(batch, num_joints, height * width, num_ke).gather(2, index)           # (B, K, N, E)
    ke = ke.transpose(1, 2).reshape(batch, num_points, num_ke)
    sie = instance_embedding_gathered(svf, pixel.reshape(batch, num_points))       # SIE(p) = p + v(p), (B, M, 2)
    device = keypoint_indices.device
    joint_type = torch.arange(num_joints, device=device).repeat(num_people).expand(batch, num_points)
    person = torch.arange(num_people, device=device).repeat_interleave(num_joints).expand(batch, num_points)
    return GatheredPoints(ke, sie, valid.reshape(batch, num_points), joint_type, person)
