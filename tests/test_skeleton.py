"""The skeleton module: layouts, mappings, flip pairs."""

import numpy as np
import pytest

from mpat_nb import skeleton as sk


def test_layouts_have_expected_sizes_and_names():
    assert sk.NUM_KEYPOINTS_17 == 17 and sk.NUM_JOINTS == 15
    assert sk.KEYPOINT_NAMES_17[1:3] == ("head_bottom", "head_top")
    assert set(sk.JOINT_NAMES) == set(sk.KEYPOINT_NAMES_17) - {"left_ear", "right_ear"}
    # poseval order (docs/evaluation.md section 2)
    assert sk.JOINT_NAMES[0] == "right_ankle" and sk.JOINT_NAMES[12] == "head_bottom" and sk.JOINT_NAMES[14] == "head_top"


def test_slot_joint_mapping_round_trips_and_drops_ears():
    rng = np.random.default_rng(0)
    slots = rng.random((4, 17, 3))
    joints = sk.slots17_to_joints(slots)
    back = sk.joints_to_slots17(joints)
    keep = np.ones(17, bool)
    keep[list(sk.UNANNOTATED_SLOTS_17)] = False
    np.testing.assert_array_equal(back[:, keep], slots[:, keep])
    assert np.all(back[:, ~keep] == 0)
    for k, name in enumerate(sk.JOINT_NAMES):
        assert sk.KEYPOINT_NAMES_17[sk.JOINT_TO_SLOT17[k]] == name
        assert sk.SLOT17_TO_JOINT[sk.JOINT_TO_SLOT17[k]] == k


def test_wrong_shapes_raise():
    with pytest.raises(ValueError, match="17 keypoint slots"):
        sk.slots17_to_joints(np.zeros((15, 3)))
    with pytest.raises(ValueError, match="15 joints"):
        sk.joints_to_slots17(np.zeros((17, 3)))


def test_flip_pairs_are_left_right_and_involutive():
    for a, b in sk.FLIP_PAIRS:
        name_a, name_b = sk.JOINT_NAMES[a], sk.JOINT_NAMES[b]
        assert {name_a.split("_")[0], name_b.split("_")[0]} == {"left", "right"}
        assert name_a.split("_", 1)[1] == name_b.split("_", 1)[1]
    np.testing.assert_array_equal(sk.FLIP_PERMUTATION[sk.FLIP_PERMUTATION], np.arange(15))
    for a, b in sk.FLIP_PAIRS_17:
        assert sk.KEYPOINT_NAMES_17[a].split("_", 1)[1] == sk.KEYPOINT_NAMES_17[b].split("_", 1)[1]


def test_flip_joints_twice_is_identity_and_mirrors_x():
    rng = np.random.default_rng(1)
    joints = np.concatenate([rng.random((15, 2)) * 100, np.ones((15, 1))], axis=1)
    joints[3] = 0  # an absent joint stays absent
    flipped = sk.flip_joints(joints, width=100)
    np.testing.assert_allclose(sk.flip_joints(flipped, width=100), joints)
    left_ankle = sk.JOINT_NAMES.index("left_ankle")
    right_ankle = sk.JOINT_NAMES.index("right_ankle")
    assert flipped[left_ankle, 0] == pytest.approx(99 - joints[right_ankle, 0])


def test_limbs_connect_every_joint_and_track_colours_are_stable():
    used = {k for limb in sk.LIMBS for k in limb}
    assert used == set(range(15))
    assert sk.track_color(3) == sk.track_color(3)
    assert len({sk.track_color(t) for t in range(20)}) == 20
