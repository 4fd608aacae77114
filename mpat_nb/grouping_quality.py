"""How well predicted poses are *grouped*, apart from how well their joints are *detected*.

mAP mixes detection and grouping. To compare groupings on the same detections (the PGG ablation) we also
measure, on the joints that are detected correctly:

- **purity**: of the correctly detected joints of a predicted person, the share that belongs to the GT
  person most of them belong to (1 = no predicted person mixes two people);
- **completeness**: of the correctly detected joints of a GT person, the share that ends up in the
  predicted person holding most of them (1 = no GT person is split over several predictions).

A predicted joint is *correct* for a GT person when it lies within the PCKh threshold (0.5 head size) of
that person's joint of the same type; among several such GT people it belongs to the nearest. Both figures
are joint-weighted over all frames: sum over people of the majority count / number of correct joints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mpat_nb.data.annotations import Video
from mpat_nb.evaluate import PCKH_THRESHOLD, people_head_sizes


@dataclass
class GroupingQuality:
    """Joint-weighted purity and completeness (both in [0, 1]; NaN when no joint is correct)."""

    purity: float
    completeness: float
    correct_joints: int

    def __str__(self) -> str:
        return f"purity {100 * self.purity:.1f} %, completeness {100 * self.completeness:.1f} % " \
               f"({self.correct_joints} correct joints)"


def grouping_quality(gt: Video | Sequence[Video], pred: Video | Sequence[Video],
                     threshold: float = PCKH_THRESHOLD) -> GroupingQuality:
    """Purity and completeness of the predicted people against the GT, frame by frame.

    gt, pred: videos (or lists of videos) with the same frames in the same order; person ids are not used
    (pred people are the groups). GT people need head boxes (PCKh).
    """
    gt_videos = [gt] if isinstance(gt, Video) else list(gt)
    pred_videos = [pred] if isinstance(pred, Video) else list(pred)
    if len(gt_videos) != len(pred_videos):
        raise ValueError(f"grouping_quality: {len(gt_videos)} GT videos but {len(pred_videos)} predicted")
    majority_pred = majority_gt = total = 0
    for gt_video, pred_video in zip(gt_videos, pred_videos):
        if len(gt_video.frames) != len(pred_video.frames):
            raise ValueError(f"grouping_quality: video {gt_video.name!r} has {len(gt_video.frames)} GT frames but "
                             f"{len(pred_video.frames)} predicted frames")
        for gt_frame, pred_frame in zip(gt_video.frames, pred_video.frames):
            owner = _joint_owners(gt_frame.people, pred_frame.people, threshold)        # (P, K) GT index or -1
            counts = _contingency(owner, len(gt_frame.people))                           # (P, G)
            total += int(counts.sum())
            if counts.size:
                majority_pred += int(counts.max(axis=1).sum())
                majority_gt += int(counts.max(axis=0).sum())
    if total == 0:
        return GroupingQuality(float("nan"), float("nan"), 0)
    return GroupingQuality(majority_pred / total, majority_gt / total, total)


def _joint_owners(gt_people, pred_people, threshold: float) -> np.ndarray:
    """(P, K) for each predicted joint, the index of the nearest GT person it is correct for, else -1."""
    num_joints = 15
    if not pred_people:
        return np.zeros((0, num_joints), dtype=np.int64)
    pred = np.stack([p.joints for p in pred_people])                                   # (P, K, 3)
    owner = np.full(pred.shape[:2], -1, dtype=np.int64)
    heads = people_head_sizes(gt_people, "grouping_quality")                           # (G,)
    if not gt_people:
        return owner
    gt = np.stack([p.joints for p in gt_people])                                       # (G, K, 3)
    distance = np.linalg.norm(pred[:, None, :, :2] - gt[None, :, :, :2], axis=-1)      # (P, G, K)
    normalised = distance / np.maximum(heads, 1e-9)[None, :, None]
    allowed = (pred[:, None, :, 2] > 0) & (gt[None, :, :, 2] > 0) & (normalised <= threshold)
    normalised = np.where(allowed, normalised, np.inf)
    nearest = normalised.argmin(axis=1)                                                # (P, K)
    found = np.isfinite(normalised.min(axis=1))
    owner[found] = nearest[found]
    return owner


def _contingency(owner: np.ndarray, num_gt: int) -> np.ndarray:
    """(P, G) how many correct joints of predicted person p belong to GT person g."""
    counts = np.zeros((owner.shape[0], num_gt), dtype=np.int64)
    rows, joints = np.nonzero(owner >= 0)
    np.add.at(counts, (rows, owner[rows, joints]), 1)
    return counts


@dataclass
class Separation:
    """How far apart the people's embeddings are, against how spread each person's own are.

    within: mean distance of a joint's embedding to its person's mean; between: median over people of the
    distance from a person's mean to the nearest other person's mean; ratio = between / within (> 1: the people
    stay apart; near 0: different people have merged, whatever ``within`` says). NaN with fewer than two people.
    """

    within: float
    between: float
    ratio: float


def embedding_separation(embeddings: np.ndarray, owners: np.ndarray) -> Separation:
    """Separation of the points ``embeddings`` (M, D) owned by people ``owners`` (M,) (-1: no person, ignored).

    Only people with at least two points count. A grouping step that shrinks every person's cluster but also
    pulls people onto each other lowers ``within`` *and* ``between``; the ratio shows which wins.
    """
    embeddings, owners = np.asarray(embeddings, dtype=np.float64), np.asarray(owners)
    people = [n for n in np.unique(owners) if n >= 0 and (owners == n).sum() >= 2]
    if len(people) < 2:
        return Separation(float("nan"), float("nan"), float("nan"))
    means = np.stack([embeddings[owners == n].mean(axis=0) for n in people])               # (P, D)
    within = float(np.mean([np.linalg.norm(embeddings[owners == n] - mean, axis=1).mean()
                            for n, mean in zip(people, means)]))
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)                           # (P, P)
    np.fill_diagonal(gaps, np.inf)
    between = float(np.median(gaps.min(axis=1)))
    return Separation(within, between, between / within if within > 0 else float("inf"))
