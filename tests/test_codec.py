"""Target encoding and decoding helpers: known small cases, and the vectorised encoder against a loop."""

import numpy as np
import pytest
import torch

from mpat_nb.codec import (
    SpatialTargets,
    centres_and_scales_from_joints,
    collate_targets,
    encode_targets,
    heatmap_nms,
    joints_to_output_coords,
    subpixel_refine,
    topk_candidates,
)
from mpat_nb.config import ORDINAL_RELATIONS, SVF_NORMALISER

K = 15


def _people(*joint_lists, num_joints=K):
    """joints (N, K, 3) from lists of (k, x, y) per person; every listed joint is visible (v = 2)."""
    joints = np.zeros((len(joint_lists), num_joints, 3))
    for n, joint_list in enumerate(joint_lists):
        for k, x, y in joint_list:
            joints[n, k] = (x, y, 2)
    return joints


def _encode(joints, centres=None, scales=None, size=(32, 32), **kwargs):
    """Encode on a 32 x 32 grid with sigma = 2 px (the default would scale it to 0.5 px there)."""
    kwargs.setdefault("sigma", 2.0)
    n = len(joints)
    centres = np.zeros((n, 2)) if centres is None else np.asarray(centres, dtype=float)
    scales = np.ones(n) if scales is None else np.asarray(scales, dtype=float)
    return encode_targets(joints, centres, scales, size, **kwargs)


def test_single_peak_value_and_sigma():
    targets = encode_targets(_people([(3, 10, 20)]), np.zeros((1, 2)), np.ones(1), (128, 128))
    heat = targets.heatmaps[3]
    assert heat[20, 10] == pytest.approx(1.0)
    assert int(heat.argmax()) == 20 * 128 + 10
    # default sigma = 2 px at 128 x 128: one pixel away exp(-1 / (2 * 4))
    for y, x in ((20, 11), (20, 9), (21, 10), (19, 10)):
        assert heat[y, x] == pytest.approx(np.exp(-1 / 8), rel=1e-6)
    assert heat[21, 11] == pytest.approx(np.exp(-2 / 8), rel=1e-6)
    assert torch.count_nonzero(targets.heatmaps[[k for k in range(K) if k != 3]]) == 0
    # sigma scales with the output size: 1 px at 64 x 64
    small = encode_targets(_people([(0, 10, 20)]), np.zeros((1, 2)), np.ones(1), (64, 64))
    assert small.heatmaps[0, 20, 11] == pytest.approx(np.exp(-1 / 2), rel=1e-6)
    assert targets.keypoint_indices[0, 3].tolist() == [20 * 128 + 10, 1]
    assert targets.keypoint_indices[0, 4].tolist() == [0, 0]


def test_overlapping_people_take_the_max():
    a, b = _people([(5, 10, 12)]), _people([(5, 12, 12)])
    both = _encode(np.concatenate([a, b]))
    expected = torch.maximum(_encode(a).heatmaps, _encode(b).heatmaps)
    torch.testing.assert_close(both.heatmaps, expected)
    assert both.heatmaps[5, 12, 11] == pytest.approx(np.exp(-1 / 8), rel=1e-6)   # not the sum 2 exp(-1/8)
    assert both.heatmaps[5].max() == pytest.approx(1.0)


def test_absent_and_off_grid_joints_give_no_peak_and_invalid_index():
    joints = np.zeros((1, K, 3))
    joints[0, 0] = (5, 5, 0)          # absent
    joints[0, 1] = (-3, 10, 2)        # left of the grid
    joints[0, 2] = (31.6, 10, 2)      # nearest pixel 32: off a 32-wide grid
    joints[0, 3] = (31.4, 10, 2)      # nearest pixel 31: on the grid
    joints[0, 4] = (10, 40, 2)        # below the grid
    targets = _encode(joints)
    assert torch.count_nonzero(targets.heatmaps[[0, 1, 2, 4]]) == 0
    assert targets.keypoint_indices[0, [0, 1, 2, 4], 1].tolist() == [0, 0, 0, 0]
    assert targets.keypoint_indices[0, 3].tolist() == [10 * 32 + 31, 1]
    assert targets.heatmaps[3].max() > 0.95
    assert targets.keypoint_indices[1:].abs().sum() == 0                         # padding


def test_svf_points_exactly_to_the_centre():
    centre = (14.0, 13.0)
    targets = _encode(_people([(0, 10, 10)]), centres=[centre], radius=4.0)
    svf = targets.svf * SVF_NORMALISER
    torch.testing.assert_close(svf[:, 10, 10], torch.tensor([4.0, 3.0]))
    torch.testing.assert_close(svf[:, 12, 11], torch.tensor([3.0, 1.0]))
    mask = targets.svf_mask.bool()
    assert mask[10, 14] and not mask[10, 15] and not mask[13, 13]                # disk of radius 4, inclusive
    assert int(mask.sum()) == sum(1 for dy in range(-4, 5) for dx in range(-4, 5) if dx * dx + dy * dy <= 16)
    ys, xs = torch.nonzero(mask, as_tuple=True)
    torch.testing.assert_close(xs.float() + svf[0, ys, xs], torch.full_like(xs, 14.0, dtype=torch.float32))
    torch.testing.assert_close(ys.float() + svf[1, ys, xs], torch.full_like(ys, 13.0, dtype=torch.float32))
    assert torch.count_nonzero(targets.svf[:, ~mask]) == 0
    assert torch.equal(targets.ordinal_mask, targets.svf_mask)
    assert torch.equal(targets.instance_map.bool(), mask)


def test_overlap_goes_to_the_nearer_joint():
    joints = _people([(0, 10, 10)], [(7, 15, 10)])
    centres = [(5.0, 5.0), (25.0, 20.0)]
    targets = _encode(joints, centres=centres, radius=4.0)
    owner = targets.instance_map
    assert owner[10, 12] == 1 and owner[10, 13] == 2                             # distances 2 vs 3, 3 vs 2
    assert owner[10, 10] == 1 and owner[10, 15] == 2
    svf = targets.svf * SVF_NORMALISER
    torch.testing.assert_close(svf[:, 10, 12], torch.tensor([5.0 - 12, 5.0 - 10]))
    torch.testing.assert_close(svf[:, 10, 13], torch.tensor([25.0 - 13, 20.0 - 10]))
    # an exact tie (a joint of each person at the same place) goes to the lower person index
    tie = _encode(_people([(0, 10, 10)], [(3, 10, 10)]), radius=2.0)
    assert set(tie.instance_map.unique().tolist()) == {0, 1}


def test_ordinal_ranks_left_middle_right_and_far_near():
    joints = _people([(0, 28, 5)], [(0, 4, 15)], [(0, 16, 25)])                 # middle, left, right by x
    centres = [(16.0, 5.0), (4.0, 15.0), (28.0, 25.0)]
    scales = [30.0, 10.0, 20.0]                                                  # near, far, middle
    targets = _encode(joints, centres=centres, scales=scales)
    channel = {name: targets.ordinal[i] for i, name in enumerate(ORDINAL_RELATIONS)}
    at_joint = {name: [float(m[y, x]) for x, y in ((28, 5), (4, 15), (16, 25))] for name, m in channel.items()}
    assert at_joint["left_to_right"] == [0.5, 0.0, 1.0]
    assert at_joint["right_to_left"] == [0.5, 1.0, 0.0]
    assert at_joint["top_to_bottom"] == [0.0, 0.5, 1.0]
    assert at_joint["bottom_to_top"] == [1.0, 0.5, 0.0]
    assert at_joint["far_to_near"] == [1.0, 0.0, 0.5]
    assert at_joint["near_to_far"] == [0.0, 1.0, 0.5]
    # the whole disk carries the person's value; unlabelled pixels are 0
    owned = targets.instance_map == 2
    assert torch.all(channel["right_to_left"][owned] == 1.0)
    assert torch.count_nonzero(targets.ordinal[:, targets.ordinal_mask == 0]) == 0


def test_ordinal_ties_keep_input_order_and_single_person_is_zero():
    joints = _people([(0, 5, 5)], [(0, 20, 20)])
    targets = _encode(joints, centres=[(8.0, 1.0), (8.0, 2.0)])                  # equal x
    lr = ORDINAL_RELATIONS.index("left_to_right")
    assert targets.ordinal[lr, 5, 5] == 0.0 and targets.ordinal[lr, 20, 20] == 1.0
    single = _encode(_people([(0, 5, 5)]), centres=[(8.0, 1.0)])
    assert single.ordinal[lr, 5, 5] == 0.0
    assert single.ordinal[ORDINAL_RELATIONS.index("right_to_left"), 5, 5] == 1.0


def test_people_off_the_grid_do_not_shift_ranks():
    joints = _people([(0, 5, 5)], [(0, -50, 5)], [(0, 20, 20)])                  # person 1 is off the grid
    targets = _encode(joints, centres=[(5.0, 5.0), (-50.0, 5.0), (20.0, 20.0)])
    lr = ORDINAL_RELATIONS.index("left_to_right")
    assert targets.ordinal[lr, 5, 5] == 0.0 and targets.ordinal[lr, 20, 20] == 1.0
    assert targets.person_valid.tolist()[:3] == [True, False, True]


def test_collate_stacks_and_moves():
    first = _encode(_people([(0, 5, 5)]), max_people=4)
    second = _encode(_people([(1, 9, 9)], [(2, 20, 3)]), max_people=4)
    batch = collate_targets([first, second])
    assert isinstance(batch, SpatialTargets)
    assert batch.heatmaps.shape == (2, K, 32, 32) and batch.keypoint_indices.shape == (2, 4, K, 2)
    assert batch.svf.shape == (2, 2, 32, 32) and batch.ordinal.shape == (2, len(ORDINAL_RELATIONS), 32, 32)
    assert batch.instance_map.dtype == torch.int64 and batch.centres.shape == (2, 4, 2)
    assert torch.equal(batch.heatmaps[1], second.heatmaps) and torch.equal(batch.svf_mask[0], first.svf_mask)
    moved = batch.to("cpu")
    assert torch.equal(moved.keypoint_indices, batch.keypoint_indices)
    with pytest.raises(ValueError, match="max_people"):
        collate_targets([first, _encode(_people([(0, 5, 5)]), max_people=5)])


def test_too_many_people_raises():
    joints = np.tile(_people([(0, 5, 5)]), (4, 1, 1))
    with pytest.raises(ValueError, match="max_people"):
        _encode(joints, max_people=3)
    assert _encode(joints, max_people=4).keypoint_indices[:, 0, 1].tolist() == [1, 1, 1, 1]


def test_no_people_and_ignore_mask():
    ignore = np.zeros((32, 32), dtype=bool)
    ignore[:4, :8] = True
    targets = _encode(np.zeros((0, K, 3)), ignore_mask=ignore)
    assert targets.heatmaps.abs().sum() == 0 and targets.svf_mask.sum() == 0
    assert targets.heatmap_mask.sum() == 32 * 32 - 32
    assert torch.all(targets.heatmap_mask[:4, :8] == 0)


def test_default_centres_and_scales():
    joints = _people([(0, 2, 4), (1, 6, 8)])
    centres, scales = centres_and_scales_from_joints(joints)
    torch.testing.assert_close(centres, torch.tensor([[4.0, 6.0]]))
    torch.testing.assert_close(scales, torch.tensor([np.hypot(4, 4)], dtype=torch.float32))
    targets = encode_targets(joints, None, None, 32)
    torch.testing.assert_close(targets.centres[0], torch.tensor([4.0, 6.0]))


def test_joints_to_output_coords_pixel_centres():
    joints = np.array([[0, 0, 1], [511, 511, 1], [255.5, 255.5, 1], [3, 3, 0]], dtype=float)
    out = joints_to_output_coords(joints, 512, 128)
    np.testing.assert_allclose(out[:, :2], [[-0.375, -0.375], [127.375, 127.375], [63.5, 63.5], [0, 0]])
    back = joints_to_output_coords(out[:3], 128, 512)
    np.testing.assert_allclose(back, joints[:3])
    # non-square (H, W): x uses widths, y heights; tensors stay tensors
    tensor = joints_to_output_coords(torch.tensor([[7.0, 3.0]]), (8, 16), (4, 4))
    torch.testing.assert_close(tensor, torch.tensor([[1.375, 1.25]]))


def test_nms_keeps_only_local_maxima():
    torch.manual_seed(0)
    heat = torch.rand(2, 3, 9, 11)
    kept = heatmap_nms(heat)
    padded = torch.nn.functional.pad(heat, (1, 1, 1, 1), value=-1.0)
    for b, k, y, x in np.ndindex(*heat.shape):
        is_max = heat[b, k, y, x] >= padded[b, k, y:y + 3, x:x + 3].max()
        assert kept[b, k, y, x] == (heat[b, k, y, x] if is_max else 0.0)


def test_topk_candidates_finds_the_peaks_in_order():
    heat = torch.zeros(1, 2, 16, 16)
    peaks = [(0.9, 3, 4), (0.7, 10, 12), (0.5, 14, 1)]
    for score, y, x in peaks:
        heat[0, 1, y, x] = score
        heat[0, 1, y, x + 1] = score * 0.9                                       # a shoulder NMS removes
    scores, ys, xs = topk_candidates(heat, k=4)
    assert scores.shape == ys.shape == xs.shape == (1, 2, 4)
    torch.testing.assert_close(scores[0, 1, :3], torch.tensor([0.9, 0.7, 0.5]))
    assert ys[0, 1, :3].tolist() == [3, 10, 14] and xs[0, 1, :3].tolist() == [4, 12, 1]
    assert scores[0, 1, 3] == 0 and torch.all(scores[0, 0] == 0)
    with pytest.raises(ValueError, match="pixels"):
        topk_candidates(heat, k=257)


def test_subpixel_moves_toward_the_higher_neighbour():
    heat = torch.zeros(1, 1, 8, 8)
    heat[0, 0, 4, 4] = 1.0
    heat[0, 0, 4, 5] = 0.6          # right higher than left -> +0.25 in x
    heat[0, 0, 3, 4] = 0.3          # above higher than below -> -0.25 in y
    heat[0, 0, 0, 2] = 1.0          # on the top border: y does not move
    heat[0, 0, 0, 1] = 0.5
    heat[0, 0, 1, 2] = 0.5
    x, y = subpixel_refine(heat, torch.tensor([[[4, 0, 6]]]), torch.tensor([[[4, 2, 6]]]))
    assert x.tolist() == [[[4.25, 1.75, 6.0]]] and y.tolist() == [[[3.75, 0.0, 6.0]]]


def _reference_encode(joints, centres, scales, size, sigma, radius, truncate=4.0):
    """Slow, obvious encoder: loops over people, joints and pixels, in float64."""
    height, width = size
    num_people, num_joints, _ = joints.shape
    heatmaps = np.zeros((num_joints, height, width))
    svf = np.zeros((2, height, width))
    ordinal = np.zeros((6, height, width))
    instance = np.zeros((height, width), dtype=np.int64)
    on_grid = np.zeros((num_people, num_joints), dtype=bool)
    for n in range(num_people):
        for k in range(num_joints):
            x, y, v = joints[n, k]
            px, py = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
            on_grid[n, k] = v > 0 and 0 <= px < width and 0 <= py < height
    ranked = [n for n in range(num_people) if on_grid[n].any()]
    values = np.zeros((num_people, 6))
    keys = [centres[:, 0], centres[:, 1], scales]
    for r, key in enumerate(keys):
        order = sorted(ranked, key=lambda n: (key[n], n))
        for rank, n in enumerate(order):
            o = rank / max(len(ranked) - 1, 1)
            values[n, 2 * r], values[n, 2 * r + 1] = o, 1 - o
    for py in range(height):
        for px in range(width):
            best, owner = np.inf, -1
            for n in range(num_people):
                for k in range(num_joints):
                    if not on_grid[n, k]:
                        continue
                    x, y, _ = joints[n, k]
                    d2 = (px - x) ** 2 + (py - y) ** 2
                    if d2 <= (truncate * sigma) ** 2:
                        heatmaps[k, py, px] = max(heatmaps[k, py, px], np.exp(-d2 / (2 * sigma ** 2)))
                    if d2 <= radius ** 2 and d2 < best:
                        best, owner = d2, n
            if owner >= 0:
                instance[py, px] = owner + 1
                svf[:, py, px] = (centres[owner] - (px, py)) / SVF_NORMALISER
                ordinal[:, py, px] = values[owner]
    return heatmaps, svf, ordinal, instance


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_encoder_equals_reference_loop(seed):
    rng = np.random.default_rng(seed)
    size, num_people, num_joints = (20, 26), 4, 5                                # non-square: catches x/y swaps
    joints = np.zeros((num_people, num_joints, 3))
    # coordinates on a 1/8 px lattice are exact in float32, so both encoders see the same distances
    joints[..., 0] = np.round(rng.uniform(-3, 28, (num_people, num_joints)) * 8) / 8
    joints[..., 1] = np.round(rng.uniform(-3, 22, (num_people, num_joints)) * 8) / 8
    joints[..., 2] = rng.random((num_people, num_joints)) < 0.8
    joints[1, :, 0] += 40.0                                                      # one person entirely off the grid
    centres = np.round(rng.uniform(0, 20, (num_people, 2)) * 8) / 8
    scales = rng.choice([5.0, 10.0, 15.0], num_people)                           # with ties
    sigma, radius = 1.5, 3.0
    got = encode_targets(joints, centres, scales, size, sigma=sigma, radius=radius, max_people=6)
    heatmaps, svf, ordinal, instance = _reference_encode(joints, centres, scales, size, sigma, radius)
    torch.testing.assert_close(got.heatmaps.double(), torch.from_numpy(heatmaps), atol=1e-6, rtol=1e-5)
    assert torch.equal(got.instance_map, torch.from_numpy(instance))
    torch.testing.assert_close(got.svf.double(), torch.from_numpy(svf), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got.ordinal.double(), torch.from_numpy(ordinal), atol=1e-6, rtol=1e-6)
    assert torch.equal(got.svf_mask.bool(), torch.from_numpy(instance > 0))


def test_training_and_tracking_read_the_same_pixel_at_half_way_points():
    """One rounding rule (codec.nearest_pixel, floor(x + 0.5)): the KE target pixel of a joint at x = 2.5 and the
    pixel the tracker reads its SIE / TIE at are the same (np.rint would read pixel 2, round half to even)."""
    from mpat_nb.codec import instance_embedding, instance_embedding_at, instance_embedding_gathered, nearest_pixel

    joints = torch.tensor([[[2.5, 4.5, 1.0]] + [[0.0, 0.0, 0.0]] * 14])           # (N, K, 3): one joint at (2.5, 4.5)
    targets = encode_targets(joints, torch.tensor([[3.0, 5.0]]), torch.tensor([10.0]), (8, 8))
    trained_pixel = int(targets.keypoint_indices[0, 0, 0])                          # y W + x
    field = torch.randn(2, 8, 8)
    tracked = instance_embedding_at(field.numpy(), np.array([[2.5, 4.5]]))[0]       # q + v(q)
    assert trained_pixel == 5 * 8 + 3 and nearest_pixel(np.array([2.5, 4.5])).tolist() == [3, 5]
    np.testing.assert_allclose(tracked, [3 + field[0, 5, 3], 5 + field[1, 5, 3]], rtol=1e-6)
    dense = instance_embedding(field[None])[0]                                       # (2, H, W)
    gathered = instance_embedding_gathered(field[None], torch.tensor([[trained_pixel]]))[0, 0]
    torch.testing.assert_close(gathered, dense[:, 5, 3])
    np.testing.assert_allclose(tracked, dense[:, 5, 3].numpy(), rtol=1e-6)
