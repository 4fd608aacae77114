"""Pose-Guided Grouping: gradients, identities, contraction, padding, batching, chunking, loss, decoding."""

import numpy as np
import pytest
import torch

from mpat_nb.config import SVF_NORMALISER
from mpat_nb.decode import DecodeConfig, decode_batch, extract_candidates, pgg_refiner
from mpat_nb.losses import pgg_loss
from mpat_nb.models.pgg import GatheredPoints, PGGOutput, PoseGuidedGrouping, gather_points

W = 32   # output width; delta_SIE = 6/128 * 32 = 1.5 px


def naive_pgg(ke, sie, valid, output_width, iterations=1, ke_bandwidth=1.0, sie_bandwidth=6.0 / 128):
    """Straightforward reference: loop over images, keep the valid points, full M x M kernel by differences."""
    ke_out, sie_out = ke.clone(), sie.clone()
    for b in range(ke.shape[0]):
        keep = valid[b]
        e = torch.cat([ke[b, keep] / ke_bandwidth, sie[b, keep] / (sie_bandwidth * output_width)], dim=1)
        for _ in range(iterations):
            kernel = torch.exp(-0.5 * ((e[:, None] - e[None]) ** 2).sum(-1))
            e = kernel @ e / kernel.sum(1, keepdim=True)
        ke_out[b, keep] = e[:, :ke.shape[2]] * ke_bandwidth
        sie_out[b, keep] = e[:, ke.shape[2]:] * sie_bandwidth * output_width
    return ke_out, sie_out


def random_points(batch=3, points=12, num_ke=1, seed=0, dtype=torch.float32, spread=3.0):
    generator = torch.Generator().manual_seed(seed)
    ke = torch.randn(batch, points, num_ke, generator=generator, dtype=dtype)
    sie = spread * torch.randn(batch, points, 2, generator=generator, dtype=dtype) + W / 2
    valid = torch.ones(batch, points, dtype=torch.bool)
    for b in range(batch):
        valid[b, points - 2 * b:] = False          # image b has 2 b padded points at the end
    return ke, sie, valid


def two_clusters(per_cluster=6, seed=0):
    """Two groups of points, ~0.3 bandwidths spread each, 8 bandwidths apart in KE and SIE."""
    generator = torch.Generator().manual_seed(seed)
    ke = torch.cat([0.3 * torch.randn(per_cluster, 1, generator=generator),
                    8 + 0.3 * torch.randn(per_cluster, 1, generator=generator)])[None]
    sie = torch.cat([torch.tensor([8.0, 8.0]) + 0.5 * torch.randn(per_cluster, 2, generator=generator),
                     torch.tensor([24.0, 20.0]) + 0.5 * torch.randn(per_cluster, 2, generator=generator)])[None]
    return ke, sie, torch.ones(1, 2 * per_cluster, dtype=torch.bool)


def spreads(embeddings, per_cluster):
    first, second = embeddings[0, :per_cluster], embeddings[0, per_cluster:]
    within = (first - first.mean(0)).norm(dim=1).mean() + (second - second.mean(0)).norm(dim=1).mean()
    return within.item(), (first.mean(0) - second.mean(0)).norm().item()


# ----------------------------------------------------------------------------------------------
# The module
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_entries", [2**22, 20])   # one block; 3 blocks of 2 rows (checkpointed)
def test_gradcheck_double(chunk_entries):
    ke, sie, valid = random_points(batch=2, points=5, dtype=torch.float64, spread=1.5)
    ke.requires_grad_(True)
    sie.requires_grad_(True)
    pgg = PoseGuidedGrouping(iterations=2, chunk_entries=chunk_entries)

    def function(ke, sie):
        out = pgg(ke, sie, valid, W)
        return out.ke, out.sie

    # The blocked path's full Jacobian equals the one-block path's (test_crowded_...); a fast check suffices.
    assert torch.autograd.gradcheck(function, (ke, sie), eps=1e-6, atol=1e-6, fast_mode=chunk_entries < 100)


def test_zero_iterations_is_identity():
    ke, sie, valid = random_points()
    out = PoseGuidedGrouping(iterations=0)(ke, sie, valid, W)
    assert torch.equal(out.ke, ke) and torch.equal(out.sie, sie)
    torch.testing.assert_close(out.embeddings, torch.cat([ke, sie / (6 / 128 * W)], dim=-1))


def test_two_clusters_contract():
    ke, sie, valid = two_clusters()
    before_within, before_between = spreads(PoseGuidedGrouping(iterations=0)(ke, sie, valid, W).embeddings, 6)
    within1, between1 = spreads(PoseGuidedGrouping(iterations=1)(ke, sie, valid, W).embeddings, 6)
    within3, between3 = spreads(PoseGuidedGrouping(iterations=3)(ke, sie, valid, W).embeddings, 6)
    assert within1 < 0.8 * before_within
    assert within3 < 0.5 * within1
    assert between1 == pytest.approx(before_between, rel=1e-3)
    assert between3 == pytest.approx(before_between, rel=1e-3)


def test_padding_changes_nothing_and_stays_put():
    ke, sie, valid = random_points()
    pgg = PoseGuidedGrouping(iterations=2)
    padded_ke, padded_sie = ke.clone(), sie.clone()
    padded_ke[~valid] = float("nan")                     # garbage in the padding must not leak
    padded_sie[~valid] = 1e6
    out = pgg(padded_ke, padded_sie, valid, W)
    for b in range(ke.shape[0]):
        keep = valid[b]
        alone = pgg(ke[b:b + 1, keep], sie[b:b + 1, keep], valid[b:b + 1, keep], W)
        torch.testing.assert_close(out.ke[b, keep], alone.ke[0])
        torch.testing.assert_close(out.sie[b, keep], alone.sie[0])
    assert torch.isnan(out.ke[~valid]).all()
    assert torch.equal(out.sie[~valid], padded_sie[~valid])


def test_batched_equals_per_image_loop():
    ke, sie, valid = random_points(batch=4, points=10, num_ke=2)
    for iterations in (1, 3):
        out = PoseGuidedGrouping(iterations=iterations)(ke, sie, valid, W)
        loop_ke, loop_sie = naive_pgg(ke, sie, valid, W, iterations)
        torch.testing.assert_close(out.ke, loop_ke)
        torch.testing.assert_close(out.sie, loop_sie)


def test_bandwidth_limits():
    ke, sie, valid = random_points()
    huge = PoseGuidedGrouping(ke_bandwidth=1e4, sie_bandwidth=1e4)(ke, sie, valid, W)
    for b in range(ke.shape[0]):
        keep = valid[b]
        torch.testing.assert_close(huge.ke[b, keep], ke[b, keep].mean(0).expand_as(ke[b, keep]))
        torch.testing.assert_close(huge.sie[b, keep], sie[b, keep].mean(0).expand_as(sie[b, keep]))
    tiny = PoseGuidedGrouping(ke_bandwidth=1e-4, sie_bandwidth=1e-4)(ke, sie, valid, W)
    torch.testing.assert_close(tiny.ke, ke)
    torch.testing.assert_close(tiny.sie, sie)


def test_crowded_frame_runs_chunked_and_matches_unchunked():
    # 2000 points: a 2000 x 2000 kernel, cut into blocks of 1 x 300 x 2000 entries.
    ke, sie, valid = random_points(batch=1, points=2000, seed=1, spread=8.0)
    chunked = PoseGuidedGrouping(chunk_entries=300 * 2000)
    whole = PoseGuidedGrouping(chunk_entries=2**30)
    torch.testing.assert_close(chunked(ke, sie, valid, W).ke, whole(ke, sie, valid, W).ke)
    # gradients agree too (the chunked path recomputes each block in backward)
    small = random_points(batch=2, points=40, seed=2)
    grads = []
    for pgg in (PoseGuidedGrouping(iterations=2, chunk_entries=7), PoseGuidedGrouping(iterations=2)):
        ke_in, sie_in = small[0].clone().requires_grad_(True), small[1].clone().requires_grad_(True)
        out = pgg(ke_in, sie_in, small[2], W)
        (out.ke.square().sum() + out.sie.sin().sum()).backward()
        grads.append((ke_in.grad, sie_in.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_cap_raises_a_clear_error():
    ke, sie, valid = random_points(batch=1, points=50)
    with pytest.raises(ValueError, match=r"M = 50 points.*max_points = 40.*top_k"):
        PoseGuidedGrouping(max_points=40)(ke, sie, valid, W)
    with pytest.raises(ValueError, match="valid"):
        PoseGuidedGrouping()(ke, sie, valid[:, :10], W)


def test_learnable_bandwidths_get_gradients():
    ke, sie, valid = random_points()
    pgg = PoseGuidedGrouping(learnable_bandwidths=True)
    pgg(ke, sie, valid, W).ke.square().sum().backward()
    assert pgg.log_bandwidths.grad is not None and (pgg.log_bandwidths.grad != 0).all()
    assert "log_bandwidths" in PoseGuidedGrouping().state_dict()     # a buffer when fixed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    ke, sie, valid = random_points(batch=3, points=300, seed=3)
    pgg = PoseGuidedGrouping(iterations=2, chunk_entries=3 * 300 * 50)
    cpu = pgg(ke, sie, valid, W)
    ke_gpu = ke.cuda().requires_grad_(True)
    gpu = pgg.cuda()(ke_gpu, sie.cuda(), valid.cuda(), W)
    torch.testing.assert_close(gpu.ke.cpu(), cpu.ke, rtol=1e-4, atol=1e-4)
    gpu.ke.sum().backward()
    assert torch.isfinite(ke_gpu.grad).all()


# ----------------------------------------------------------------------------------------------
# Gathering and L_PGG
# ----------------------------------------------------------------------------------------------
def _gt_batch(num_people=3, num_joints=15, height=W, seed=0):
    """keypoint_indices (1, N, K, 2) and centres (1, N, 2) of random people; the last joint of person 0 is absent."""
    generator = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, height, (1, num_people, num_joints, 2), generator=generator)
    indices = torch.stack([xy[..., 1] * height + xy[..., 0], torch.ones_like(xy[..., 0])], dim=-1)
    indices[0, 0, -1, 1] = 0
    centres = xy.float().mean(dim=2)
    return indices, centres


def test_gather_points_reads_own_joint_map_and_sie():
    indices, _ = _gt_batch()
    ke_maps = torch.randn(1, 15, W, W)
    svf = torch.randn(1, 2, W, W)
    points = gather_points(ke_maps, svf, indices)
    assert isinstance(points, GatheredPoints) and points.ke.shape == (1, 45, 1)
    m = 1 * 15 + 4                                               # person 1, joint 4
    pixel = indices[0, 1, 4, 0].item()
    y, x = divmod(pixel, W)
    assert points.ke[0, m, 0] == ke_maps[0, 4, y, x]
    torch.testing.assert_close(points.sie[0, m], torch.tensor([x, y]) + svf[0, :, y, x])
    assert points.person[0, m] == 1 and points.joint_type[0, m] == 4
    assert not points.valid[0, 14] and points.valid.sum() == 44


def test_pgg_loss_parts_vanish_at_their_optimum():
    indices, centres = _gt_batch()
    points = gather_points(torch.zeros(1, 15, W, W), torch.zeros(1, 2, W, W), indices)
    tags = torch.tensor([0.0, 5.0, 10.0])[points.person][..., None]      # KE agree within people
    refined = PGGOutput(ke=tags, sie=centres[0][points.person], embeddings=torch.zeros(1, 45, 3))
    losses = pgg_loss(refined, points.person, points.valid, centres)
    assert losses["ke_pull"].item() == 0.0
    assert losses["sie"].item() == 0.0
    assert losses["ke_push"].item() == pytest.approx(0.5 * (2 * np.exp(-25) + np.exp(-100)) / 3)
    # Off the optimum: SIE one normalised unit away from the centre everywhere gives L_SIE' = 1.
    moved = PGGOutput(ke=tags, sie=refined.sie + torch.tensor([SVF_NORMALISER, 0.0]), embeddings=refined.embeddings)
    assert pgg_loss(moved, points.person, points.valid, centres)["sie"].item() == pytest.approx(1.0)


def test_pgg_loss_gradients_reach_ke_and_svf_maps():
    indices, centres = _gt_batch()
    ke_maps = (0.5 * torch.randn(1, 15, W, W)).requires_grad_(True)
    svf = torch.randn(1, 2, W, W).requires_grad_(True)
    points = gather_points(ke_maps, svf, indices)
    refined = PoseGuidedGrouping()(points.ke, points.sie, points.valid, W)
    pgg_loss(refined, points.person, points.valid, centres)["total"].backward()
    touched = torch.zeros(W * W, dtype=torch.bool)
    touched[indices[0, ..., 0][indices[0, ..., 1] > 0]] = True
    assert ke_maps.grad.abs().sum() > 0 and svf.grad.abs().sum() > 0
    assert svf.grad.reshape(2, -1)[:, ~touched].abs().sum() == 0        # only the GT pixels are read
    assert ke_maps.grad.reshape(15, -1)[:, ~touched].abs().sum() == 0


# ----------------------------------------------------------------------------------------------
# Inference: the refiner inside decode_batch
# ----------------------------------------------------------------------------------------------
OFFSETS = [(dx, dy) for dy in (-5, -2, 1, 4, 6) for dx in (-4, 0, 4)]      # 15 distinct joint offsets


def _hand_made_maps():
    """Two people (centres x = 8 and 24) whose KE tags are noisy (0 and 1.2 +- 0.9) but whose SVF is exact."""
    heatmaps, ke, svf = torch.zeros(1, 15, W, W), torch.zeros(1, 15, W, W), torch.zeros(1, 2, W, W)
    noise = 0.9 * torch.sin(torch.arange(15.0) * 2.3)                    # deterministic, |noise| <= 0.9
    for person, (cx, cy, tag) in enumerate([(8, 15, 0.0), (24, 15, 1.2)]):
        for k, (dx, dy) in enumerate(OFFSETS):
            x, y = cx + dx, cy + dy
            heatmaps[0, k, y, x] = 0.9
            ke[0, k, y, x] = tag + (noise[k] if person == 0 else -noise[k])
            svf[0, :, y, x] = torch.tensor([cx - x, cy - y], dtype=torch.float32)   # points at the centre
    return {"heatmaps": heatmaps, "ke": ke.unsqueeze(-1), "svf": svf}


def _is_clean(poses):
    """Every pose takes its joints from one person only (left half or right half of the image)."""
    sides = [set((pose[pose[:, 2] > 0, 0] > W / 2).tolist()) for pose in poses]
    return all(len(side) == 1 for side in sides)


def test_refiner_plugs_into_decode_batch():
    maps = _hand_made_maps()
    config = DecodeConfig(embedding="ke")
    refine = pgg_refiner(PoseGuidedGrouping(), W, config)
    poses = decode_batch(maps, config, refine=refine)[0]
    assert poses.shape == (2, 15, 3) and (poses[:, :, 2] > 0).all() and _is_clean(poses)
    # KE alone mixes the two people; PGG's product kernel (KE x SIE) cleans the tags first.
    baseline = decode_batch(maps, config)[0]
    assert len(baseline) != 2 and not _is_clean(baseline)
    # Candidates below the detection threshold keep their input embeddings.
    candidates = extract_candidates(maps["heatmaps"], maps["ke"], maps["svf"], config)[0]
    embeddings = candidates.embeddings(config, W)
    refined = refine(candidates, embeddings)
    low = candidates.scores <= config.grouping.detection_threshold
    assert low.any() and np.array_equal(refined[low], embeddings[low])
    assert not np.allclose(refined[~low], embeddings[~low])
    # With the KE + SIE embedding the refined layout matches the decoder's (K, M, E + 2).
    both = DecodeConfig(embedding="ke+sie")
    assert pgg_refiner(PoseGuidedGrouping(), W, both)(candidates, candidates.embeddings(both, W)).shape == (15, 30, 3)


def test_one_decode_argument_swaps_ae_for_pgg():
    maps = _hand_made_maps()
    explicit = decode_batch(maps, DecodeConfig(embedding="ke"), refine=pgg_refiner(PoseGuidedGrouping(), W,
                                                                                   DecodeConfig(embedding="ke")))[0]
    by_argument = decode_batch(maps, DecodeConfig(embedding="ke", pgg_iterations=1))[0]
    np.testing.assert_array_equal(explicit, by_argument)
    assert _is_clean(by_argument) and not _is_clean(decode_batch(maps, DecodeConfig(embedding="ke"))[0])
