"""What the network sees in one frame, as the trackers consume it.

Glossary: K = 15 joints (poseval order), D = Human Embedding size, H x W = SpatialNet's output grid.
Positions are on that grid (x, y in output pixels) so that they line up with the TIE fields; ``person`` keeps
the same pose in the original image's pixels for the PoseTrack18 output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mpat_nb.data.annotations import Person


@dataclass
class Detection:
    """One person of one frame.

    joints: (K, 3) x, y, score on the output grid (score 0 = absent); centre: (2,) person centre on the grid
    (mean SIE of the joints, docs/method.md 2.5); box: (4,) x1, y1, x2, y2 proposal on the grid; embedding: (D,)
    Human Embedding (None when TemporalNet was not run); person: the pose in image pixels; gt_track_id: the
    ground-truth identity when the detection *is* a ground-truth pose (tracking-only evaluation), else None.
    """

    joints: np.ndarray
    centre: np.ndarray
    box: np.ndarray
    person: Person
    embedding: np.ndarray | None = None
    gt_track_id: int | None = None

    @property
    def scale(self) -> float:
        """sqrt(box area) in output pixels: the person scale s of docs/method.md 3.3."""
        width, height = np.clip(self.box[2:] - self.box[:2], 0.0, None)
        return float(np.sqrt(max(width * height, 1e-6)))

    @property
    def score(self) -> float:
        """Mean score of the present joints (0 for none)."""
        present = self.joints[:, 2] > 0
        return float(self.joints[present, 2].mean()) if present.any() else 0.0


@dataclass
class FrameObservation:
    """Everything the trackers need about frame t.

    tvf_forward: (2, H, W) T of the pair (t-1, t) on frame t-1's grid, in output pixels; tvf_backward: (2, H, W)
    T' on frame t's grid; both None for the first frame. network_seconds: time spent in the networks and the
    decoding for this frame (the association is timed separately by :func:`mpat_nb.tracking.pipeline.run_tracker`).
    frame_change: how much the picture changed since frame t-1 (:func:`mpat_nb.tracking.cuts.frame_change`, in
    [0, 1]; 0 for the first frame): the trackers treat a large change as a shot cut.
    """

    index: int
    detections: list[Detection]
    tvf_forward: np.ndarray | None = None
    tvf_backward: np.ndarray | None = None
    file_name: str = ""
    width: int = 0
    height: int = 0
    network_seconds: float = 0.0
    frame_change: float = 0.0
    extra: dict = field(default_factory=dict)


def stack_detections(detections: list[Detection]) -> dict[str, np.ndarray]:
    """Arrays over people: joints (N, K, 3), centres (N, 2), boxes (N, 4), scales (N,), embeddings (N, D) | None."""
    from mpat_nb.skeleton import NUM_JOINTS

    if not detections:
        return {"joints": np.zeros((0, NUM_JOINTS, 3)), "centres": np.zeros((0, 2)), "boxes": np.zeros((0, 4)),
                "scales": np.zeros(0), "embeddings": None}
    embeddings = None
    if all(d.embedding is not None for d in detections):
        embeddings = np.stack([d.embedding for d in detections])
    return {"joints": np.stack([d.joints for d in detections]), "centres": np.stack([d.centre for d in detections]),
            "boxes": np.stack([d.box for d in detections]), "scales": np.array([d.scale for d in detections]),
            "embeddings": embeddings}
