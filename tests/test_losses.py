"""SpatialNet losses: pull/push properties, masks, gradients, stack sums, and the weighted total."""

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pytest
import torch

from mpat_nb.codec import collate_targets, encode_targets
from mpat_nb.config import LOSS_WEIGHTS, ORDINAL_RELATIONS
from mpat_nb.losses import (
    ae_pull_push,
    detection_loss,
    keypoint_embedding_loss,
    ordinal_loss,
    spatial_loss,
    svf_loss,
)

K, H, W = 15, 32, 32
R = len(ORDINAL_RELATIONS)


@dataclass
class FakeOutput:
    """Stands in for ``SpatialNetOutput``: the losses only read these attributes."""

    heatmaps: torch.Tensor
    keypoint_embedding: torch.Tensor
    svf: torch.Tensor
    ordinal: torch.Tensor | None


def _random_output(batch=2, stacks=2, scale=0.1, seed=0, requires_grad=False):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(batch, stacks, K, H, W), (batch, stacks, K, H, W), (batch, stacks, 2, H, W), (batch, stacks, R, H, W)]
    tensors = [(scale * torch.randn(shape, generator=generator)).requires_grad_(requires_grad) for shape in shapes]
    return FakeOutput(*tensors)


def _scene(seed=0, num_people=(3, 2)):
    """Collated targets for a batch of synthetic images (random joints in the 32 x 32 grid)."""
    rng = np.random.default_rng(seed)
    targets = []
    for n in num_people:
        joints = np.zeros((n, K, 3))
        joints[..., :2] = rng.uniform(0, W - 1, (n, K, 2))
        joints[..., 2] = rng.random((n, K)) < 0.8
        targets.append(encode_targets(joints, None, None, (H, W), sigma=1.0, max_people=4))
    return collate_targets(targets)


def _reference_pull_push(embeddings, valid):
    """Loops over people and pairs, per image (docs/method.md 2.3)."""
    pulls, pushes = [], []
    for e, v in zip(embeddings, valid):
        means, spreads = [], []
        for person_e, person_v in zip(e, v):
            points = person_e[person_v]
            if len(points) == 0:
                continue
            mean = points.mean(dim=0)
            means.append(mean)
            spreads.append(((points - mean) ** 2).sum(dim=1).mean())
        pulls.append(sum(spreads) / len(spreads) if spreads else torch.tensor(0.0))
        pairs = list(combinations(means, 2))
        pushes.append(0.5 * sum(torch.exp(-((a - b) ** 2).sum()) for a, b in pairs) / len(pairs)
                      if pairs else torch.tensor(0.0))
    return torch.stack(pulls), torch.stack(pushes)


def test_ae_pull_push_matches_a_reference_loop():
    torch.manual_seed(0)
    embeddings = torch.randn(4, 5, 6, 2)
    valid = torch.rand(4, 5, 6) < 0.6
    valid[1] = False                      # no people
    valid[2, 1:] = False                  # one person
    pull, push = ae_pull_push(embeddings, valid, reduction="none")
    ref_pull, ref_push = _reference_pull_push(embeddings, valid)
    torch.testing.assert_close(pull, ref_pull)
    torch.testing.assert_close(push, ref_push)
    assert pull[1] == 0 and push[1] == 0 and push[2] == 0
    mean_pull, mean_push = ae_pull_push(embeddings, valid)
    torch.testing.assert_close(mean_pull, ref_pull.mean())
    torch.testing.assert_close(mean_push, ref_push.mean())


def test_pull_is_zero_when_tags_agree_and_grows_with_spread():
    torch.manual_seed(1)
    person_tags = torch.tensor([0.0, 2.0, -1.5])[None, :, None, None]
    noise = torch.randn(1, 3, K, 1)
    valid = torch.ones(1, 3, K, dtype=torch.bool)
    pulls = [float(ae_pull_push(person_tags + spread * noise, valid)[0]) for spread in (0.0, 0.1, 0.5, 1.0, 2.0)]
    assert pulls[0] == pytest.approx(0.0, abs=1e-12)
    assert all(a < b for a, b in zip(pulls, pulls[1:]))
    assert pulls[2] == pytest.approx(25 * pulls[1], rel=1e-4)                   # quadratic in the spread


def test_push_falls_as_means_separate_and_is_half_when_equal():
    valid = torch.ones(1, 2, K, dtype=torch.bool)
    pushes = []
    for distance in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0):
        embeddings = torch.tensor([0.0, distance])[None, :, None, None].expand(1, 2, K, 1)
        pushes.append(float(ae_pull_push(embeddings, valid)[1]))
    assert pushes[0] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(pushes, pushes[1:]))
    assert pushes[3] == pytest.approx(0.5 * np.exp(-1.0))
    for n in (2, 3, 5):                                                          # equal means, any N >= 2
        _, push = ae_pull_push(torch.full((1, n, K, 1), 0.7), torch.ones(1, n, K, dtype=torch.bool))
        assert float(push) == pytest.approx(0.5)
    _, push = ae_pull_push(torch.zeros(1, 1, K, 1), torch.ones(1, 1, K, dtype=torch.bool))
    assert float(push) == 0.0                                                    # a single person


def test_three_dimensional_embeddings_agree_with_one_dimensional():
    torch.manual_seed(2)
    tags = torch.randn(3, 4, K, 1)
    valid = torch.rand(3, 4, K) < 0.7
    constant = torch.tensor([0.3, -1.2]).expand(3, 4, K, 2)                      # same everywhere
    pull_1d, push_1d = ae_pull_push(tags, valid, reduction="none")
    pull_3d, push_3d = ae_pull_push(torch.cat([tags, constant], dim=3), valid, reduction="none")
    torch.testing.assert_close(pull_3d, pull_1d)
    torch.testing.assert_close(push_3d, push_1d)


def test_padding_is_ignored_even_if_it_holds_nan():
    embeddings = torch.randn(1, 3, K, 1)
    valid = torch.ones(1, 3, K, dtype=torch.bool)
    valid[0, 2] = False
    valid[0, 0, 5:] = False
    reference = ae_pull_push(embeddings, valid)
    poisoned = embeddings.clone()
    poisoned[~valid] = float("nan")
    for a, b in zip(ae_pull_push(poisoned, valid), reference):
        torch.testing.assert_close(a, b)


def test_keypoint_embedding_loss_reads_the_joint_pixels():
    targets = _scene()
    output = _random_output(stacks=1, seed=3)
    pull, push = keypoint_embedding_loss(output.keypoint_embedding, targets.keypoint_indices)
    # read the tags by hand
    index, valid = targets.keypoint_indices[..., 0], targets.keypoint_indices[..., 1].bool()
    maps = output.keypoint_embedding[:, 0].reshape(2, K, H * W)
    tags = torch.stack([maps[b, torch.arange(K)[None, :].expand_as(index[b]), index[b]] for b in range(2)])
    ref_pull, ref_push = _reference_pull_push(tags[..., None], valid)
    torch.testing.assert_close(pull, ref_pull.mean())
    torch.testing.assert_close(push, ref_push.mean())


def test_keypoint_embedding_loss_zero_pull_for_per_person_constant_maps():
    targets = _scene(num_people=(3,))
    ke = torch.zeros(1, 1, K, H * W)
    for n in range(3):
        for k in range(K):
            index, valid = targets.keypoint_indices[0, n, k].tolist()
            if valid:
                ke[0, 0, k, index] = 3.0 * n                                     # person n's tag everywhere
    pull, push = keypoint_embedding_loss(ke.reshape(1, 1, K, H, W), targets.keypoint_indices)
    assert float(pull) == pytest.approx(0.0, abs=1e-12)
    expected = 0.5 * np.mean([np.exp(-9.0), np.exp(-36.0), np.exp(-9.0)])
    assert float(push) == pytest.approx(expected, rel=1e-5)


def test_gradients_are_finite_and_only_where_supervised():
    targets = _scene()
    output = _random_output(requires_grad=True, seed=4)
    losses = spatial_loss(output, targets)
    losses["total"].backward()
    for name in ("heatmaps", "keypoint_embedding", "svf", "ordinal"):
        grad = getattr(output, name).grad
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    # KE: non-zero exactly at the valid joint pixels of each (image, joint)
    joint_pixels = torch.zeros(2, K, H * W, dtype=torch.bool)
    for b, n, k in np.ndindex(2, 4, K):
        index, valid = targets.keypoint_indices[b, n, k].tolist()
        joint_pixels[b, k, index] |= bool(valid)
    ke_grad = output.keypoint_embedding.grad.reshape(2, 2, K, H * W)
    assert torch.equal(ke_grad.ne(0), joint_pixels[:, None].expand_as(ke_grad))
    # SVF and ordinal: non-zero only on labelled pixels
    outside = targets.svf_mask == 0
    assert output.svf.grad.permute(0, 1, 3, 4, 2)[outside[:, None].expand(2, 2, H, W)].abs().sum() == 0
    assert output.ordinal.grad.permute(0, 1, 3, 4, 2)[outside[:, None].expand(2, 2, H, W)].abs().sum() == 0


def test_masks_are_respected():
    targets = _scene()
    targets.heatmap_mask[0, :10] = 0.0
    output = _random_output(seed=5)
    before = spatial_loss(output, targets)
    changed = _random_output(seed=5)
    changed.heatmaps[0, :, :, :10] += 5.0                                       # ignore region
    outside = (targets.svf_mask == 0)[:, None, None]                            # (B, 1, 1, H, W)
    changed.svf += 7.0 * outside
    changed.ordinal -= 3.0 * outside
    after = spatial_loss(changed, targets)
    for name in ("det", "sie", "aux", "total"):
        torch.testing.assert_close(after[name], before[name])
    changed.heatmaps[0, :, :, 12] += 1.0                                         # a supervised row
    assert spatial_loss(changed, targets)["det"] > before["det"]


def test_losses_sum_over_stacks():
    targets = _scene()
    one = _random_output(stacks=1, seed=6)
    two = FakeOutput(*(torch.cat([t, t], dim=1) for t in (one.heatmaps, one.keypoint_embedding, one.svf, one.ordinal)))
    losses_one, losses_two = spatial_loss(one, targets), spatial_loss(two, targets)
    for name, value in losses_one.items():
        torch.testing.assert_close(losses_two[name], 2 * value)


def test_known_values_of_the_dense_losses():
    heatmaps_gt = torch.zeros(1, 1, 2, 2)
    mask = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])
    prediction = torch.ones(1, 1, 1, 2, 2)
    assert float(detection_loss(prediction, heatmaps_gt, mask)) == pytest.approx(3 / 4)  # mean over all pixels
    svf_gt = torch.zeros(1, 2, 2, 2)
    svf_pred = torch.zeros(1, 1, 2, 2, 2)
    svf_pred[0, 0, :, 0, 0] = torch.tensor([3.0, 4.0])                           # |error|^2 = 25 at one pixel
    assert float(svf_loss(svf_pred, svf_gt, mask)) == pytest.approx(25 / 3)      # mean over 3 labelled pixels
    assert float(svf_loss(svf_pred, svf_gt, torch.zeros_like(mask))) == 0.0
    ordinal_gt = torch.zeros(1, 6, 2, 2)
    ordinal_pred = torch.zeros(1, 1, 6, 2, 2)
    ordinal_pred[0, 0, :3, 1, 1] = 1.0                                           # MSE 0.5 at one pixel
    assert float(ordinal_loss(ordinal_pred, ordinal_gt, mask)) == pytest.approx(0.5 / 3)


def test_spatial_loss_total_uses_the_weights():
    targets = _scene()
    output = _random_output(seed=7)
    losses = spatial_loss(output, targets)
    assert set(losses) == {"det", "ke_pull", "ke_push", "ke", "sie", "aux", "total"}
    torch.testing.assert_close(losses["ke"], losses["ke_pull"] + losses["ke_push"])
    expected = sum(LOSS_WEIGHTS[name] * losses[name] for name in ("det", "ke", "sie", "aux"))
    torch.testing.assert_close(losses["total"], expected)
    custom = spatial_loss(output, targets, weights={"det": 0.0, "ke": 0.0, "sie": 1.0, "aux": 0.0})
    torch.testing.assert_close(custom["total"], losses["sie"])
    no_ordinal = spatial_loss(FakeOutput(output.heatmaps, output.keypoint_embedding, output.svf, None), targets)
    assert float(no_ordinal["aux"]) == 0.0


def test_initial_loss_magnitudes(capsys):
    """Near-zero heads (as at initialisation) on a 128 x 128 image with three people, 4 stacks.

    With zero predictions the terms are known in closed form: L_det = S x target energy, pull = 0,
    push = S x 0.5, L_SIE = S x mean ||v*||^2, L_aux = S x mean o*^2. Prints the weighted terms.
    """
    rng = np.random.default_rng(0)
    joints = np.zeros((3, K, 3))
    for n, (cx, cy) in enumerate([(30, 60), (64, 64), (100, 70)]):
        joints[n, :, 0] = cx + rng.uniform(-15, 15, K)
        joints[n, :, 1] = cy + rng.uniform(-40, 40, K)
        joints[n, :, 2] = 2
    targets = collate_targets([encode_targets(joints, None, None, 128)])
    stacks = 4
    zeros = FakeOutput(torch.zeros(1, stacks, K, 128, 128), torch.zeros(1, stacks, K, 128, 128),
                       torch.zeros(1, stacks, 2, 128, 128), torch.zeros(1, stacks, R, 128, 128))
    losses = spatial_loss(zeros, targets)
    labelled = targets.svf_mask.bool()
    torch.testing.assert_close(losses["det"], stacks * (targets.heatmaps ** 2).mean())
    torch.testing.assert_close(losses["ke_push"], torch.tensor(stacks * 0.5))
    torch.testing.assert_close(losses["sie"], stacks * (targets.svf ** 2).sum(1)[labelled].mean())
    torch.testing.assert_close(losses["aux"], stacks * (targets.ordinal ** 2).mean(1)[labelled].mean())
    weighted = {name: LOSS_WEIGHTS[name] * float(losses[name]) for name in ("det", "ke", "sie", "aux")}
    with capsys.disabled():
        print("\ninitial weighted losses (4 stacks, zero heads):",
              ", ".join(f"{name} {value:.2e}" for name, value in weighted.items()))
    assert 1e-3 < weighted["det"] < 1e-1
    assert weighted["sie"] < 1e-2 * weighted["det"]                             # documented in losses.py
