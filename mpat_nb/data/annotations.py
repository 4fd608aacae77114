"""In-memory pose annotations: one video = frames = people, independent of any file format.

Every reader in :mod:`mpat_nb.data.formats` produces these objects and every writer consumes them; the
evaluator, the generator and (later) the tracker speak them too.

Keypoints are stored in the 17-slot PoseTrack18 layout (see :mod:`mpat_nb.skeleton`) as ``(17, 3)``
arrays of x, y, v in image pixels. ``v == 0`` means "absent" (not annotated / not predicted) and the
x, y of an absent keypoint are 0; any ``v > 0`` is present. For synthetic ground truth, ``v = 2`` is a
visible joint; joints hidden behind another person or outside the image are absent in ``keypoints``
(as in PoseTrack, where hidden joints are not labelled) and kept with ``v = 1`` in ``keypoints_all``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mpat_nb.skeleton import NUM_KEYPOINTS_17, slots17_to_joints


@dataclass
class Person:
    """One person in one frame (ground truth or prediction).

    keypoints: (17, 3) x, y, v in the PoseTrack18 slot layout; v == 0 means absent.
    scores: (17,) per-keypoint confidence for predictions, or None (ground truth).
    bbox, bbox_head: (4,) x, y, w, h in pixels, or None.
    keypoints_all: (17, 3) every joint including hidden ones (v = 1), synthetic ground truth only.
    centre: (2,) person centre x, y in pixels (synthetic ground truth: the torso centre), or None.
    extra: format-specific fields kept for a lossless round trip (e.g. COCO ``segmentation``).
    """

    keypoints: np.ndarray
    track_id: int = 0
    scores: np.ndarray | None = None
    bbox: np.ndarray | None = None
    bbox_head: np.ndarray | None = None
    score: float | None = None
    keypoints_all: np.ndarray | None = None
    centre: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = _as_keypoints(self.keypoints, "keypoints")
        if self.keypoints_all is not None:
            self.keypoints_all = _as_keypoints(self.keypoints_all, "keypoints_all")
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
            if self.scores.shape != (NUM_KEYPOINTS_17,):
                raise ValueError(f"scores must have 17 entries (one per keypoint slot), got {self.scores.shape[0]}")
        for name in ("bbox", "bbox_head"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64).reshape(-1)
                if value.shape != (4,):
                    raise ValueError(f"{name} must be [x, y, w, h], got {value.tolist()}")
                setattr(self, name, value)
        if self.centre is not None:
            self.centre = np.asarray(self.centre, dtype=np.float64).reshape(2)
        self.track_id = int(self.track_id)

    @property
    def present(self) -> np.ndarray:
        """(17,) bool: which keypoint slots are present."""
        return self.keypoints[:, 2] > 0

    @property
    def joints(self) -> np.ndarray:
        """(K, 3) the 15 annotated joints in poseval order."""
        return slots17_to_joints(self.keypoints)

    @property
    def joint_scores(self) -> np.ndarray | None:
        """(K,) per-joint scores in poseval order, or None."""
        if self.scores is None:
            return None
        return slots17_to_joints(self.scores[:, None])[:, 0]

    def keypoint_box(self) -> np.ndarray | None:
        """(4,) tight x, y, w, h box around the present keypoints, or None if none is present."""
        pts = self.keypoints[self.present, :2]
        if len(pts) == 0:
            return None
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


@dataclass
class Frame:
    """One image of a video and the people in it.

    ignore_regions: list of (P, 2) polygons (x, y) whose inside the evaluation ignores.
    """

    file_name: str
    image_id: int = 0
    width: int = 0
    height: int = 0
    is_labeled: bool = True
    people: list[Person] = field(default_factory=list)
    ignore_regions: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ignore_regions = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in self.ignore_regions]


@dataclass
class Video:
    """A sequence of frames, one per image, in temporal order.

    name: the sequence name, also the JSON file stem (``000042_mpii_synth_mixed``). PoseTrack's
    evaluation parses it: it must start with digits followed by ``_mpii``, ``_bonn`` or ``_mpiinew``.
    """

    name: str
    frames: list[Frame] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def track_ids(self) -> list[int]:
        """Sorted distinct track ids over the whole video."""
        return sorted({p.track_id for f in self.frames for p in f.people})


def _as_keypoints(values, name: str) -> np.ndarray:
    """Coerce to a (17, 3) float64 array, with a clear error for a wrong count."""
    array = np.asarray(values, dtype=np.float64)
    if array.size != NUM_KEYPOINTS_17 * 3:
        raise ValueError(
            f"{name} must hold 17 keypoints x (x, y, v) = 51 numbers in the PoseTrack18 layout, "
            f"got {array.size}"
        )
    return array.reshape(NUM_KEYPOINTS_17, 3).copy()
