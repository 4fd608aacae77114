"""Pairwise distances between the people of frame t-1 (rows, i) and frame t (columns, j).

All positions are on SpatialNet's output grid (x, y in output pixels); joints are (N, K, 3) x, y, score with
score 0 for an absent joint. Every function returns an (I, J) float array and is vectorised over pairs and
joints (the trackers call them once per frame).
"""

from __future__ import annotations

import numpy as np

from mpat_nb.codec import instance_embedding_at
from mpat_nb.skeleton import OKS_SIGMAS


def he_distances(embeddings_previous: np.ndarray, embeddings_current: np.ndarray) -> np.ndarray:
    """d_HE(i, j) = ||u_i - u_j||_2 on L2-normalised Human Embeddings (docs/method.md 3.3, step 1): values in [0, 2].

    embeddings_previous: (I, D); embeddings_current: (J, D) (normalised here, so raw HE is fine).
    """
    previous = _normalise(np.asarray(embeddings_previous, dtype=np.float64))
    current = _normalise(np.asarray(embeddings_current, dtype=np.float64))
    squared = 2.0 - 2.0 * previous @ current.T                           # |a - b|^2 = 2 - 2 a.b for unit vectors
    return np.sqrt(np.clip(squared, 0.0, 4.0))


def tie_votes(joints: np.ndarray, tvf: np.ndarray) -> np.ndarray:
    """Where each joint votes the person's centre lies in the other frame: TIE = q + T(q). (N, K, 2).

    joints: (N, K, 3); tvf: (2, H, W) in output pixels (TemporalNet's fields x ``SVF_NORMALISER``).
    """
    return instance_embedding_at(tvf, joints[..., :2])


def tie_distances(joints_previous: np.ndarray, centres_previous: np.ndarray, scales_previous: np.ndarray,
                  joints_current: np.ndarray, centres_current: np.ndarray, scales_current: np.ndarray,
                  tvf_forward: np.ndarray, tvf_backward: np.ndarray) -> np.ndarray:
    """Bidirectional TIE voting distance (docs/method.md 3.3, step 2):

        d_TIE(i, j) = 0.5 [ mean_{k in V_i} ||p_ik + T(p_ik) - c_j|| + mean_{k in V_j} ||q_jk + T'(q_jk) - c_i|| ] / s_ij

    joints_*: (N, K, 3); centres_*: (N, 2) person centres; scales_*: (N,) person scales (output pixels);
    s_ij is their mean. tvf_forward: (2, H, W) T on frame t-1's grid; tvf_backward: (2, H, W) T' on frame t's.
    """
    joints_previous, joints_current = np.asarray(joints_previous, float), np.asarray(joints_current, float)
    forward = _mean_vote_distance(tie_votes(joints_previous, tvf_forward), joints_previous[..., 2] > 0,
                                  np.asarray(centres_current, float))                  # (I, J)
    backward = _mean_vote_distance(tie_votes(joints_current, tvf_backward), joints_current[..., 2] > 0,
                                   np.asarray(centres_previous, float))                 # (J, I)
    scale = 0.5 * (np.asarray(scales_previous, float)[:, None] + np.asarray(scales_current, float)[None, :])
    return 0.5 * (forward + backward.T) / np.maximum(scale, 1e-6)


def oks(joints_previous: np.ndarray, joints_current: np.ndarray, areas_previous: np.ndarray,
        areas_current: np.ndarray, sigmas: np.ndarray = OKS_SIGMAS) -> np.ndarray:
    """Object keypoint similarity (COCO) of every pair, over the joints present in both poses; 0 if none.

    OKS = mean_k exp(-d_k^2 / (2 s^2 (2 sigma_k)^2)) with s^2 the mean of the two box areas.
    joints_*: (N, K, 3); areas_*: (N,) box areas in squared output pixels.
    """
    joints_previous, joints_current = np.asarray(joints_previous, float), np.asarray(joints_current, float)
    area = 0.5 * (np.asarray(areas_previous, float)[:, None] + np.asarray(areas_current, float)[None, :])
    area = np.maximum(area, 1e-6)                                                        # (I, J) s^2
    variance = (2.0 * np.asarray(sigmas, float)) ** 2                                    # (K,)
    total = np.zeros(area.shape)
    counted = np.zeros(area.shape)
    for joint in range(joints_previous.shape[1]):    # one (I, J) slice per joint: no (I, J, K, 2) temporary
        squared = ((joints_previous[:, None, joint, :2] - joints_current[None, :, joint, :2]) ** 2).sum(-1)
        both = (joints_previous[:, None, joint, 2] > 0) & (joints_current[None, :, joint, 2] > 0)   # (I, J)
        total += np.where(both, np.exp(-squared / (2.0 * area * variance[joint])), 0.0)
        counted += both
    return np.where(counted > 0, total / np.maximum(counted, 1), 0.0)


def pose_distances(previous: dict, current: dict) -> np.ndarray:
    """d_pose(i, j) = 1 - OKS of two frames' stacked detections (``stack_detections``), in [0, 1]: (I, J)."""
    return 1.0 - oks(previous["joints"], current["joints"], previous["scales"] ** 2, current["scales"] ** 2)


def box_iou(boxes_previous: np.ndarray, boxes_current: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes (x1, y1, x2, y2): (I, 4), (J, 4) -> (I, J)."""
    a, b = np.asarray(boxes_previous, float).reshape(-1, 4), np.asarray(boxes_current, float).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.clip(high - low, 0.0, None).prod(-1)
    area = lambda boxes: np.clip(boxes[:, 2:] - boxes[:, :2], 0.0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _mean_vote_distance(votes: np.ndarray, present: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """votes (N, K, 2), present (N, K), centres (M, 2) -> (N, M) mean over present k of ||vote_k - c_m||."""
    total = np.zeros((len(votes), len(centres)))
    for joint in range(votes.shape[1]):       # K = 15 steps of (N, M): no (N, M, K, 2) temporary (3x at N = 128)
        distance = np.linalg.norm(votes[:, None, joint] - centres[None], axis=-1)         # (N, M)
        total += np.where(present[:, joint, None], distance, 0.0)
    return total / np.maximum(present.sum(-1), 1)[:, None]
