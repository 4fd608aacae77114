"""Augmentation: geometry of images and joints agrees, flips swap sides, parameters are reusable."""

import numpy as np
import pytest

from mpat_nb.data.augment import (
    NO_AUGMENTATION,
    AugmentParams,
    augment_image,
    augment_joints,
    augment_mask,
    augment_points,
    sample_augmentation,
)
from mpat_nb.skeleton import JOINT_NAMES


def _dot_image(x, y, size=(96, 64)):
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[y - 1:y + 2, x - 1:x + 2] = 255
    return image


def test_identity_is_exact_for_same_size():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    np.testing.assert_array_equal(augment_image(image, NO_AUGMENTATION, (96, 64)), image)


@pytest.mark.parametrize("seed", range(5))
def test_joint_follows_the_pixels(seed):
    rng = np.random.default_rng(seed)
    params = sample_augmentation(rng)
    params = AugmentParams(**{**params.__dict__, "hue_deg": 0.0, "saturation": 1.0, "brightness": 0.0, "contrast": 1.0})
    x, y = 40, 30
    warped = augment_image(_dot_image(x, y), params, (80, 80))
    moved = augment_points(np.array([x, y], float), params, (96, 64), (80, 80))
    if not (2 <= moved[0] < 78 and 2 <= moved[1] < 78):
        pytest.skip("dot left the image for this draw")
    grey = warped.sum(axis=2)
    peak_y, peak_x = np.unravel_index(np.argmax(grey), grey.shape)
    assert abs(peak_x - moved[0]) <= 1.5 and abs(peak_y - moved[1]) <= 1.5


def test_flip_swaps_left_and_right_and_twice_is_identity():
    joints = np.zeros((1, 15, 3))
    right_wrist, left_wrist = JOINT_NAMES.index("right_wrist"), JOINT_NAMES.index("left_wrist")
    joints[0, right_wrist] = [10, 20, 2]
    flipped = augment_joints(joints, AugmentParams(flip=True), (100, 100), (100, 100))
    assert flipped[0, left_wrist].tolist() == [89, 20, 2]
    assert flipped[0, right_wrist, 2] == 0
    back = augment_joints(flipped, AugmentParams(flip=True), (100, 100), (100, 100))
    np.testing.assert_allclose(back, joints)


def test_joints_leaving_the_image_become_absent():
    joints = np.array([[[5.0, 5.0, 2.0]] * 15])
    moved = augment_joints(joints, AugmentParams(shift=(-0.5, 0.0)), (100, 100), (100, 100))
    assert np.all(moved == 0)


def test_the_in_view_test_is_the_generators_pixel_convention():
    """Pixel centres at integers: the image spans [-0.5, W - 0.5), the last half pixel included."""
    xs = np.array([-0.6, -0.5, 0.0, 99.0, 99.49, 99.5])
    joints = np.stack([xs, np.full_like(xs, 50.0), np.full_like(xs, 2.0)], axis=1)[:, None, :]   # (6, 1, 3)
    moved = augment_joints(np.repeat(joints, 15, axis=1), NO_AUGMENTATION, (100, 100), (100, 100))
    assert (moved[:, 0, 2] > 0).tolist() == [False, True, True, True, True, False]


def test_letterbox_keeps_centre_and_aspect():
    centre = augment_points(np.array([99.5, 49.5]), NO_AUGMENTATION, (200, 100), (128, 128))
    np.testing.assert_allclose(centre, [63.5, 63.5])
    corner = augment_points(np.array([0.0, 0.0]), NO_AUGMENTATION, (200, 100), (128, 128))
    assert corner[0] == pytest.approx(63.5 - 99.5 * 0.64) and corner[1] == pytest.approx(63.5 - 49.5 * 0.64)


def test_same_params_same_geometry_on_two_frames_and_masks_stay_labels():
    params = sample_augmentation(np.random.default_rng(3))
    mask = np.zeros((64, 96), np.int16)
    mask[10:30, 20:50] = 3
    warped = augment_mask(mask, params, (80, 80))
    assert set(np.unique(warped)) <= {0, 3}
    a = augment_image(_dot_image(40, 30), params, (80, 80))
    b = augment_image(_dot_image(40, 30), params, (80, 80))
    np.testing.assert_array_equal(a, b)


def test_colour_jitter_changes_colour_not_geometry():
    image = np.full((32, 32, 3), (200, 60, 30), np.uint8)
    jittered = augment_image(image, AugmentParams(hue_deg=90.0), (32, 32))
    assert not np.array_equal(jittered[16, 16], image[16, 16])
    assert np.all(jittered == jittered[16, 16])
