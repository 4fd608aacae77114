"""Greedy joint-by-joint grouping of keypoint candidates into people by their embeddings.

This is the associative-embedding (AE) grouping rule, written for any embedding dimension D:
D = 1 for the Keypoint Embedding alone (the AE baseline), D = 2 for the Spatial Instance Embedding
alone, D = 3 for KE + SIE (each divided by its bandwidth), before or after Pose-Guided Grouping.

Rule (``docs/method.md`` 2.8, step 4): visit the joint types in a fixed order, torso and head first. For each
joint type, match its candidates to the people found so far with the Hungarian algorithm on the distance
between the candidate's embedding and the person's mean embedding; a pair is accepted when that distance
is below ``tag_threshold``; every candidate left over starts a new person.

Glossary: K joints, M candidates per joint, D embedding dimension, P people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mpat_nb.skeleton import JOINT_NAMES

#: Visit order [I]: head and torso joints first (they are the most reliable and anchor each person),
#: then limbs outward. AE uses the same idea with COCO joints.
GROUPING_ORDER: tuple[int, ...] = tuple(JOINT_NAMES.index(name) for name in (
    "head_bottom", "nose", "head_top", "right_shoulder", "left_shoulder", "right_hip", "left_hip",
    "right_elbow", "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist",
    "right_ankle", "left_ankle",
))


@dataclass(frozen=True)
class GroupingConfig:
    """Thresholds of the greedy grouping (the paper is silent; AE defaults where they exist)."""

    detection_threshold: float = 0.1   # candidates with a lower heatmap score are ignored [I; AE uses 0.03-0.1]
    tag_threshold: float = 1.0         # max embedding distance to join a person (AE's tag threshold)
    min_joints: int = 3                # people with fewer joints are dropped [I]
    score_weight: float = 1e-3         # tie-break: among equally close candidates prefer the stronger one


def group_candidates(
    xy: np.ndarray,
    scores: np.ndarray,
    embeddings: np.ndarray,
    config: GroupingConfig = GroupingConfig(),
    order: tuple[int, ...] = GROUPING_ORDER,
) -> tuple[np.ndarray, np.ndarray]:
    """Group one image's candidates into people.

    xy: (K, M, 2) candidate positions; scores: (K, M) heatmap values; embeddings: (K, M, D).
    Returns ``poses (P, K, 3)`` with x, y, score (score 0 = joint absent) sorted by person score
    (mean joint score over all K), and ``person_embeddings (P, D)`` the mean embedding of each person.
    """
    xy, scores, embeddings = _check_shapes(xy, scores, embeddings)
    num_joints, _, dim = embeddings.shape
    poses: list[np.ndarray] = []        # each (K, 3)
    sums: list[np.ndarray] = []         # each (D,) running sum of member embeddings
    counts: list[int] = []
    for k in order:
        keep = np.flatnonzero(scores[k] > config.detection_threshold)
        if len(keep) == 0:
            continue
        cand_embed = embeddings[k, keep]                                   # (C, D)
        assigned = np.full(len(keep), -1)
        if poses:
            means = np.stack(sums) / np.asarray(counts)[:, None]           # (G, D)
            distance = np.linalg.norm(cand_embed[:, None, :] - means[None], axis=2)  # (C, G)
            free = np.array([pose[k, 2] == 0 for pose in poses])           # a person takes one joint of each type
            cost = np.where(free[None], distance, 1e6) - config.score_weight * scores[k, keep][:, None]
            rows, cols = linear_sum_assignment(cost)
            ok = (distance[rows, cols] < config.tag_threshold) & free[cols]
            assigned[rows[ok]] = cols[ok]
        for c, person in zip(keep, assigned):
            if person < 0:
                poses.append(np.zeros((num_joints, 3)))
                sums.append(np.zeros(dim))
                counts.append(0)
                person = len(poses) - 1
            poses[person][k] = (*xy[k, c], scores[k, c])
            sums[person] += embeddings[k, c]
            counts[person] += 1
    if not poses:
        return np.zeros((0, num_joints, 3)), np.zeros((0, dim))
    pose_array = np.stack(poses)
    person_embeddings = np.stack(sums) / np.asarray(counts)[:, None]
    enough = (pose_array[:, :, 2] > 0).sum(axis=1) >= config.min_joints
    pose_array, person_embeddings = pose_array[enough], person_embeddings[enough]
    ranking = np.argsort(-pose_array[:, :, 2].mean(axis=1), kind="stable")
    return pose_array[ranking], person_embeddings[ranking]


def _check_shapes(xy, scores, embeddings):
    xy, scores, embeddings = (np.asarray(a, dtype=np.float64) for a in (xy, scores, embeddings))
    if embeddings.ndim == 2:
        embeddings = embeddings[..., None]
    if xy.ndim != 3 or xy.shape[2] != 2 or scores.shape != xy.shape[:2] or embeddings.shape[:2] != xy.shape[:2]:
        raise ValueError(
            f"expected xy (K, M, 2), scores (K, M), embeddings (K, M, D); got {xy.shape}, {scores.shape}, {embeddings.shape}"
        )
    return xy, scores, embeddings
