"""Measure the tracker's scales tau_HE and tau_TIE on ground-truth tracks (docs/method.md 3.3, step 3) and its cut
threshold on clips whose shot cuts are known.

tau = the median distance of *true* pairs (the same identity in frames t-1 and t), so that a typical true pair
costs 1 in each term. Measure on training-seed clips (``split_seeds("train", ...)``) so that the validation
clips of the evaluation stay unseen; the defaults in :class:`mpat_nb.tracking.config.TrackerConfig` come from
``python scripts/evaluate_tracking.py --calibrate``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mpat_nb.tracking.costs import he_distances, pose_distances, tie_distances
from mpat_nb.tracking.observation import FrameObservation, stack_detections


def true_pair_distances(observations: Sequence[FrameObservation]) -> dict[str, np.ndarray]:
    """d_HE and d_TIE of true and false pairs of consecutive frames of one video of ground-truth detections.

    observations: from :func:`mpat_nb.tracking.pipeline.observe_video` with ``gt_video`` (every detection has a
    ``gt_track_id``). Returns ``he_true``, ``he_false``, ``tie_true``, ``tie_false``, ``pose_true``,
    ``pose_false`` (d_pose = 1 - OKS): 1-D arrays.
    """
    found: dict[str, list[np.ndarray]] = {key: [] for key in ("he_true", "he_false", "tie_true", "tie_false",
                                                              "pose_true", "pose_false")}
    for previous_frame, current_frame in zip(observations[:-1], observations[1:]):
        if not previous_frame.detections or not current_frame.detections:
            continue
        if any(d.gt_track_id is None for d in previous_frame.detections + current_frame.detections):
            raise ValueError("true_pair_distances needs ground-truth detections: observe_video(..., gt_video=...)")
        previous, current = stack_detections(previous_frame.detections), stack_detections(current_frame.detections)
        same = (np.array([d.gt_track_id for d in previous_frame.detections])[:, None]
                == np.array([d.gt_track_id for d in current_frame.detections])[None, :])        # (I, J)
        d_pose = pose_distances(previous, current)
        found["pose_true"].append(d_pose[same])
        found["pose_false"].append(d_pose[~same])
        if previous["embeddings"] is not None and current["embeddings"] is not None:
            d_he = he_distances(previous["embeddings"], current["embeddings"])
            found["he_true"].append(d_he[same])
            found["he_false"].append(d_he[~same])
        if current_frame.tvf_forward is not None:
            d_tie = tie_distances(previous["joints"], previous["centres"], previous["scales"], current["joints"],
                                  current["centres"], current["scales"], current_frame.tvf_forward,
                                  current_frame.tvf_backward)
            found["tie_true"].append(d_tie[same])
            found["tie_false"].append(d_tie[~same])
    return {key: np.concatenate(values) if values else np.zeros(0) for key, values in found.items()}


def calibrate_taus(videos: Sequence[Sequence[FrameObservation]]) -> dict[str, float]:
    """tau_he, tau_tie, tau_pose (medians of true pairs) and, for reading, the medians of false pairs, over videos."""
    parts = [true_pair_distances(v) for v in videos]
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} if parts else {}
    if not merged or not len(merged["he_true"]) or not len(merged["tie_true"]):
        raise ValueError("no true pair to calibrate on: give videos with people present in consecutive frames")
    return {"tau_he": float(np.median(merged["he_true"])), "tau_tie": float(np.median(merged["tie_true"])),
            "he_false_median": float(np.median(merged["he_false"])) if len(merged["he_false"]) else float("nan"),
            "tie_false_median": float(np.median(merged["tie_false"])) if len(merged["tie_false"]) else float("nan"),
            "tau_pose": float(np.median(merged["pose_true"])),
            "pose_false_median": float(np.median(merged["pose_false"])) if len(merged["pose_false"]) else float("nan")}


def calibrate_cut_threshold(clips) -> dict[str, float]:
    """The shot-cut threshold on ``frame_change``: midway between the largest change within a shot and the smallest
    change at a cut, over clips whose cuts are known.

    clips: :class:`mpat_nb.tracking.evaluation.ObservedClip` (``events["shot_cuts"]``: first frame of each new
    shot). Returns ``within_max``, ``cut_min`` (nan without a cut), ``threshold`` and ``cuts`` (how many).
    """
    within, at_cuts = [], []
    for clip in clips:
        cuts = set(clip.events.get("shot_cuts", []))
        observations = next(iter(clip.observations.values()))           # every source has the same frames
        for observation in observations[1:]:
            (at_cuts if observation.index in cuts else within).append(observation.frame_change)
    if not within:
        raise ValueError("calibrate_cut_threshold needs clips of at least two frames")
    within_max = float(max(within))
    cut_min = float(min(at_cuts)) if at_cuts else float("nan")
    if at_cuts and cut_min <= within_max:
        raise ValueError(f"frame_change does not separate these cuts (smallest {cut_min:.3f}) from the changes "
                         f"within shots (largest {within_max:.3f}): no threshold fits")
    return {"within_max": within_max, "cut_min": cut_min, "cuts": float(len(at_cuts)),
            "threshold": 0.5 * (within_max + cut_min) if at_cuts else float("nan")}


def grid_search(clips, variant: str, knob: str, values: Sequence[float], base=None,
                source: str = "predicted") -> list[tuple[float, float]]:
    """Total MOTA of ``variant`` over ``clips`` for each value of one TrackerConfig knob: [(value, MOTA)].

    clips: :class:`mpat_nb.tracking.evaluation.ObservedClip` of *training* seeds (tune there, report on
    validation seeds). Every variant gets its own knob tuned the same way (ours: ``max_cost``; greedy OKS:
    ``oks_threshold``; Hungarian IoU: ``iou_threshold``), so the comparison is fair.
    """
    from dataclasses import replace

    from mpat_nb.evaluate import evaluate
    from mpat_nb.tracking.config import TrackerConfig
    from mpat_nb.tracking.pipeline import run_tracker
    from mpat_nb.tracking.trackers import make_tracker

    base = base or TrackerConfig()
    scores = []
    for value in values:
        config = replace(base, **{knob: value})
        runs = [run_tracker(c.observations[source], make_tracker(variant, config), name=c.video.name) for c in clips]
        scores.append((float(value), evaluate([c.video for c in clips], [r.video for r in runs]).total_mota))
    return scores
