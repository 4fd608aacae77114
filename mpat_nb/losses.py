"""SpatialNet losses: L_det, L_KE (pull/push), L_SIE (SVF) and L_aux (ordinal maps), docs/method.md 2.2-2.5.

Every loss takes the per-stack predictions ``(B, S, C, H, W)`` and the targets of
:mod:`mpat_nb.codec` (no batch of stacks on the target side), is vectorised over images, people and
stacks, and **sums over the S stacks** (intermediate supervision, as in AE). The total of the
supplementary material is

    L = 1 * L_det + 1e-3 * L_KE + 1e-4 * L_SIE + 1e-4 * L_aux          (weights: ``config.LOSS_WEIGHTS``)

Glossary: B batch, S stacks, K joints, N people (padded), D embedding dimension, H x W output grid.

Magnitudes at initialisation (a note, since the paper's weights were tuned in its units, not ours).
Measured on two 128 x 128 images of three synthetic people, ``SpatialNet("paper")`` (4 stacks) at its
initialisation, SVF_NORMALISER = 128; weighted terms:

    1 L_det = 9.7e-3   1e-3 L_KE = 2.6e-3   1e-4 L_SIE = 1.5e-4   1e-4 L_aux = 2.6e-4

(gradient norms of the weighted terms at the last stack's features: 2.3e-6, 4.6e-5, 9.7e-7, 6.1e-7).
At initialisation L_SIE and L_aux are mostly the heads' noise (outputs of std ~0.4). What the SVF
targets themselves contribute is small: with zero heads (``tests/test_losses.py::
test_initial_loss_magnitudes``) 1e-4 L_SIE = 1.5e-5 against L_det = 9.2e-3, about 600 times smaller,
because the normalised offsets are ~0.05-0.2. (In raw pixels, Z = 1, the same term would be ~16 000
times larger (~0.25), far above L_det.) We keep the paper's weights as the default and document this instead
of silently re-tuning them; raise ``weights["sie"]`` if the SVF learns too slowly.
"""

from __future__ import annotations

from typing import Mapping

import torch

from mpat_nb.config import LOSS_WEIGHTS


def spatial_loss(output, targets, weights: Mapping[str, float] = LOSS_WEIGHTS,
                 det_foreground_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """All SpatialNet losses for one batch.

    output: anything with the per-stack tensors ``heatmaps (B, S, K, H, W)``, ``keypoint_embedding
    (B, S, K, H, W)``, ``svf (B, S, 2, H, W)`` and ``ordinal (B, S, R, H, W)`` (``SpatialNetOutput``);
    ``ordinal`` may be None (no auxiliary maps, L_aux = 0).
    targets: a collated :class:`mpat_nb.codec.SpatialTargets` (leading B).
    weights: ``det``, ``ke``, ``sie``, ``aux`` (default the paper's, ``config.LOSS_WEIGHTS``).
    det_foreground_weight: alpha of :func:`detection_loss` (0 = the paper's plain masked MSE).
    Returns scalar tensors ``det, ke_pull, ke_push, ke, sie, aux, total`` with
    total = w_det L_det + w_ke (L_pull + L_push) + w_sie L_SIE + w_aux L_aux.
    """
    det = detection_loss(output.heatmaps, targets.heatmaps, targets.heatmap_mask, det_foreground_weight)
    ke_pull, ke_push = keypoint_embedding_loss(output.keypoint_embedding, targets.keypoint_indices)
    sie = svf_loss(output.svf, targets.svf, targets.svf_mask)
    ordinal = getattr(output, "ordinal", None)
    aux = det.new_zeros(()) if ordinal is None else ordinal_loss(ordinal, targets.ordinal, targets.ordinal_mask)
    ke = ke_pull + ke_push                                                     # L_KE = L_pull + L_push
    # Supp: L = 1 L_det + 1e-3 L_KE + 1e-4 L_SIE + 1e-4 L_aux
    total = weights["det"] * det + weights["ke"] * ke + weights["sie"] * sie + weights["aux"] * aux
    return {"det": det, "ke_pull": ke_pull, "ke_push": ke_push, "ke": ke, "sie": sie, "aux": aux, "total": total}


def detection_loss(heatmaps_pred: torch.Tensor, heatmaps_gt: torch.Tensor, mask: torch.Tensor | None = None,
                   foreground_weight: float = 0.0) -> torch.Tensor:
    """L_det, the masked heatmap MSE of AE's HeatmapLoss (docs/method.md 2.2).

    heatmaps_pred: (B, S, K, H, W); heatmaps_gt: (B, K, H, W); mask: (B, H, W), 0 = ignore (None = all 1).
    Reduction: mean over K, H, W per image (masked pixels count in the denominator, as in AE), mean
    over the batch, sum over stacks. Returns a scalar.

    foreground_weight alpha (default 0: the paper's loss): each pixel's squared error is weighted by
    1 + alpha H*(p), so the joints' Gaussian blobs weigh up to 1 + alpha times a background pixel. [I] With
    ~1 % of the pixels on a blob, plain MSE first learns "all zero" and leaves that plateau slowly; a small
    network trained for minutes on a CPU needs the push (``SpatialTrainConfig.det_foreground_weight``).
    """
    _check_stacked(heatmaps_pred, heatmaps_gt, "heatmaps")
    squared_error = (heatmaps_pred - heatmaps_gt[:, None]) ** 2                # (B, S, K, H, W)
    if foreground_weight:
        squared_error = squared_error * (1.0 + foreground_weight * heatmaps_gt[:, None])
    if mask is not None:
        squared_error = squared_error * mask[:, None, None]
    # L_det = sum_s mean_b mean_{k,p} m(p) (H_s,k(p) - H*_k(p))^2
    return squared_error.mean(dim=(2, 3, 4)).mean(dim=0).sum()


def keypoint_embedding_loss(ke_pred: torch.Tensor, keypoint_indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L_pull and L_push of the Keypoint Embedding (docs/method.md 2.3, AE).

    ke_pred: (B, S, K, H, W) one scalar embedding map per joint; keypoint_indices: (B, N, K, 2) from the
    codec ([..., 0] flat pixel y * W + x, [..., 1] valid). Reads h_k(x_nk) at every valid joint and
    applies :func:`ae_pull_push`; mean over images, sum over stacks. Returns scalars (pull, push).
    """
    batch, stacks, num_joints, height, width = ke_pred.shape
    if keypoint_indices.ndim != 4 or keypoint_indices.shape[0] != batch or keypoint_indices.shape[2] != num_joints:
        raise ValueError(f"keypoint_indices must be (B, N, K, 2) = ({batch}, N, {num_joints}, 2) for KE maps of "
                         f"shape {tuple(ke_pred.shape)}, got {tuple(keypoint_indices.shape)}")
    num_people = keypoint_indices.shape[1]
    pixel = keypoint_indices[..., 0].clamp(0, height * width - 1)             # (B, N, K); invalid are masked
    valid = keypoint_indices[..., 1] > 0                                       # (B, N, K)
    # h_k(x_nk): gather pixel x_nk from map k, for every stack at once.
    index = pixel.transpose(1, 2)[:, None].expand(batch, stacks, num_joints, num_people)  # (B, S, K, N)
    tags = ke_pred.reshape(batch, stacks, num_joints, height * width).gather(3, index)   # (B, S, K, N)
    tags = tags.transpose(2, 3).reshape(batch * stacks, num_people, num_joints, 1)      # fold S into B
    valid = valid[:, None].expand(batch, stacks, num_people, num_joints).reshape(batch * stacks, num_people, num_joints)
    pull, push = ae_pull_push(tags, valid, reduction="none")                  # (B S,)
    return pull.reshape(batch, stacks).mean(dim=0).sum(), push.reshape(batch, stacks).mean(dim=0).sum()


def ae_pull_push(
    embeddings: torch.Tensor, valid: torch.Tensor, reduction: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Associative-embedding pull/push over the points of each person, for any embedding dimension D.

    embeddings: (B, N, K, D) the embedding of joint k of person n (D = 1 for KE, 3 for PGG's KE + SIE);
    valid: (B, N, K) bool, which joints exist (padded people have none).
    reduction: "mean" -> scalars averaged over the B images; "none" -> (B,) per image.

    With V_n the valid joints of person n and N the people with at least one valid joint:
        hbar_n = (1/|V_n|) sum_{k in V_n} e_nk
        L_pull = (1/N) sum_n (1/|V_n|) sum_{k in V_n} ||e_nk - hbar_n||^2            (0 if N = 0)
        L_push = (1/2) mean_{n < n'} exp(-||hbar_n - hbar_n'||^2)                    (0 if N < 2)
    which is AE's official form (push = mean over ordered pairs of exp(-d^2), halved).
    """
    if embeddings.ndim != 4 or valid.shape != embeddings.shape[:3]:
        raise ValueError(f"embeddings must be (B, N, K, D) and valid (B, N, K), got {tuple(embeddings.shape)} "
                         f"and {tuple(valid.shape)}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    weight = valid.to(embeddings.dtype)                                        # (B, N, K)
    joint_count = weight.sum(dim=2)                                            # |V_n|, (B, N)
    person_valid = joint_count > 0
    person_count = person_valid.sum(dim=1).to(embeddings.dtype)                # N per image, (B,)
    # Zero the invalid entries first: padded slots may hold anything, even NaN, and 0 * NaN is NaN.
    embeddings = torch.where(valid[..., None], embeddings, 0.0)

    # hbar_n = (1/|V_n|) sum_k e_nk
    mean = embeddings.sum(dim=2) / joint_count.clamp(min=1)[..., None]         # (B, N, D)
    # (1/|V_n|) sum_k ||e_nk - hbar_n||^2, then (1/N) sum_n
    spread = (((embeddings - mean[:, :, None]) ** 2).sum(dim=3) * weight).sum(dim=2) / joint_count.clamp(min=1)
    pull = spread.sum(dim=1) / person_count.clamp(min=1)                       # (B,)

    # exp(-||hbar_n - hbar_n'||^2) over unordered pairs n < n' of valid people
    distance2 = ((mean[:, :, None] - mean[:, None]) ** 2).sum(dim=3)           # (B, N, N)
    num_people = mean.shape[1]
    upper = torch.ones(num_people, num_people, dtype=torch.bool, device=mean.device).triu(diagonal=1)
    pair = upper & person_valid[:, :, None] & person_valid[:, None, :]
    pair_count = person_count * (person_count - 1) / 2                         # N (N - 1) / 2
    push = 0.5 * (torch.exp(-distance2) * pair).sum(dim=(1, 2)) / pair_count.clamp(min=1)  # (B,)
    if reduction == "mean":
        return pull.mean(), push.mean()
    return pull, push


def svf_loss(svf_pred: torch.Tensor, svf_gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_SIE, masked L2 of the Spatial Vector Field (docs/method.md 2.5).

    svf_pred: (B, S, 2, H, W); svf_gt: (B, 2, H, W) in units of SVF_NORMALISER; mask: (B, H, W).
    L_SIE = sum_s [sum_{b,p} m(p) ||v_s(p) - v*(p)||^2] / sum_{b,p} m(p): the squared vector error
    averaged over every labelled pixel of the batch (pooled, so an image with a small person does not
    weigh more per pixel), summed over stacks; 0 if the batch has no labelled pixel.
    """
    _check_stacked(svf_pred, svf_gt, "svf")
    squared_error = ((svf_pred - svf_gt[:, None]) ** 2).sum(dim=2)             # ||v - v*||^2, (B, S, H, W)
    return _masked_pixel_mean(squared_error, mask)


def ordinal_loss(ordinal_pred: torch.Tensor, ordinal_gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_aux, masked MSE of the ordinal maps (docs/method.md 2.4).

    ordinal_pred: (B, S, R, H, W); ordinal_gt: (B, R, H, W) in [0, 1]; mask: (B, H, W), 1 where painted.
    L_aux = sum_s [sum_{b,p} m(p) mean_r (o_s,r(p) - o*_r(p))^2] / sum_{b,p} m(p) (pooled over the batch
    like :func:`svf_loss`); 0 if nothing is painted.
    """
    _check_stacked(ordinal_pred, ordinal_gt, "ordinal")
    squared_error = ((ordinal_pred - ordinal_gt[:, None]) ** 2).mean(dim=2)    # (B, S, H, W)
    return _masked_pixel_mean(squared_error, mask)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _masked_pixel_mean(error: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """error: (B, S, H, W), mask: (B, H, W) -> sum_s of the mask-weighted mean over (B, H, W)."""
    mask = mask.to(error.dtype)[:, None]                                        # (B, 1, H, W)
    # No labelled pixel: numerator 0 over denominator 1 gives 0 (and no host sync on a GPU).
    return (error * mask).sum() / mask.sum().clamp(min=1)


def _check_stacked(prediction: torch.Tensor, target: torch.Tensor, name: str) -> None:
    """A clear error when per-stack predictions (B, S, C, H, W) and targets (B, C, H, W) disagree."""
    if prediction.ndim != 5 or target.shape != prediction.shape[:1] + prediction.shape[2:]:
        raise ValueError(f"{name}: predictions must be (B, S, C, H, W) and targets (B, C, H, W) with the same "
                         f"B, C, H, W; got {tuple(prediction.shape)} and {tuple(target.shape)}")


# ----------------------------------------------------------------------------------------------
# L_PGG (docs/method.md 2.6, step 5)
# ----------------------------------------------------------------------------------------------
def pgg_loss(refined, person: torch.Tensor, valid: torch.Tensor, centres: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_PGG: the KE and SIE supervision applied to the embeddings refined by Pose-Guided Grouping.

    refined: a :class:`mpat_nb.models.pgg.PGGOutput` (reads ``ke (B, M, E)`` in KE units and ``sie (B, M, 2)``
    in output pixels); person: (B, M) int, the GT person n of each point; valid: (B, M) bool;
    centres: (B, N, 2) GT person centres c_n in output pixels (``SpatialTargets.centres``).
    (``gather_points`` gives ``person`` and ``valid``.)

    [I, docs/method.md 6 choice 10]:
        L_pull, L_push = AE pull/push (:func:`ae_pull_push`) on the refined KE, grouped by GT person
        L_SIE' = mean over valid points of ||(sie_i - c_{n_i}) / Z||^2, Z = SVF_NORMALISER (as ``svf_loss``)
        total = L_pull + L_push + L_SIE'         (the caller multiplies by LOSS_WEIGHTS["pgg"] = 1e-4)
    The parts are summed with weight 1 inside [I]: the paper gives one weight for L_PGG. L_SIE' is small
    (normalised offsets of ~0.05 give ~3e-3), like L_SIE next to L_KE.
    Each point gets its own slot in its person's row of the (B, N, M, E) tensor given to ``ae_pull_push``,
    so several points of one joint (e.g. extra pixels of a joint disk) are fine and no joint type is needed.
    Returns scalars ``ke_pull, ke_push, ke, sie, total`` (mean over images; L_SIE' pooled over the batch).
    """
    from mpat_nb.config import SVF_NORMALISER

    ke, sie = refined.ke, refined.sie
    if ke.ndim == 2:
        ke = ke.unsqueeze(-1)
    batch, num_points, num_ke = ke.shape
    if sie.shape != (batch, num_points, 2) or person.shape != (batch, num_points) or valid.shape != person.shape \
            or centres.ndim != 3 or centres.shape[0] != batch or centres.shape[2] != 2:
        raise ValueError(f"pgg_loss expects refined.ke (B, M, E), refined.sie (B, M, 2), person and valid (B, M), "
                         f"centres (B, N, 2); got {tuple(ke.shape)}, {tuple(sie.shape)}, {tuple(person.shape)}, "
                         f"{tuple(valid.shape)}, {tuple(centres.shape)}")
    num_people = centres.shape[1]
    valid = valid.bool() & (person >= 0) & (person < num_people)
    person = person.long().clamp(0, max(num_people - 1, 0))

    # member[b, n, m]: point m is a valid point of person n -> AE pull/push with the points as "joints"
    people = torch.arange(num_people, device=person.device)
    member = valid[:, None, :] & (person[:, None, :] == people[None, :, None])        # (B, N, M)
    pull, push = ae_pull_push(ke[:, None].expand(batch, num_people, num_points, num_ke), member)

    # ||(sie_i - c_{n_i}) / Z||^2 over valid points, pooled over the batch
    target = centres.to(sie.dtype).gather(1, person[..., None].expand(batch, num_points, 2))  # (B, M, 2)
    squared_error = (((sie - target) / SVF_NORMALISER) ** 2).sum(dim=-1)                     # (B, M)
    squared_error = torch.where(valid, squared_error, 0.0)
    sie_term = squared_error.sum() / valid.sum().clamp(min=1)
    ke_term = pull + push
    return {"ke_pull": pull, "ke_push": push, "ke": ke_term, "sie": sie_term, "total": ke_term + sie_term}


# ----------------------------------------------------------------------------------------------
# TemporalNet losses (docs/method.md 3.1-3.2), added below the SpatialNet ones
# ----------------------------------------------------------------------------------------------
from mpat_nb.config import HE_TRIPLET_MARGIN, TEMPORAL_LOSS_WEIGHTS  # noqa: E402 - kept with the code that uses it


def temporal_loss(output, identities_previous, identities_current, tvf_targets,
                  weights: Mapping[str, float] = TEMPORAL_LOSS_WEIGHTS) -> dict[str, torch.Tensor]:
    """All TemporalNet losses for one batch of frame pairs.

    output: a :class:`mpat_nb.models.temporalnet.TemporalNetOutput`; identities_previous / identities_current:
    one (N_b,) int tensor per image, the person identities of its boxes (unique across clips, e.g.
    ``mpat_nb.data.pairs.PairBatch.identities``); tvf_targets: a collated
    :class:`mpat_nb.codec_temporal.TVFTargets`; weights: ``he`` and ``tvf`` (default
    ``config.TEMPORAL_LOSS_WEIGHTS``). The triplet loss runs over the proposals of both frames of every pair,
    so the hardest negatives include people of other clips [docs/method.md 3.1].
    Returns scalars ``he, tvf_forward, tvf_backward, tvf, total`` with total = w_he L_HE + w_tvf L_TVF.
    """
    embeddings = torch.cat([*output.human_embedding_previous, *output.human_embedding_current])      # (L, D)
    identities = torch.cat([*identities_previous, *identities_current]).to(embeddings.device)        # (L,)
    he = triplet_loss(embeddings, identities)
    tvf = tvf_loss(output.tvf_forward, output.tvf_backward, tvf_targets)
    total = weights["he"] * he + weights["tvf"] * tvf["tvf"]
    return {"he": he, **tvf, "total": total}


def triplet_loss(embeddings: torch.Tensor, identities: torch.Tensor, margin: float = HE_TRIPLET_MARGIN,
                 normalize: bool = True) -> torch.Tensor:
    """Batch-hard triplet loss of the Human Embedding (docs/method.md 3.1; Hermans et al. 2017).

    embeddings: (L, D) one HE per proposal; identities: (L,) int, the same value for the same person (track
    ids made unique per clip). margin: m, default ``config.HE_TRIPLET_MARGIN`` (0.3). normalize: L2-normalise
    the embeddings first (the tracker compares normalised HE, docs/method.md 3.3).

    For every anchor a with at least one positive and one negative in the batch:
        d(a, b) = ||u_a - u_b||_2,   L_a = max(0, max_{p: same id, p != a} d(a, p) - min_{n: other id} d(a, n) + m)
    and L_HE = mean over those anchors (0 when there is none: a single person, or all one identity).
    Vectorised: one (L, L) distance matrix, no loop over people.
    """
    if embeddings.ndim != 2 or identities.shape != embeddings.shape[:1]:
        raise ValueError(f"triplet_loss expects embeddings (L, D) and identities (L,), got {tuple(embeddings.shape)} "
                         f"and {tuple(identities.shape)}")
    if len(identities) == 0:
        return embeddings.sum() * 0.0                                  # no proposal: 0, still in the graph
    if normalize:
        embeddings = torch.nn.functional.normalize(embeddings, dim=1)
    # ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b (no (L, L, D) tensor); clamped so sqrt has a finite gradient at 0
    squared_norm = (embeddings ** 2).sum(dim=1)
    distance2 = squared_norm[:, None] + squared_norm[None, :] - 2.0 * embeddings @ embeddings.T
    distance = distance2.clamp(min=1e-12).sqrt()                                               # (L, L)
    same = identities[:, None] == identities[None, :]
    positive = same & ~torch.eye(len(identities), dtype=torch.bool, device=same.device)
    negative = ~same
    # finite fills (not +-inf) so rows without a positive or a negative give no NaN gradient
    hardest_positive = torch.where(positive, distance, 0.0).amax(dim=1)                       # (L,)
    hardest_negative = torch.where(negative, distance, torch.finfo(distance.dtype).max).amin(dim=1)
    valid = positive.any(dim=1) & negative.any(dim=1)                                          # (L,)
    # L_a = max(0, d(a, p*) - d(a, n*) + m)
    per_anchor = torch.where(valid, torch.relu(hardest_positive - hardest_negative + margin), 0.0)
    return per_anchor.sum() / valid.sum().clamp(min=1)


def tvf_loss(tvf_forward: torch.Tensor, tvf_backward: torch.Tensor, targets) -> dict[str, torch.Tensor]:
    """L_TVF, masked L2 of both temporal vector fields (docs/method.md 3.2), like :func:`svf_loss`.

    tvf_forward, tvf_backward: (B, 2, H, W) predictions; targets: a collated
    :class:`mpat_nb.codec_temporal.TVFTargets` (``forward``/``backward`` (B, 2, H, W), masks (B, H, W)).
    L_fwd = sum_{b,p} m(p) ||T(p) - T*(p)||^2 / sum_{b,p} m(p) (pooled over the batch; 0 without labels),
    L_bwd likewise with T', and L_TVF = L_fwd + L_bwd. Returns scalars ``tvf_forward, tvf_backward, tvf``.
    """
    losses = {}
    for name, prediction, target, mask in (("tvf_forward", tvf_forward, targets.forward, targets.forward_mask),
                                           ("tvf_backward", tvf_backward, targets.backward, targets.backward_mask)):
        mask_shape = target.shape[:1] + target.shape[2:]
        if prediction.ndim != 4 or prediction.shape != target.shape or mask.shape != mask_shape:
            raise ValueError(f"{name}: predictions and targets must be (B, 2, H, W) and the mask (B, H, W); got "
                             f"{tuple(prediction.shape)}, {tuple(target.shape)} and {tuple(mask.shape)}")
        squared_error = ((prediction - target) ** 2).sum(dim=1)                    # ||T - T*||^2, (B, H, W)
        losses[name] = _masked_pixel_mean(squared_error[:, None], mask)
    losses["tvf"] = losses["tvf_forward"] + losses["tvf_backward"]                 # L_TVF = L_fwd + L_bwd
    return losses
