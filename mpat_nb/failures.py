"""Failure cases: score every ground-truth person of every frame and pick the worst examples per category.

The paper's qualitative analysis shows where its tracker fails (motion blur, rare poses, heavy occlusion,
small people, identity drift). This module finds such cases in an evaluated clip: :func:`score_people`
attaches the predictions of a frame to its GT people with the evaluator's PCKh rule
(:func:`mpat_nb.evaluate.pckh_assignment`) and records, per GT person, how much of it was found, how large
and how hidden it is, its normalised pose and which predicted track carries it; :func:`worst_cases` ranks
those records for one category; :func:`draw_case` draws one (ground truth next to the prediction).

These are diagnostics, not the metric: ignore regions are not applied and no score threshold is used (the
predicted joints are taken as they are in the output video, as MOTA takes them).

Glossary: K = 15 joints (poseval order), G GT people and P predicted people of one frame, T frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.evaluate import pckh_assignment, people_head_sizes
from mpat_nb.skeleton import NUM_JOINTS, slots17_to_joints
from mpat_nb.utils import InputError

#: The failure categories of the gallery, in the paper's order, with how :func:`worst_cases` ranks them.
CATEGORIES = {
    "motion blur": "people of the blurred clips the detector found least (lowest PCKh, most visible first)",
    "rare poses": "badly found people whose pose is farthest from the mean normalised pose",
    "heavy occlusion": "badly found people of the occlusion / crowd clips with the most hidden joints",
    "small people": "badly found people with the smallest height in pixels (far from the camera)",
    "id drift": "a GT identity carried by another predicted track id than where it was last found (largest first)",
}
#: Which clips (the ``group`` given to :func:`score_people`, e.g. the generator preset) a category looks at;
#: a category not listed looks at every clip.
CATEGORY_GROUPS = {"motion blur": ("motion_blur",), "heavy occlusion": ("occlusion", "crowd")}
#: A person counts as "badly found" when at most this fraction of its joints is correct (PCKh@0.5).
MAX_PCK = 0.5
#: The gallery skips people with fewer visible joints (mostly outside the picture or behind something: there
#: is nothing to see in their picture).
MIN_VISIBLE = 5


@dataclass
class PersonCase:
    """One GT person in one frame, as the prediction saw it.

    video, group: sequence name and a free label (the preset); frame: index of the frame in the video;
    track_id: the GT identity; visible: its number of annotated (visible) joints; pck: fraction of those
    joints that its attached prediction hits within half a head size (0 when no prediction is attached);
    height: person height in pixels (box of every joint, hidden ones included when the GT has them); hidden:
    fraction of the 15 joints that lie inside the image but are not visible (NaN when the GT has no
    ``keypoints_all``); pose: (K, 2) normalised pose (NaN for absent joints, see :func:`normalised_pose`);
    predicted_id: track id of the attached prediction (-1: none); previous_id, previous_frame: the predicted
    id this identity was last attached to and in which frame (-1: never before).
    """

    video: str
    group: str
    frame: int
    track_id: int
    visible: int
    pck: float
    height: float
    hidden: float
    pose: np.ndarray
    predicted_id: int = -1
    previous_id: int = -1
    previous_frame: int = -1

    @property
    def id_switch(self) -> bool:
        """The identity is carried by another predicted track than the last time it was found (CLEAR-MOT's
        switch, counted per person instead of per joint)."""
        return self.predicted_id >= 0 and self.previous_id >= 0 and self.predicted_id != self.previous_id


def score_people(gt: Video, pred: Video, *, group: str = "") -> list[PersonCase]:
    """One :class:`PersonCase` per GT person of every labelled frame (frames paired by position).

    gt: ground truth (needs ``bbox_head`` for the head size); pred: the tracker's output for the same video.
    """
    if len(pred.frames) < len(gt.frames):
        raise InputError(f"prediction {pred.name!r} has {len(pred.frames)} frames but the ground truth "
                         f"{gt.name!r} has {len(gt.frames)}: frames are paired by position, give the whole video")
    cases, last_seen = [], {}                          # GT id -> (predicted id, frame)
    for t, (gt_frame, pred_frame) in enumerate(zip(gt.frames, pred.frames)):
        if not gt_frame.people:                        # unlabelled frame, as in the evaluator
            continue
        gt_to_pred, pck = _attach(gt_frame, pred_frame)
        for g, person in enumerate(gt_frame.people):
            p = int(gt_to_pred[g])
            predicted_id = pred_frame.people[p].track_id if p >= 0 else -1
            previous_id, previous_frame = last_seen.get(person.track_id, (-1, -1))
            cases.append(PersonCase(gt.name, group, t, person.track_id, int(person.present.sum()), float(pck[g]),
                                    person_height(person), hidden_fraction(person, gt_frame),
                                    normalised_pose(_whole_pose(person)), predicted_id, previous_id, previous_frame))
            if predicted_id >= 0:
                last_seen[person.track_id] = (predicted_id, t)
    return cases


def worst_cases(cases: Sequence[PersonCase], category: str, count: int = 4, *, max_pck: float = MAX_PCK,
                min_visible: int = MIN_VISIBLE, groups: Sequence[str] | None = None) -> list[PersonCase]:
    """The ``count`` worst cases of one of :data:`CATEGORIES`, worst first.

    max_pck: every category but "id drift" looks only at people found at most this well; min_visible: every
    category looks only at people with at least this many visible joints; groups: the clips to look at
    (default :data:`CATEGORY_GROUPS`, every clip for the others). "rare poses" measures rarity against the
    mean pose of *all* ``cases`` given (:func:`pose_rarity`), so pass the cases of every clip. At most one
    case per (video, identity) is returned, and other videos are preferred to a second case of the same
    video, so that one long failure does not fill the gallery.
    """
    if category not in CATEGORIES:
        raise InputError(f"unknown failure category {category!r}; choose one of {', '.join(CATEGORIES)}")
    groups = CATEGORY_GROUPS.get(category) if groups is None else groups
    rarity = pose_rarity(np.stack([c.pose for c in cases])) if cases else np.zeros(0)
    scored = [(c, r) for c, r in zip(cases, rarity)
              if (groups is None or c.group in groups) and c.visible >= min_visible]
    if category == "id drift":
        chosen = sorted((item for item in scored if item[0].id_switch), key=lambda item: -item[0].height)
    else:
        failed = [item for item in scored if item[0].pck <= max_pck]
        key = {"motion blur": lambda item: (item[0].pck, -item[0].visible),
               "rare poses": lambda item: -item[1],
               "heavy occlusion": lambda item: (-np.nan_to_num(item[0].hidden, nan=-1.0), item[0].pck),
               "small people": lambda item: item[0].height}[category]
        chosen = sorted(failed, key=key)
    return _varied([case for case, _ in chosen], count)


def normalised_pose(joints: np.ndarray) -> np.ndarray:
    """Translation- and scale-free pose: (K, 3) x, y, v -> (K, 2), NaN for absent joints (v == 0).

    The present joints are centred on their mean and divided by their root-mean-square distance to it.
    Fewer than two present joints give all NaN (no scale).
    """
    joints = np.asarray(joints, dtype=np.float64).reshape(NUM_JOINTS, 3)
    present = joints[:, 2] > 0
    pose = np.full((NUM_JOINTS, 2), np.nan)
    if present.sum() < 2:
        return pose
    centred = joints[present, :2] - joints[present, :2].mean(axis=0)
    spread = np.sqrt((centred ** 2).sum(axis=1).mean())
    if spread > 0:
        pose[present] = centred / spread
    return pose


def pose_rarity(poses: np.ndarray) -> np.ndarray:
    """How far each normalised pose lies from the mean one: (N, K, 2) -> (N,).

    rarity_n = mean over the joints k present in n of ||pose_nk - mean_k||, with mean_k the mean of joint k
    over the poses that have it (NaN for a pose with no joint).
    """
    poses = np.asarray(poses, dtype=np.float64)
    present = ~np.isnan(poses[..., 0])                                            # (N, K)
    counts = present.sum(axis=0)                                                  # (K,)
    mean = np.where(present[..., None], poses, 0.0).sum(axis=0) / np.maximum(counts, 1)[:, None]   # (K, 2)
    distance = np.linalg.norm(poses - mean[None], axis=-1)                        # (N, K), NaN where absent
    with np.errstate(invalid="ignore"):
        return np.where(present.any(axis=1), np.nansum(distance, axis=1) / np.maximum(present.sum(axis=1), 1),
                        np.nan)


def person_height(person: Person) -> float:
    """Height in pixels of the box around every joint (``keypoints_all`` when present), else of the person box."""
    joints = _whole_pose(person)
    present = joints[:, 2] > 0
    if present.any():
        return float(np.ptp(joints[present, 1]))
    return float(person.bbox[3]) if person.bbox is not None else 0.0


def hidden_fraction(person: Person, frame: Frame) -> float:
    """Fraction of the 15 joints that are inside the image but not visible (NaN without ``keypoints_all``).

    Joints outside the image (people leaving the picture) are truncation, not occlusion: not counted as
    hidden. Without the frame's size, every joint not visible counts.
    """
    if person.keypoints_all is None:
        return float("nan")
    every = slots17_to_joints(person.keypoints_all)                               # (K, 3)
    visible = person.joints[:, 2] > 0
    inside = np.ones(NUM_JOINTS, dtype=bool)
    if frame.width > 0 and frame.height > 0:
        inside = (every[:, 0] >= 0) & (every[:, 0] < frame.width) & (every[:, 1] >= 0) & (every[:, 1] < frame.height)
    return float(((every[:, 2] > 0) & inside & ~visible).sum() / NUM_JOINTS)


def draw_case(images: np.ndarray, gt: Video, pred: Video, case: PersonCase, *, category: str = "",
              margin: float = 0.6, min_size: int = 48, height: int = 160) -> np.ndarray:
    """A picture of one case, cropped around the GT person: (H', W', 3) uint8.

    images: (T, H, W, 3) uint8 frames of the video. Every category but "id drift": the GT person (left, its
    hidden joints grey when the GT has them) next to every prediction of that frame (right). "id drift": the
    two predicted tracks involved (the one the identity had and the one it got), in the frame where the
    identity was last found and in this frame, with their track ids, then the GT person.
    """
    from mpat_nb.viz import draw_people, frame_strip

    gt_person = next(p for p in gt.frames[case.frame].people if p.track_id == case.track_id)
    x1, y1, x2, y2 = _crop(gt_person, images.shape[1:3], margin, min_size)

    def crop(image: np.ndarray) -> np.ndarray:
        return image[y1:y2, x1:x2]

    if category == "id drift":
        if not case.id_switch:
            raise InputError(f"{case.video} frame {case.frame}, GT id {case.track_id}: not an id switch")
        ids = (case.previous_id, case.predicted_id)                 # the lost track and the one that took over
        tiles = [crop(draw_people(images[t], [p for p in pred.frames[t].people if p.track_id in ids]))
                 for t in (case.previous_frame, case.frame)]
        tiles.append(crop(draw_people(images[case.frame], [gt_person])))
        labels = [f"t={case.previous_frame}: id {case.previous_id}", f"t={case.frame}: id {case.predicted_id}",
                  f"GT id {case.track_id}"]
    else:
        tiles = [crop(draw_people(images[case.frame], [gt_person], show_ids=False, use_all_keypoints=True)),
                 crop(draw_people(images[case.frame], pred.frames[case.frame].people, show_ids=False))]
        labels = ["ground truth", f"PCKh {case.pck:.2f}"]
    return frame_strip(tiles, labels=labels, height=height)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _attach(gt_frame: Frame, pred_frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """(gt_to_pred (G,), pck (G,)): the evaluator's PCKh attachment and each GT person's fraction found."""
    sizes = people_head_sizes(gt_frame.people, f"frame {gt_frame.file_name!r}")  # (G,)
    gt_joints = np.stack([p.joints for p in gt_frame.people])                     # (G, K, 3)
    pred_joints = (np.stack([p.joints for p in pred_frame.people]) if pred_frame.people
                   else np.zeros((0, NUM_JOINTS, 3)))                             # (P, K, 3)
    assignment = pckh_assignment(pred_joints, gt_joints, sizes)
    gt_to_pred = assignment.gt_to_pred
    pck = np.zeros(len(gt_joints))
    attached = gt_to_pred >= 0
    pck[attached] = assignment.pck[gt_to_pred[attached], np.flatnonzero(attached)]
    return gt_to_pred, pck


def _varied(ranked: list[PersonCase], count: int) -> list[PersonCase]:
    """The first ``count`` of ``ranked`` taking one case per video first, then one per (video, identity)."""
    picked: list[PersonCase] = []
    for first_pass in (True, False):
        for case in ranked:
            if len(picked) == count:
                break
            taken = {(c.video, c.track_id) for c in picked}
            videos = {c.video for c in picked}
            if (case.video, case.track_id) not in taken and not (first_pass and case.video in videos):
                picked.append(case)
    order = {id(case): rank for rank, case in enumerate(ranked)}
    return sorted(picked, key=lambda case: order[id(case)])


def _whole_pose(person: Person) -> np.ndarray:
    """(K, 3) every joint (``keypoints_all``, hidden ones included) when the GT has them, else the visible ones."""
    return slots17_to_joints(person.keypoints_all if person.keypoints_all is not None else person.keypoints)


def _crop(person: Person, shape: tuple[int, int], margin: float, min_size: int) -> tuple[int, int, int, int]:
    """x1, y1, x2, y2 of a square window around the person's joints, grown by ``margin``, moved inside the image."""
    joints = _whole_pose(person)
    points = joints[joints[:, 2] > 0, :2]
    if len(points) == 0:
        points = person.joints[person.joints[:, 2] > 0, :2]
    low, high = points.min(axis=0), points.max(axis=0)
    height, width = shape
    side = min(max((1 + 2 * margin) * float((high - low).max()), min_size), width, height)
    x1, y1 = np.clip(np.round(0.5 * (low + high) - side / 2), 0, [width - side, height - side]).astype(int)
    side = int(round(side))                                  # a square window, moved inside the image
    return int(x1), int(y1), int(x1) + side, int(y1) + side
