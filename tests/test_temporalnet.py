"""TemporalNet foundation: presets, HE (RoI-Align, ResNet-50 init), TIE, TVF targets, HE/TVF losses, frame pairs."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision

from mpat_nb.codec_temporal import TVFTargets, boxes_from_joints, collate_tvf_targets, encode_tvf_targets
from mpat_nb.config import HE_TRIPLET_MARGIN, SVF_NORMALISER, TEMPORAL_PRESETS, get_temporal_config
from mpat_nb.data.annotations import Person
from mpat_nb.data.augment import AugmentParams, augment_image
from mpat_nb.data.pairs import SyntheticPairDataset, collate_pairs, make_pair_sample
from mpat_nb.data.synth import SyntheticVideoSource
from mpat_nb.losses import temporal_loss, triplet_loss, tvf_loss
from mpat_nb.models import count_parameters
from mpat_nb.models.temporalnet import HumanEmbeddingBranch, TemporalNet, TemporalNetOutput
from mpat_nb.skeleton import NUM_JOINTS
from mpat_nb.utils import InputError

torch.set_num_threads(1)
K = NUM_JOINTS
#: tiny widths at hourglass depth 2 (grid multiple of 4): milliseconds per forward where the preset is not the point
MICRO = dataclasses.replace(TEMPORAL_PRESETS["tiny"], name="micro", feature_channels=8, roi_size=(8, 4),
                            he_stage_planes=(4, 4, 8), mid_level_dim=16, tie_channels=8, tie_hourglass_depth=2,
                            tie_increase=4, he_image_input=False)      # features only (the RGB input: its own test)


def fake_spatial(batch, channels, height, width, seed=0):
    """Stands in for SpatialNetOutput: TemporalNet reads features, heatmaps_final and svf_final."""
    generator = torch.Generator().manual_seed(seed)
    return SimpleNamespace(features=torch.rand(batch, channels, height, width, generator=generator),
                           heatmaps_final=torch.rand(batch, K, height, width, generator=generator),
                           svf_final=0.1 * torch.randn(batch, 2, height, width, generator=generator))


def person(joints_xy, track_id, centre=None):
    """A Person whose first len(joints_xy) joints are present (poseval order -> 17 PoseTrack slots)."""
    from mpat_nb.skeleton import JOINT_TO_SLOT17

    keypoints = np.zeros((17, 3))
    for k, (x, y) in enumerate(joints_xy):
        keypoints[JOINT_TO_SLOT17[k]] = (x, y, 2)
    return Person(keypoints, track_id=track_id, centre=centre)


# ----------------------------------------------------------------------------------------------
# Presets and model shapes
# ----------------------------------------------------------------------------------------------
def test_presets_and_config_round_trip():
    paper, tiny = get_temporal_config("paper"), get_temporal_config("tiny")
    assert paper.human_embedding_dim == 3072 and paper.mid_level_dim == 1024 and paper.high_level_dim == 2048
    assert paper.tie_in_channels == 2 * (256 + 15 + 2)                         # 546, docs/method.md 3.2
    assert tiny.human_embedding_dim < paper.human_embedding_dim
    for config in TEMPORAL_PRESETS.values():
        config.check_spatial(config.spatial_preset)
    with pytest.raises(InputError, match="feature_channels=96"):
        paper.check_spatial("tiny")
    saved = dataclasses.asdict(MICRO)
    assert get_temporal_config(saved) == MICRO
    assert get_temporal_config({k: list(v) if isinstance(v, tuple) else v for k, v in saved.items()}) == MICRO
    with pytest.raises(InputError, match="paper.*tiny"):
        get_temporal_config("huge")
    with pytest.raises(InputError, match="res5a and res5b"):
        dataclasses.replace(MICRO, he_stage_blocks=(1, 1, 1))


def test_tiny_preset_shapes_with_empty_and_single_person_frames():
    config = get_temporal_config("tiny")
    torch.manual_seed(0)
    model = TemporalNet(config).train()                          # train mode: BatchNorm sees the real batches
    previous, current = fake_spatial(2, 96, 32, 32, 0), fake_spatial(2, 96, 32, 32, 1)
    boxes_previous = [torch.tensor([[2.0, 3.0, 12.0, 25.0], [15.5, 0.5, 30.5, 31.0]]), torch.zeros(0, 4)]
    boxes_current = [torch.tensor([[4.0, 4.0, 14.0, 28.0]]), torch.zeros(0, 4)]
    images_previous, images_current = torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128)     # the RGB frames
    out = model(previous, current, boxes_previous, boxes_current, images_previous, images_current)
    assert isinstance(out, TemporalNetOutput)
    dim = config.human_embedding_dim
    assert [tuple(e.shape) for e in out.human_embedding_previous] == [(2, dim), (0, dim)]
    assert [tuple(e.shape) for e in out.human_embedding_current] == [(1, dim), (0, dim)]
    assert out.tvf_forward.shape == out.tvf_backward.shape == (2, 2, 32, 32)
    total = sum(e.sum() for e in out.human_embedding_previous + out.human_embedding_current)
    (total + out.tvf_forward.sum() + out.tvf_backward.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_paper_preset_shapes_on_meta_device():
    config = get_temporal_config("paper")
    with torch.device("meta"):
        model = TemporalNet(config)
        previous, current = (SimpleNamespace(features=torch.zeros(2, 256, 128, 128),
                                             heatmaps_final=torch.zeros(2, K, 128, 128),
                                             svf_final=torch.zeros(2, 2, 128, 128)) for _ in range(2))
        boxes = [torch.zeros(3, 4), torch.zeros(0, 4)]
        out = model(previous, current, boxes, boxes)
    assert [tuple(e.shape) for e in out.human_embedding_current] == [(3, 3072), (0, 3072)]
    assert out.tvf_forward.shape == (2, 2, 128, 128)
    # ResNet-50 res3-res5 (23.3 M) + the 4096 -> 1024 mid-level fc (4.2 M)
    assert 27e6 < count_parameters(model.human_embedding) < 28e6
    assert model.temporal_instance.reduce[0].in_channels == 546


def test_small_preset_reads_spatialnet_small_on_meta_device():
    config = get_temporal_config("small")
    config.check_spatial("small")
    with torch.device("meta"):
        model = TemporalNet(config)
        previous, current = (SimpleNamespace(features=torch.zeros(2, 128, 64, 64),
                                             heatmaps_final=torch.zeros(2, K, 64, 64),
                                             svf_final=torch.zeros(2, 2, 64, 64)) for _ in range(2))
        boxes = [torch.zeros(3, 4), torch.zeros(0, 4)]
        images = torch.zeros(2, 3, 256, 256)
        out = model(previous, current, boxes, boxes, images, images)
    assert [tuple(e.shape) for e in out.human_embedding_current] == [(3, 768), (0, 768)]
    assert out.tvf_forward.shape == out.tvf_backward.shape == (2, 2, 64, 64)
    assert model.temporal_instance.reduce[0].in_channels == 2 * (128 + K + 2)


def test_zero_proposals_in_the_whole_batch_leave_batchnorm_alone():
    model = HumanEmbeddingBranch(MICRO).train()
    before = model.res3[0].bn1.running_mean.clone()
    embeddings = model(torch.rand(2, 8, 16, 16), [torch.zeros(0, 4), torch.zeros(0, 4)])
    assert [tuple(e.shape) for e in embeddings] == [(0, MICRO.human_embedding_dim)] * 2
    assert torch.equal(model.res3[0].bn1.running_mean, before)
    single = model(torch.rand(1, 8, 16, 16), [torch.tensor([[1.5, 1.5, 9.5, 13.5]])])[0]    # one person, train mode
    assert single.shape == (1, MICRO.human_embedding_dim) and torch.isfinite(single).all()


def test_roi_align_uses_the_pixel_centre_convention():
    model = HumanEmbeddingBranch(MICRO)
    height, width = 16, 20
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    features = torch.zeros(1, 8, height, width)
    features[0, 0], features[0, 1] = xs, ys                       # channel 0 = x, channel 1 = y of the pixel centre
    features[0, 2, :, 2:10] = 1.0                                 # a block: every row, columns 2..9
    box = torch.tensor([[1.5, -0.5, 9.5, 15.5]])                  # exactly that block of pixels
    regions = model.roi_features(features, [box])                 # (1, 8, 8, 4): 2 x 2-pixel bins
    h, w = MICRO.roi_size
    bin_x = 1.5 + (torch.arange(w) + 0.5) * 8.0 / w               # bin centres (linear ramps are exact)
    bin_y = -0.5 + (torch.arange(h) + 0.5) * 16.0 / h
    torch.testing.assert_close(regions[0, 0], bin_x.expand(h, w))
    torch.testing.assert_close(regions[0, 1], bin_y[:, None].expand(h, w))
    # 2 samples per bin and axis land on pixel centres: nothing leaks in from outside the block (a half-pixel
    # error in the convention would blend in the zero columns 1 and 10)
    torch.testing.assert_close(regions[0, 2], torch.ones(h, w), rtol=0, atol=0)
    beside = model.roi_features(features, [torch.tensor([[9.5, -0.5, 17.5, 15.5]])])     # columns 10..17
    assert beside[0, 2].abs().max() == 0


def test_bad_boxes_and_mismatched_frames_name_the_fix():
    model = TemporalNet(MICRO)
    previous, current = fake_spatial(1, 8, 16, 16), fake_spatial(1, 8, 16, 20)
    with pytest.raises(ValueError, match="letterbox"):
        model(previous, current, [torch.zeros(0, 4)], [torch.zeros(0, 4)])
    with pytest.raises(ValueError, match="not x, y, w, h"):
        model.human_embedding(previous.features, [torch.tensor([[5.0, 5.0, 3.0, 2.0]])])
    with pytest.raises(ValueError, match="wrap a single image"):
        model.human_embedding(previous.features, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="96, H, W"):
        TemporalNet("tiny").human_embedding(previous.features, [torch.zeros(0, 4)])
    tiny_features = torch.zeros(1, 96, 16, 16)
    with pytest.raises(ValueError, match="reads the RGB input images too"):
        TemporalNet("tiny").human_embedding(tiny_features, [torch.zeros(0, 4)])
    with pytest.raises(ValueError, match="reads the RGB input images too"):                     # not the same frame
        TemporalNet("tiny").human_embedding(tiny_features, [torch.zeros(0, 4)], torch.zeros(1, 3, 64, 32))


def test_temporal_instance_embedding_is_pixel_plus_tvf():
    tvf = torch.zeros(1, 2, 4, 6)
    tvf[0, 0, 1, 2] = 3.0 / SVF_NORMALISER
    out = TemporalNetOutput([], [], tvf, torch.zeros_like(tvf))
    tie = out.temporal_instance_embedding("forward")
    assert tie[0, 0, 1, 2] == 2 + 3.0 and tie[0, 1, 1, 2] == 1 and tie[0, 0, 3, 5] == 5


# ----------------------------------------------------------------------------------------------
# ResNet-50 initialisation
# ----------------------------------------------------------------------------------------------
def test_he_initialises_from_a_torchvision_resnet50_state_dict(tmp_path):
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50(weights=None)             # random weights, no download
    with torch.no_grad():
        resnet.layer4[2].bn3.running_mean.uniform_()               # a buffer too, not only parameters
    path = tmp_path / "resnet50.pth"
    torch.save({f"module.{k}": v for k, v in resnet.state_dict().items()}, path)   # DataParallel prefix
    model = TemporalNet("paper", resnet50_weights=path)
    he = model.human_embedding
    torch.testing.assert_close(he.res3[0].conv1.weight, resnet.layer2[0].conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(he.res4[5].conv3.weight, resnet.layer3[5].conv3.weight, rtol=0, atol=0)
    torch.testing.assert_close(he.res5[0].downsample[0].weight, resnet.layer4[0].downsample[0].weight, rtol=0, atol=0)
    torch.testing.assert_close(he.res5[2].bn3.running_mean, resnet.layer4[2].bn3.running_mean, rtol=0, atol=0)

    with pytest.raises(InputError, match="wrong-shape.*preset 'paper'"):
        HumanEmbeddingBranch("tiny", resnet50_weights=path)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(InputError, match="missing"):
        he.load_resnet50(tmp_path / "resnet18.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(InputError, match="not a state dict"):
        he.load_resnet50(tmp_path / "list.pth")
    with pytest.raises(InputError, match="do not exist"):
        he.load_resnet50(tmp_path / "absent.pth")


# ----------------------------------------------------------------------------------------------
# Targets
# ----------------------------------------------------------------------------------------------
def _one_joint(*points):
    """(N, K, 3) joints with only joint 0 present at each given (x, y)."""
    joints = torch.zeros(len(points), K, 3)
    for n, (x, y) in enumerate(points):
        joints[n, 0] = torch.tensor([x, y, 2.0])
    return joints


def test_tvf_targets_on_a_hand_made_pair():
    # frame t-1: track 7 at (3, 3), track 3 at (10, 8); frame t: track 3 at (12, 9), track 9 at (4, 12).
    joints_previous, centres_previous = _one_joint((3, 3), (10, 8)), torch.tensor([[3.0, 4.0], [10.0, 9.0]])
    joints_current, centres_current = _one_joint((12, 9), (4, 12)), torch.tensor([[12.5, 10.0], [4.0, 13.0]])
    targets = encode_tvf_targets(joints_previous, centres_previous, [7, 3], joints_current, centres_current, [3, 9],
                                 (16, 16), radius=1.0)
    assert targets.forward.shape == (2, 16, 16) and targets.forward_mask.shape == (16, 16)
    # forward: only track 3's disk (5 pixels: radius 1) is labelled; T*(p) = (c_3^(t) - p) / Z
    assert targets.forward_mask.sum() == 5 and targets.forward_mask[8, 10] == 1 and targets.forward_mask[3, 3] == 0
    torch.testing.assert_close(targets.forward[:, 8, 10], torch.tensor([12.5 - 10, 10.0 - 8]) / SVF_NORMALISER)
    torch.testing.assert_close(targets.forward[:, 7, 10], torch.tensor([12.5 - 10, 10.0 - 7]) / SVF_NORMALISER)
    assert targets.forward[:, 3, 3].abs().sum() == 0                        # track 7 left: no target, no value
    # backward: track 3's disk in frame t, T'*(q) = (c_3^(t-1) - q) / Z; track 9 just entered: masked
    assert targets.backward_mask.sum() == 5 and targets.backward_mask[12, 4] == 0
    torch.testing.assert_close(targets.backward[:, 9, 13], torch.tensor([10.0 - 13, 9.0 - 9]) / SVF_NORMALISER)

    empty = encode_tvf_targets(torch.zeros(0, K, 3), torch.zeros(0, 2), [], joints_current, centres_current,
                               [3, 9], 16)
    assert empty.forward_mask.sum() == 0 and empty.backward_mask.sum() == 0
    batch = collate_tvf_targets([targets, empty])
    assert batch.forward.shape == (2, 2, 16, 16) and batch.backward_mask.shape == (2, 16, 16)
    with pytest.raises(ValueError, match="repeat"):
        encode_tvf_targets(joints_previous, centres_previous, [3, 3], joints_current, centres_current, [3, 9], 16)


def test_tvf_of_overlapping_people_keeps_the_owner():
    # two people of frame t-1 one pixel apart; only the first is in frame t. The second owns its own pixel,
    # so the first person's vector is not painted there.
    joints = _one_joint((5, 5), (7, 5))
    targets = encode_tvf_targets(joints, torch.tensor([[5.0, 5.0], [7.0, 5.0]]), [1, 2],
                                 _one_joint((6, 6)), torch.tensor([[6.0, 6.0]]), [1], 12, radius=1.5)
    assert targets.forward_mask[5, 5] == 1 and targets.forward_mask[5, 7] == 0 and targets.forward_mask[5, 6] == 1


def test_boxes_from_joints():
    joints = _one_joint((4, 6))
    joints[0, 1] = torch.tensor([13.0, 26.0, 2.0])
    box = boxes_from_joints(joints, (32, 32), padding=0.0, min_size=0.0)[0]
    torch.testing.assert_close(box, torch.tensor([3.5, 5.5, 13.5, 26.5]))              # pixels 4..13 x 6..26
    padded = boxes_from_joints(joints, (32, 32), padding=0.2, min_size=0.0)[0]
    torch.testing.assert_close(padded, torch.tensor([2.5, 3.4, 14.5, 28.6]))             # +10 % of each side, each end
    tiny = boxes_from_joints(_one_joint((0, 31)), (32, 32), min_size=4.0)[0]
    torch.testing.assert_close(tiny, torch.tensor([-0.5, 29.0, 2.0, 31.5]))               # at least 4 px, clipped
    with pytest.raises(ValueError, match="at least one present joint"):
        boxes_from_joints(torch.zeros(1, K, 3), 32)


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------
def _reference_triplet(embeddings, identities, margin):
    """Batch-hard triplet loss written with loops, for comparison."""
    embeddings = torch.nn.functional.normalize(embeddings, dim=1)
    losses = []
    for a in range(len(identities)):
        positives = [torch.dist(embeddings[a], embeddings[p]) for p in range(len(identities))
                     if p != a and identities[p] == identities[a]]
        negatives = [torch.dist(embeddings[a], embeddings[n]) for n in range(len(identities))
                     if identities[n] != identities[a]]
        if positives and negatives:
            losses.append(torch.relu(max(positives) - min(negatives) + margin))
    return torch.stack(losses).mean() if losses else torch.tensor(0.0)


def test_triplet_loss_zero_when_separated_positive_otherwise():
    generator = torch.Generator().manual_seed(0)
    identities = torch.tensor([0, 0, 1, 1, 2, 2, 5])
    separated = torch.eye(8)[identities] + 0.01 * torch.randn(7, 8, generator=generator)   # identities orthogonal
    assert triplet_loss(separated, identities) == 0
    mixed = torch.randn(7, 8, generator=generator, requires_grad=True)
    loss = triplet_loss(mixed, identities)
    assert loss > 0
    torch.testing.assert_close(loss, _reference_triplet(mixed.detach(), identities, HE_TRIPLET_MARGIN))
    loss.backward()
    assert torch.isfinite(mixed.grad).all() and mixed.grad.abs().sum() > 0


def test_triplet_loss_degenerate_batches_are_finite():
    same_point = torch.ones(4, 3, requires_grad=True)                       # all distances 0
    loss = triplet_loss(same_point, torch.tensor([0, 0, 1, 1]))
    assert loss.item() == pytest.approx(HE_TRIPLET_MARGIN, abs=1e-5)
    loss.backward()
    assert torch.isfinite(same_point.grad).all()
    assert triplet_loss(torch.randn(3, 4), torch.tensor([4, 4, 4])) == 0    # one identity: no negative
    assert triplet_loss(torch.randn(1, 4), torch.tensor([4])) == 0          # a single person
    empty = torch.zeros(0, 4, requires_grad=True)
    assert triplet_loss(empty, torch.zeros(0, dtype=torch.long)) == 0


def test_tvf_loss_respects_the_mask():
    generator = torch.Generator().manual_seed(0)
    target = TVFTargets(torch.randn(2, 2, 8, 8, generator=generator), torch.zeros(2, 8, 8),
                        torch.randn(2, 2, 8, 8, generator=generator), torch.zeros(2, 8, 8))
    target.forward_mask[0, 2:4, 3] = 1
    target.backward_mask[1, 5, 5] = 1
    prediction_forward, prediction_backward = target.forward.clone(), target.backward.clone()
    assert tvf_loss(prediction_forward, prediction_backward, target)["tvf"] == 0
    prediction_forward = torch.where(target.forward_mask[:, None] > 0, prediction_forward, 100.0)
    assert tvf_loss(prediction_forward, prediction_backward, target)["tvf"] == 0    # outside the mask: ignored
    prediction_forward[0, :, 2, 3] += torch.tensor([3.0, 4.0])                    # one of 2 labelled pixels off by 5
    losses = tvf_loss(prediction_forward, prediction_backward, target)
    assert losses["tvf_forward"].item() == pytest.approx(25.0 / 2) and losses["tvf_backward"] == 0
    unlabelled = TVFTargets(target.forward, torch.zeros(2, 8, 8), target.backward, torch.zeros(2, 8, 8))
    assert tvf_loss(prediction_forward, prediction_backward, unlabelled)["tvf"] == 0


# ----------------------------------------------------------------------------------------------
# Frame pairs
# ----------------------------------------------------------------------------------------------
def test_pair_dataset_gap_range_and_determinism():
    dataset = SyntheticPairDataset(64, 16, length=300, render_size=(64, 64))
    gaps = []
    for index in range(300):
        info = dataset.pair_info(index)
        assert 1 <= info.frame_gap <= 5 and 0 <= info.frame_previous < info.frame_current < dataset.clip_frames
        gaps.append(info.frame_gap)
    assert set(gaps) == {1, 2, 3, 4, 5}
    first, again = dataset[3], dataset[3]
    assert torch.equal(first["image_current"], again["image_current"])
    assert torch.equal(first["tvf"].forward, again["tvf"].forward)
    assert first["frame_gap"] == dataset.pair_info(3).frame_gap
    with pytest.raises(ValueError, match="clip_frames"):
        SyntheticPairDataset(64, 16, length=2, max_frame_gap=6, clip_frames=6)


def test_pair_dataset_applies_one_augmentation_to_both_frames():
    dataset = SyntheticPairDataset(64, 16, length=8, render_size=(64, 64), clip_frames=8)
    index = next(i for i in range(8) if dataset.pair_info(i).params.flip)     # a strong, visible augmentation
    info, sample = dataset.pair_info(index), dataset[index]
    source = SyntheticVideoSource(dataset.preset, info.clip_seed, dataset.clip_frames, dataset.render_size)
    for name, t in (("image_previous", info.frame_previous), ("image_current", info.frame_current)):
        expected = torch.from_numpy(augment_image(source[t].image, info.params, (64, 64))).permute(2, 0, 1) / 255.0
        torch.testing.assert_close(sample[name], expected)
    # a static scene (gap 0: the same frame twice) gives identical images and people
    static = SyntheticPairDataset(64, 16, length=4, render_size=(64, 64), clip_frames=8, min_frame_gap=0,
                                  max_frame_gap=0)[1]
    assert torch.equal(static["image_previous"], static["image_current"])
    assert torch.equal(static["previous"].joints, static["current"].joints)
    assert torch.equal(static["previous"].boxes, static["current"].boxes)
    assert torch.equal(static["tvf"].forward_mask, static["tvf"].backward_mask)
    # and then T* is the SVF target c_n - p
    assert static["tvf"].forward_mask.sum() > 0
    torch.testing.assert_close(static["tvf"].forward, static["tvf"].backward)


def test_unequal_frame_sizes_land_on_one_grid():
    params = AugmentParams(angle_deg=20.0, scale=0.9, shift=(0.03, -0.02), flip=True)
    small = np.full((48, 64, 3), 90, np.uint8)
    large = np.full((96, 128, 3), 90, np.uint8)
    joints_small = [(10, 12), (30, 20), (40, 40)]
    joints_large = [((x + 0.5) * 2 - 0.5, (y + 0.5) * 2 - 0.5) for x, y in joints_small]   # the same place
    sample = make_pair_sample(small, [person(joints_small, 4)], large, [person(joints_large, 4)], params, 64, 16)
    torch.testing.assert_close(sample["previous"].joints, sample["current"].joints, atol=1e-4, rtol=0)
    assert sample["image_previous"].shape == sample["image_current"].shape == (3, 64, 64)
    assert sample["tvf"].forward.shape == (2, 16, 16) and sample["tvf"].forward_mask.sum() > 0


def test_collate_pairs_and_temporal_loss_on_a_batch():
    samples = [make_pair_sample(np.zeros((64, 64, 3), np.uint8), people_a, np.zeros((64, 64, 3), np.uint8), people_b,
                                AugmentParams(), 64, 16, frame_gap=2, clip_key=key)
               for key, people_a, people_b in [
                   (11, [person([(10, 10), (12, 20)], 0), person([(40, 10), (42, 30)], 1)],
                    [person([(14, 11), (15, 22)], 0), person([(45, 12), (44, 33)], 1)]),
                   (12, [], [person([(30, 30), (31, 40)], 0)]),          # frame t-1 empty, someone enters
               ]]
    batch = collate_pairs(samples)
    assert batch.images_previous.shape == (2, 3, 64, 64) and batch.tvf.forward.shape == (2, 2, 16, 16)
    assert [len(b) for b in batch.boxes_previous] == [2, 0] and [len(b) for b in batch.boxes_current] == [2, 1]
    assert batch.identities("previous")[0].tolist() == [11000, 11001]
    assert batch.identities("current")[1].tolist() == [12000]
    assert batch.tvf.forward_mask[1].sum() == 0 and batch.tvf.backward_mask[1].sum() == 0
    model = TemporalNet(MICRO).train()
    previous, current = fake_spatial(2, 8, 16, 16, 0), fake_spatial(2, 8, 16, 16, 1)
    out = model(previous, current, batch.boxes_previous, batch.boxes_current)
    losses = temporal_loss(out, batch.identities("previous"), batch.identities("current"), batch.tvf)
    assert set(losses) == {"he", "tvf_forward", "tvf_backward", "tvf", "total"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["tvf"] > 0
    losses["total"].backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_people_entering_and_leaving_at_the_border():
    """Entering: partly out of view in t-1 (off-image joints dropped, centre off the grid), whole in t.
    Leaving: in view in t-1, wholly outside in t (dropped from t, its pixels of t-1 masked)."""
    blank = np.zeros((64, 64, 3), np.uint8)
    entering_previous = person([(-12, 30), (-6, 34), (2, 36), (6, 40)], 5, centre=(-4.0, 34.0))
    entering_current = person([(8, 30), (14, 34), (22, 36), (26, 40)], 5, centre=(16.0, 34.0))
    leaving_previous = person([(56, 10), (60, 14), (62, 20)], 8, centre=(59.0, 14.0))
    leaving_current = person([(70, 10), (74, 14), (78, 20)], 8, centre=(74.0, 14.0))
    sample = make_pair_sample(blank, [entering_previous, leaving_previous], blank,
                              [entering_current, leaving_current], AugmentParams(), 64, 16)
    previous, current = sample["previous"], sample["current"]
    assert previous.track_ids.tolist() == [5, 8] and current.track_ids.tolist() == [5]   # 8 left the view
    assert int((previous.joints[0, :, 2] > 0).sum()) == 2                                 # only in-view joints stay
    assert previous.centres[0, 0] < 0                                                     # centre off the grid
    grid = torch.tensor([-0.5, -0.5, 15.5, 15.5])
    for boxes in (previous.boxes, current.boxes):                                         # proposals inside the grid
        assert (boxes[:, :2] >= grid[:2]).all() and (boxes[:, 2:] <= grid[2:]).all()
    tvf = sample["tvf"]
    # forward: the entering person's visible pixels point to its centre in t, which is in view
    y, x = int(previous.joints[0, 2, 1].round()), int(previous.joints[0, 2, 0].round())
    assert tvf.forward_mask[y, x] == 1
    torch.testing.assert_close(tvf.forward[:, y, x], (current.centres[0] - torch.tensor([x, y])) / SVF_NORMALISER)
    # backward: its pixels of t point to the off-grid centre of t-1 (the vector leaves the grid, still supervised)
    y, x = int(current.joints[0, 0, 1].round()), int(current.joints[0, 0, 0].round())
    assert tvf.backward_mask[y, x] == 1 and tvf.backward[0, y, x] < 0
    # the leaving person has no partner in t: masked, and no neighbour's vector painted on it
    y, x = int(previous.joints[1, 0, 1].round()), int(previous.joints[1, 0, 0].round())
    assert tvf.forward_mask[y, x] == 0 and tvf.forward[:, y, x].abs().sum() == 0
    # and the network takes the border proposals, including a frame whose only person just left
    model = TemporalNet(MICRO).eval()
    with torch.no_grad():
        out = model(fake_spatial(1, MICRO.feature_channels, 16, 16), fake_spatial(1, MICRO.feature_channels, 16, 16, 1),
                    [previous.boxes], [current.boxes[:0]])
    assert out.human_embedding_previous[0].shape == (2, MICRO.human_embedding_dim)
    assert out.human_embedding_current[0].shape == (0, MICRO.human_embedding_dim)
    assert torch.isfinite(out.human_embedding_previous[0]).all()


def test_residual_tie_starts_at_the_svf_and_old_configs_predict_directly():
    """tie_residual: T = v^(t-1) + dT, T' = v^(t) + dT' with dT = 0 at initialisation ("nobody moves" as SpatialNet
    sees it); a recorded config without the field (checkpoints before it existed) is the direct prediction."""
    import dataclasses as _dataclasses

    from mpat_nb.config import get_temporal_config
    from mpat_nb.models.temporalnet import TemporalInstanceBranch

    config = get_temporal_config("tiny")
    assert config.tie_residual and not get_temporal_config("paper").tie_residual
    recorded = {k: v for k, v in _dataclasses.asdict(config).items() if k != "tie_residual"}
    assert get_temporal_config(recorded).tie_residual is False
    torch.manual_seed(0)
    tie = TemporalInstanceBranch(config).eval()
    c, k = config.feature_channels, config.num_joints
    inputs = [torch.randn(2, c, 16, 16), torch.rand(2, k, 16, 16), torch.randn(2, 2, 16, 16)] * 2
    inputs[5] = torch.randn(2, 2, 16, 16)                                            # another SVF for frame t
    with torch.no_grad():
        forward, backward = tie(*inputs)
    assert torch.equal(forward, inputs[2]) and torch.equal(backward, inputs[5])
    direct = TemporalInstanceBranch(_dataclasses.replace(config, tie_residual=False)).eval()
    with torch.no_grad():
        assert not torch.equal(direct(*inputs)[0], inputs[2])


def test_he_image_input_reads_each_boxs_own_colours():
    """With he_image_input the RGB pixels under a box change its embedding, and pixels outside it do not."""
    config = get_temporal_config("tiny")
    torch.manual_seed(0)
    branch = TemporalNet(config).human_embedding.eval()
    features = torch.randn(1, 96, 16, 16)
    box = [torch.tensor([[2.0, 2.0, 6.0, 9.0]])]                     # grid pixels 2..6 x 2..9 = input 8..27 x 8..39
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        base = branch(features, box, images)[0]
        outside = images.clone()
        outside[..., 48:, 48:] = 0.0                                  # far from the box
        inside = images.clone()
        inside[..., 12:36, 10:26] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)   # paint the person red
        assert torch.allclose(branch(features, box, outside)[0], base, atol=1e-6)
        assert not torch.allclose(branch(features, box, inside)[0], base, atol=1e-3)
    regions = branch.roi_features(features, box, images)
    assert regions.shape == (1, 96 + 3, *config.roi_size)
