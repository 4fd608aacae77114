"""Controlled corruptions of annotations: turn ground truth into a "prediction" with known errors.

Used to show how mAP and MOTA respond to keypoint jitter, missed joints and people, false positives and
identity switches (notebook 00, the demo), and to test the evaluator. Deterministic for a given seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from mpat_nb.data.annotations import Person, Video
from mpat_nb.skeleton import NUM_KEYPOINTS_17


@dataclass(frozen=True)
class Perturbation:
    """What to corrupt. Every default is "no change".

    jitter_px: standard deviation (pixels) of Gaussian noise added to every present keypoint.
    drop_joint_prob: probability that a present keypoint is removed.
    miss_person_prob: probability that a person is removed from a frame.
    false_positive_prob: per frame, probability of adding one spurious person (a copy of a real one
        moved by half the image width) with low scores.
    id_switches: number of times two tracks exchange their ids from a random frame on.
    """

    jitter_px: float = 0.0
    drop_joint_prob: float = 0.0
    miss_person_prob: float = 0.0
    false_positive_prob: float = 0.0
    id_switches: int = 0


def perturb_video(video: Video, perturbation: Perturbation, seed: int = 0) -> Video:
    """Return a corrupted deep copy of ``video`` with per-keypoint ``scores`` set.

    Scores fall with the jitter actually applied (so AP's ranking is meaningful), plus a little noise
    so that no two scores tie. Hidden-joint arrays (``keypoints_all``) are dropped: predictions have none.
    """
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(video)
    _switch_ids(out, perturbation.id_switches, rng)
    for frame in out.frames:
        kept: list[Person] = []
        for person in frame.people:
            if rng.random() < perturbation.miss_person_prob:
                continue
            kept.append(_corrupt_person(person, perturbation, rng))
        if frame.people and rng.random() < perturbation.false_positive_prob:
            kept.append(_false_positive(frame.people[int(rng.integers(len(frame.people)))], rng, frame.width, kept))
        frame.people = kept
    return out


def _corrupt_person(person: Person, perturbation: Perturbation, rng: np.random.Generator) -> Person:
    keypoints = person.keypoints.copy()  # (17, 3)
    present = keypoints[:, 2] > 0
    noise = rng.normal(0.0, perturbation.jitter_px, size=(NUM_KEYPOINTS_17, 2)) if perturbation.jitter_px > 0 else np.zeros((NUM_KEYPOINTS_17, 2))
    keypoints[present, :2] += noise[present]
    dropped = present & (rng.random(NUM_KEYPOINTS_17) < perturbation.drop_joint_prob)
    keypoints[dropped] = 0.0
    present &= ~dropped
    error = np.linalg.norm(noise, axis=1)
    scores = np.where(present, 1.0 / (1.0 + error / 10.0) * (0.9 + 0.1 * rng.random(NUM_KEYPOINTS_17)), 0.0)
    return Person(keypoints=keypoints, track_id=person.track_id, scores=scores, bbox=person.bbox, bbox_head=person.bbox_head,
                  score=float(scores[present].mean()) if present.any() else 0.0)


def _false_positive(source: Person, rng: np.random.Generator, width: int, existing: list[Person]) -> Person:
    keypoints = source.keypoints.copy()
    present = keypoints[:, 2] > 0
    shift = width / 2 if width else 200.0
    keypoints[present, 0] = (keypoints[present, 0] + shift) % max(width, 1) if width else keypoints[present, 0] + shift
    scores = np.where(present, 0.05 + 0.2 * rng.random(NUM_KEYPOINTS_17), 0.0)
    used = {p.track_id for p in existing}
    track_id = max(used | {source.track_id}) + 1 + int(rng.integers(100))
    return Person(keypoints=keypoints, track_id=track_id, scores=scores, score=float(scores[present].mean()) if present.any() else 0.0)


def _switch_ids(video: Video, count: int, rng: np.random.Generator) -> None:
    """Exchange the ids of two tracks from a random frame to the end, ``count`` times."""
    track_ids = video.track_ids
    if count <= 0 or len(track_ids) < 2 or len(video.frames) < 2:
        return
    for _ in range(count):
        first, second = rng.choice(track_ids, size=2, replace=False)
        start = int(rng.integers(1, len(video.frames)))
        for frame in video.frames[start:]:
            for person in frame.people:
                if person.track_id == first:
                    person.track_id = int(second)
                elif person.track_id == second:
                    person.track_id = int(first)
