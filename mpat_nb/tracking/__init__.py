"""Online multi-person tracking (docs/method.md 3.3): costs, trackers, the network pipeline and its evaluation.

``config`` (weights and thresholds) -> ``costs`` (HE, TIE, OKS, IoU distances) -> ``trackers`` (ours and the
peer baselines) <- ``pipeline`` (SpatialNet + TemporalNet once per frame) -> ``evaluation`` (tables).
"""

from mpat_nb.tracking.config import VARIANTS, TrackerConfig, variant_config
from mpat_nb.tracking.observation import Detection, FrameObservation
from mpat_nb.tracking.trackers import EmbeddingTracker, GreedyOKSTracker, HungarianIoUTracker, Tracker, make_tracker

__all__ = ["VARIANTS", "Detection", "EmbeddingTracker", "FrameObservation", "GreedyOKSTracker",
           "HungarianIoUTracker", "Tracker", "TrackerConfig", "make_tracker", "variant_config"]
