"""Every weight and threshold of the trackers, in one place (docs/method.md 3.3).

The paper says HE and TIE are complementary but not how it fuses them, nor its thresholds [I]. Our choice
(docs/method.md 3.3, steps 1-4): each distance is divided by its scale tau (the median distance of *true* pairs,
measured on training-seed clips by :func:`mpat_nb.tracking.calibrate.calibrate_taus`), the terms in use are
averaged with their weights, and a pair is accepted when that cost is below ``max_cost``:

    C(i, j) = (w_HE d_HE(i, j) / tau_HE + w_TIE d_TIE(i, j) / tau_TIE + w_pose d_pose(i, j) / tau_pose)
              / (w_HE + w_TIE + w_pose)

so a typical true pair costs about 1 whichever terms are on. d_pose = 1 - OKS(i, j) is a geometric term beyond the
paper [I], for crowds, where people in similar clothes stand close: it is off (w_pose = 0) unless the calibration
finds that it helps, and like TIE it leaves the cost at a shot cut. ``[I]`` marks our own choices; ``measured`` and
``tuned`` values come from ``python scripts/evaluate_tracking.py --calibrate --clips 2`` (2 training-seed clips
of each generator preset, shipped tiny models): the taus on ground-truth poses, then one threshold per tracker
(w_TIE, max_cost, memory, each baseline's: the same search for each) maximising total MOTA on ground-truth poses,
where the association is isolated, and the output joint threshold on predicted poses. Re-run it for other
checkpoints (a better TIE branch earns a larger w_TIE).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: The tracker variants of the evaluation, name -> TrackerConfig overrides (None: a baseline tracker).
VARIANTS = ("HE+TIE", "HE only", "TIE only", "HE+TIE+memory", "greedy OKS", "Hungarian IoU")


@dataclass(frozen=True)
class TrackerConfig:
    """How our tracker (and the two baselines) associate people of frame t with the tracks of frame t-1.

    Distances live on SpatialNet's output grid: d_HE = ||u_i - u_j|| on L2-normalised Human Embeddings
    (in [0, 2]); d_TIE = bidirectional TIE voting distance divided by the pair's mean person scale (docs/method.md
    3.3, step 2; :func:`mpat_nb.tracking.costs.tie_distances`).
    """

    use_he: bool = True
    use_tie: bool = True
    weight_he: float = 1.0             # w_HE [I: 1, docs/method.md 3.3, Eq. (3)]
    weight_tie: float = 0.1            # w_TIE [I, tuned on ground-truth poses: 0.1 and 0.25 best, 0 and 0.5+ lower]
    tau_he: float = 0.246              # median d_HE of true consecutive pairs [I, measured]
    tau_tie: float = 0.198             # median d_TIE of true consecutive pairs [I, measured]
    weight_pose: float = 0.0           # w_pose of d_pose = 1 - OKS [I, tuned: every weight > 0 lowered MOTA, so 0:
                                       # the paper's cost, HE + TIE only]
    tau_pose: float = 0.113            # median d_pose of true consecutive pairs [I, measured]
    max_cost: float = 4.0              # accept a Hungarian pair only below this [I, tuned: 4 and 6 best, 3 close]
    cut_threshold: float | None = 0.4  # frame_change above this = a shot cut: C leaves TIE out there (HE only;
                                       # TIE only: nobody is matched) [I, measured: mpat_nb/tracking/cuts.py;
                                       # training clips: cuts >= 0.665, other frames <= 0.136]; None: never
    # Beyond the paper: a bounded memory of recently lost tracks, re-matched on HE and predicted position.
    memory: bool = False               # off = the paper (a track not matched in frame t ends)
    memory_frames: int = 30            # how long a lost track can be re-found (frames) [I: ~1 s at 30 fps]
    memory_max_cost: float = 4.0       # accept a re-found lost track only below this [I, tuned]
    memory_position_weight: float = 0.25  # weight of the predicted-position term (scales of distance, capped at 4) [I]
    # Detections and output
    min_pose_score: float = 0.1        # people whose mean present-joint score is lower are dropped before tracking [I]
    min_joint_score: float = 0.5       # joints below this score are left out of the output (trades AP for MOTA,
                                       # docs/method.md 3.3 step 5) [I, tuned]
    # Peer baselines
    oks_threshold: float = 0.05        # greedy OKS: accept a pair with OKS above this [I, tuned]
    iou_threshold: float = 0.05        # Hungarian IoU: accept a pair with box IoU above this [I, tuned]

    def __post_init__(self) -> None:
        if not (self.use_he or self.use_tie):
            raise ValueError("TrackerConfig needs use_he or use_tie (or both); the geometric baselines are "
                             "GreedyOKSTracker and HungarianIoUTracker")
        if min(self.weight_he, self.weight_tie) < 0 or not (self.use_he and self.weight_he > 0
                                                              or self.use_tie and self.weight_tie > 0):
            raise ValueError(f"TrackerConfig weights must be >= 0 with at least one term in use weighted above 0; got "
                             f"use_he={self.use_he} weight_he={self.weight_he}, use_tie={self.use_tie} "
                             f"weight_tie={self.weight_tie}")
        if self.weight_pose < 0:
            raise ValueError(f"TrackerConfig.weight_pose must be >= 0, got {self.weight_pose}")
        for name in ("tau_he", "tau_tie", "tau_pose", "max_cost", "memory_max_cost"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrackerConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.cut_threshold is not None and not 0 < self.cut_threshold < 1:
            raise ValueError(f"TrackerConfig.cut_threshold must lie in (0, 1) (a colour-histogram change), or be "
                             f"None to never detect cuts; got {self.cut_threshold}")
        if self.memory_frames < 1:
            raise ValueError(f"TrackerConfig.memory_frames must be >= 1, got {self.memory_frames}")


def variant_config(variant: str, base: TrackerConfig = TrackerConfig()) -> TrackerConfig | None:
    """The TrackerConfig of one of :data:`VARIANTS` (None for the two baselines, which read ``base`` as is)."""
    # A term alone is normalised by its own weight: its value does not matter, but it must be > 0.
    # "HE only" and "TIE only" are the paper's single terms: no pose term either.
    overrides = {"HE+TIE": {}, "HE only": {"use_tie": False, "weight_he": 1.0, "weight_pose": 0.0},
                 "TIE only": {"use_he": False, "weight_tie": 1.0, "weight_pose": 0.0},
                 "HE+TIE+memory": {"memory": True}}
    if variant in ("greedy OKS", "Hungarian IoU"):
        return None
    if variant not in overrides:
        raise ValueError(f"unknown tracker variant {variant!r}; choose one of {VARIANTS}")
    return replace(base, **overrides[variant])
