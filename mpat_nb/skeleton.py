"""The body skeleton: PoseTrack18 keypoint layout and the 15 joints the networks predict.

Two layouts live side by side and this module is the only place that knows both:

* **PoseTrack18 / file layout (17 slots)** - COCO order, but slots 1-2 hold ``head_bottom`` and
  ``head_top`` instead of the eyes, and the ears (slots 3-4) are never annotated (always ``0, 0, 0``).
  Every JSON file we read or write uses this layout.
* **Joint layout (K = 15)** - the annotated joints in the order of the official PoseTrack evaluation
  (poseval): ``0 right_ankle ... 14 head_top``. Networks predict these K channels, and the evaluator's
  per-joint tables use this order.

Glossary: K = 15 joints, N people; ``keypoints17: (N, 17, 3)`` and ``joints: (N, K, 3)`` hold x, y, v.
"""

from __future__ import annotations

import colorsys

import numpy as np

# ----------------------------------------------------------------------------------------------
# PoseTrack18 file layout (17 slots, COCO order with head_bottom / head_top in the eye slots)
# ----------------------------------------------------------------------------------------------
KEYPOINT_NAMES_17: tuple[str, ...] = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_KEYPOINTS_17 = len(KEYPOINT_NAMES_17)
UNANNOTATED_SLOTS_17: tuple[int, ...] = (3, 4)  # the ears: placeholders in PoseTrack18

#: COCO's own names (eyes instead of head_bottom / head_top); used by the COCO reader.
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

# ----------------------------------------------------------------------------------------------
# Joint layout (K = 15, poseval order)
# ----------------------------------------------------------------------------------------------
JOINT_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "head_bottom", "nose", "head_top",
)
NUM_JOINTS = len(JOINT_NAMES)

#: ``JOINT_TO_SLOT17[k]`` is the 17-slot index of joint k.
JOINT_TO_SLOT17: np.ndarray = np.array([KEYPOINT_NAMES_17.index(n) for n in JOINT_NAMES], dtype=np.int64)
#: ``SLOT17_TO_JOINT[s]`` is the joint index of slot s, or -1 for the unannotated ears.
SLOT17_TO_JOINT: np.ndarray = np.full(NUM_KEYPOINTS_17, -1, dtype=np.int64)
SLOT17_TO_JOINT[JOINT_TO_SLOT17] = np.arange(NUM_JOINTS)

#: Groups of the official result table (poseval): name -> joint indices. "Total" is the mean over
#: all 15 joints, not over these groups.
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (14, 12, 13),
    "Shou": (8, 9),
    "Elb": (7, 10),
    "Wri": (6, 11),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankl": (0, 5),
}

#: Limbs as pairs of joint indices (K layout), drawn from the torso outwards.
LIMBS: tuple[tuple[int, int], ...] = (
    (14, 13), (13, 12),            # head_top - nose - head_bottom
    (12, 8), (12, 9),              # neck to shoulders
    (8, 7), (7, 6),                # right arm
    (9, 10), (10, 11),             # left arm
    (8, 2), (9, 3), (2, 3),        # torso sides and hips
    (2, 1), (1, 0),                # right leg
    (3, 4), (4, 5),                # left leg
)

#: Left/right pairs in the K layout (horizontal flip swaps them).
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9))
#: ``FLIP_PERMUTATION[k]`` is the joint that k becomes after a horizontal flip.
FLIP_PERMUTATION: np.ndarray = np.arange(NUM_JOINTS)
for _left, _right in FLIP_PAIRS:
    FLIP_PERMUTATION[_left], FLIP_PERMUTATION[_right] = _right, _left
del _left, _right

#: Left/right pairs in the 17-slot layout.
FLIP_PAIRS_17: tuple[tuple[int, int], ...] = ((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

#: One RGB colour per joint (K layout): right side warm, left side cool, head neutral.
JOINT_COLORS: np.ndarray = np.array([
    (230, 60, 40), (240, 110, 50), (250, 160, 60),      # right ankle, knee, hip
    (60, 170, 250), (50, 120, 240), (40, 70, 230),      # left hip, knee, ankle
    (220, 30, 90), (235, 80, 120), (250, 130, 150),     # right wrist, elbow, shoulder
    (120, 210, 140), (70, 190, 110), (30, 160, 80),     # left shoulder, elbow, wrist
    (245, 230, 90), (255, 255, 180), (200, 200, 200),   # head bottom, nose, head top
], dtype=np.uint8)

#: Per-joint OKS sigmas (COCO values, with head_bottom/head_top taking the eye values), K layout.
#: Used by the greedy-OKS tracking baseline.
OKS_SIGMAS: np.ndarray = np.array([
    0.089, 0.087, 0.107, 0.107, 0.087, 0.089,
    0.062, 0.072, 0.079, 0.079, 0.072, 0.062,
    0.025, 0.026, 0.025,
])


def slots17_to_joints(keypoints17: np.ndarray) -> np.ndarray:
    """Select the 15 annotated joints from the 17-slot layout.

    keypoints17: (..., 17, C) -> (..., K, C)
    """
    keypoints17 = np.asarray(keypoints17)
    if keypoints17.shape[-2] != NUM_KEYPOINTS_17:
        raise ValueError(f"expected 17 keypoint slots on axis -2, got shape {keypoints17.shape}")
    return keypoints17[..., JOINT_TO_SLOT17, :]


def joints_to_slots17(joints: np.ndarray) -> np.ndarray:
    """Place K = 15 joints into the 17-slot layout; the ear slots become zeros.

    joints: (..., K, C) -> (..., 17, C)
    """
    joints = np.asarray(joints)
    if joints.shape[-2] != NUM_JOINTS:
        raise ValueError(f"expected {NUM_JOINTS} joints on axis -2, got shape {joints.shape}")
    out = np.zeros(joints.shape[:-2] + (NUM_KEYPOINTS_17, joints.shape[-1]), dtype=joints.dtype)
    out[..., JOINT_TO_SLOT17, :] = joints
    return out


def flip_joints(joints: np.ndarray, width: float) -> np.ndarray:
    """Mirror joints horizontally in an image of the given width and swap left/right.

    joints: (..., K, 3) with x, y, v -> (..., K, 3). Absent joints (v == 0) stay zero.
    Uses the pixel-centre convention x' = width - 1 - x.
    """
    joints = np.asarray(joints, dtype=np.float64)
    flipped = joints[..., FLIP_PERMUTATION, :].copy()
    present = flipped[..., 2] > 0
    flipped[..., 0] = np.where(present, width - 1 - flipped[..., 0], 0.0)
    return flipped


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour for a track id (golden-ratio hue walk)."""
    if track_id < 0:
        return (160, 160, 160)
    hue = (track_id * 0.618033988749895) % 1.0
    saturation = 0.65 + 0.3 * ((track_id * 0.37) % 1.0)
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)
