"""PoseTrack evaluation: per-joint AP / mAP and per-joint CLEAR-MOT (MOTA, MOTP, precision, recall).

A re-implementation of the official PoseTrack tool (poseval) from its specification
(``docs/evaluation.md`` §4-§6); results agree with poseval to well within 0.1 points.

The protocol in brief, per sequence (GT and prediction videos paired by name, frames by position):

1. **Pre-processing.** Frames whose GT has no person are unlabelled: they are dropped together with the
   prediction frame at the same position. Where the GT frame has ignore polygons, every GT and predicted
   joint strictly inside one is deleted (a point on the boundary is kept) and people left with no joint
   are removed.
2. **Per-frame assignment (PCKh).** ``d[p, g, k] = |pred_pk - gt_gk| / h_g`` with the head size
   ``h_g = 0.6 x`` the diagonal of GT g's head box; a joint is correct when ``d <= 0.5``. Each prediction
   keeps only the GT person of which it hits the largest fraction of joints, then each GT person takes the
   prediction with the largest kept fraction (first index on ties; a loser is not retried elsewhere).
3. **AP per joint.** Every predicted joint is a candidate ranked by its score; it is a true positive when
   its person was attached to a GT person and the joint is correct there. AP is the VOC all-point
   interpolated area of the precision/recall curve over all annotated GT joints; mAP = mean over joints.
4. **MOT per joint.** One CLEAR-MOT accumulator per sequence and joint (:mod:`mpat_nb.evaluate_mot`):
   objects = GT people with the joint, hypotheses = predicted people with the joint (no score threshold),
   cost = ``d`` if ``d <= 0.5`` else forbidden. MOTA = 1 - (misses + FP + switches) / #objects, summed
   over sequences; totals are means over the 15 joints (NaN skipped).

``poseval_compat=True`` (default) reproduces poseval's quirks: the last labelled frame of every sequence is
left out of MOT, and a frame with no predicted person (or no GT person) counts as exactly one miss and one
false positive per joint (the "phantom" rule), whatever the number of people. ``poseval_compat=False`` is
*strict CLEAR-MOT*: every labelled frame is used and an empty prediction frame misses every GT person.

MOTP is reported as intended, ``100 (1 - mean normalised distance of the paired joints)``, in both modes.
poseval (since its 2020 motmetrics upgrade) prints a different, wrong MOTP; compare MOTA, mAP, precision
and recall with it, not MOTP.

Where this module knowingly differs from poseval (none matters for well-formed files with distinct scores):

* a sequence with a single labelled frame adds nothing to MOT, with a warning (poseval crashes);
* an ignore polygon with fewer than 3 vertices ignores nothing (poseval's shapely raises); polygons use
  the even-odd rule;
* only the person list decides whether a frame is labelled (``Frame.is_labeled`` is not read, as in
  poseval); a person without any keypoint counts as a person with an empty point list (poseval's reading
  of PoseTrack18 files); poseval drops a PoseTrack17 ``annorect`` that has no ``annopoints`` at all, which
  matters only for the phantom rule in a frame whose GT people all lack points;
* tied scores (e.g. the -9999 fallback) are ranked by ``np.argsort(scores)[::-1]`` as in poseval, over
  candidates pooled in the order of the GT video list; poseval pools in ``glob`` order of its GT folder
  (:func:`evaluate_paths` uses sorted file names);
* track ids must be in 0 .. 9999 in compat mode (poseval asserts < 10000 and offsets each sequence's ids by
  10000 x its index, so a negative id would land in the previous sequence's range; the project's PoseTrack
  writer demands the same), any integer in strict mode; predicted ids must be unique within a frame in both
  modes.

Glossary: P predicted people, G GT people (in one frame), K = 15 joints in poseval order
(:data:`mpat_nb.skeleton.JOINT_NAMES`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.evaluate_mot import MotCounts, accumulate_sequence
from mpat_nb.skeleton import JOINT_GROUPS, NUM_JOINTS, slots17_to_joints
from mpat_nb.utils import InputError

#: PCKh threshold: a joint is correct within half a head size (inclusive), as in poseval.
PCKH_THRESHOLD = 0.5
#: Head size = this factor x the diagonal of the GT head box (poseval's ``getHeadSize``).
HEAD_SIZE_FACTOR = 0.6
#: Score given to predicted joints of a person without ``scores`` (poseval's fallback; every such score ties).
MISSING_SCORE = -9999.0
#: poseval refuses track ids >= this (it offsets ids by 10000 x the sequence index).
MAX_TRACK_ID = 10000

#: Per-joint float metrics of :class:`PoseTrackResult` (all in percent).
METRIC_NAMES = ("ap", "ap_precision", "ap_recall", "mota", "motp", "mot_precision", "mot_recall")


@dataclass
class PoseTrackResult:
    """Per-joint PoseTrack metrics; every array is (K,) in poseval joint order, values in percent.

    ap, ap_precision, ap_recall: AP and the precision / recall with every candidate kept (AP is NaN for a
        joint that is never annotated but predicted; 0 for a joint that is never predicted).
    mota, motp, mot_precision, mot_recall: CLEAR-MOT per joint (NaN where undefined; MOTP is the
        intended definition, 0 when nothing was paired).
    num_gt: MOT objects (N of MOTA = matches + switches + misses, phantom objects included).
    num_matches (MATCH events only, as motmetrics counts them), num_switches, num_misses,
    num_false_positives: MOT event counts. num_annotated: annotated GT joints used by AP.
    num_frames: labelled frames evaluated for AP; num_mot_frames: frames fed to the MOT accumulators.
    per_sequence: sequence name -> its own result, when asked for.
    """

    ap: np.ndarray
    ap_precision: np.ndarray
    ap_recall: np.ndarray
    mota: np.ndarray
    motp: np.ndarray
    mot_precision: np.ndarray
    mot_recall: np.ndarray
    num_gt: np.ndarray
    num_matches: np.ndarray
    num_switches: np.ndarray
    num_misses: np.ndarray
    num_false_positives: np.ndarray
    num_annotated: np.ndarray
    num_frames: int = 0
    num_mot_frames: int = 0
    poseval_compat: bool = True
    per_sequence: dict[str, "PoseTrackResult"] | None = field(default=None, repr=False)

    @property
    def num_detections(self) -> np.ndarray:
        """(K,) paired objects M = matches + switches."""
        return self.num_matches + self.num_switches

    @property
    def total_map(self) -> float:
        """mAP: mean AP over the 15 joints, NaN joints left out."""
        return _nanmean(self.ap)

    @property
    def total_mota(self) -> float:
        """Mean MOTA over the 15 joints, NaN joints left out."""
        return _nanmean(self.mota)

    @property
    def total_motp(self) -> float:
        """Mean (intended) MOTP over the 15 joints."""
        return _nanmean(self.motp)

    @property
    def total_mot_precision(self) -> float:
        return _nanmean(self.mot_precision)

    @property
    def total_mot_recall(self) -> float:
        return _nanmean(self.mot_recall)

    def group_values(self, metric: str = "ap") -> dict[str, float]:
        """Table groups of one per-joint metric: Head, Shou, Elb, Wri, Hip, Knee, Ankl and Total.

        A group is the plain mean of its joints (NaN if one is NaN, as poseval prints it); Total is the
        mean over the 15 joints with NaN left out (not the mean of the groups).
        """
        if metric not in METRIC_NAMES:
            raise InputError(f"unknown metric {metric!r}: choose one of {', '.join(METRIC_NAMES)}")
        values = getattr(self, metric)
        groups = {name: float(values[list(joints)].mean()) for name, joints in JOINT_GROUPS.items()}
        groups["Total"] = _nanmean(values)
        return groups

    def table(self) -> str:
        """The two official-style tables: AP per group, then MOTA per group with MOTP, Prec, Rec totals."""
        def cell(text: str) -> str:
            return f"{text:>7}"

        def number(value: float) -> str:
            return cell("nan" if math.isnan(value) else f"{value:.1f}")

        names = list(JOINT_GROUPS) + ["Total"]
        ap = self.group_values("ap")
        mota = self.group_values("mota")
        mot_totals = [self.total_motp, self.total_mot_precision, self.total_mot_recall]
        lines = [
            "Average Precision (AP), %",
            "".join(cell(n) for n in names),
            "".join(number(ap[n]) for n in names),
            "",
            "Multiple Object Tracking (MOT), %",
            "".join(cell("MOTA") for _ in names) + "".join(cell(n) for n in ("MOTP", "Prec", "Rec")),
            "".join(cell(n) for n in names) + cell("Total") * 3,
            "".join(number(mota[n]) for n in names) + "".join(number(v) for v in mot_totals),
        ]
        mode = "poseval-compatible" if self.poseval_compat else "strict CLEAR-MOT"
        lines.append(f"({mode}; MOTP as intended - poseval prints a different MOTP)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-serialisable summary: totals, groups, per-joint values, summed counts (NaN -> None)."""
        out = {
            "poseval_compat": self.poseval_compat,
            "total": {
                "mAP": _json_float(self.total_map),
                "MOTA": _json_float(self.total_mota),
                "MOTP": _json_float(self.total_motp),
                "mot_precision": _json_float(self.total_mot_precision),
                "mot_recall": _json_float(self.total_mot_recall),
                "ap_precision": _json_float(_nanmean(self.ap_precision)),
                "ap_recall": _json_float(_nanmean(self.ap_recall)),
            },
            "groups": {m: {k: _json_float(v) for k, v in self.group_values(m).items()} for m in METRIC_NAMES},
            "per_joint": {m: [_json_float(v) for v in getattr(self, m)] for m in METRIC_NAMES},
            "counts": {
                name: int(getattr(self, name).sum())
                for name in ("num_gt", "num_matches", "num_switches", "num_misses", "num_false_positives",
                             "num_annotated")
            },
            "num_frames": int(self.num_frames),
            "num_mot_frames": int(self.num_mot_frames),
        }
        if self.per_sequence is not None:
            out["per_sequence"] = {name: result.to_dict() for name, result in self.per_sequence.items()}
        return out


def evaluate(gt: Video | Sequence[Video], pred: Video | Sequence[Video], *, poseval_compat: bool = True,
             per_sequence: bool = False) -> PoseTrackResult:
    """PoseTrack mAP and MOTA of predictions against ground truth.

    gt, pred: a :class:`Video` or a list of them; sequences are paired by ``Video.name`` (every GT video
        needs a prediction; extra predictions are ignored with a warning), frames by position.
    poseval_compat: True reproduces the official tool (last labelled frame left out of MOT, phantom rule
        for empty frames, track ids < 10000); False is strict CLEAR-MOT (every labelled frame used, an empty
        prediction frame misses every GT person, any integer track id).
    per_sequence: also compute each sequence's own result (``result.per_sequence``).
    """
    pairs = _pair_videos(_as_video_list(gt, "gt"), _as_video_list(pred, "pred"))
    fallback_warned = [False]
    sequences = [_evaluate_sequence(g, p, poseval_compat, fallback_warned) for g, p in pairs]
    result = _summarise(sequences, poseval_compat)
    if per_sequence:
        result.per_sequence = {s.name: _summarise([s], poseval_compat) for s in sequences}
    return result


def evaluate_paths(gt_path: str | Path, pred_path: str | Path, **kwargs) -> PoseTrackResult:
    """:func:`evaluate` on files: each path is one PoseTrack17/18 JSON file or a folder of them.

    Videos are named by file stem, so a GT file and its prediction file must share their name.
    ``kwargs`` go to :func:`evaluate` (``poseval_compat``, ``per_sequence``).
    """
    from mpat_nb.data.formats import load_posetrack_any  # lazy: formats is optional for in-memory use

    return evaluate(load_posetrack_any(gt_path), load_posetrack_any(pred_path), **kwargs)


def head_size(bbox_head) -> np.ndarray:
    """PCKh reference length: 0.6 x the diagonal of the head box.

    bbox_head: (..., 4) x, y, w, h -> (...,).
    """
    box = np.asarray(bbox_head, dtype=np.float64)
    # (x + w) - x rather than w: poseval converts PoseTrack18 boxes to corners first, so this agrees bit for bit.
    width = (box[..., 0] + box[..., 2]) - box[..., 0]
    height = (box[..., 1] + box[..., 3]) - box[..., 1]
    return HEAD_SIZE_FACTOR * np.sqrt(width**2 + height**2)


def people_head_sizes(people: Sequence[Person], where: str) -> np.ndarray:
    """(G,) head sizes of GT people; InputError naming ``where`` and the track ids of people without a head box."""
    missing = [p.track_id for p in people if p.bbox_head is None]
    if missing:
        raise InputError(f"{where}: GT people with track ids {missing} have no head box (bbox_head), which PCKh needs")
    return head_size(np.stack([p.bbox_head for p in people])) if people else np.zeros(0)


@dataclass
class PCKhAssignment:
    """Result of :func:`pckh_assignment` for one frame.

    distance: (P, G, K) head-normalised distance, inf where either joint is absent.
    match: (P, G, K) bool, distance <= threshold.
    pck: (P, G) fraction of GT g's annotated joints that prediction p hits.
    pred_to_gt: (P,) attached GT index or -1; gt_to_pred: (G,) attached prediction index or -1.
    """

    distance: np.ndarray
    match: np.ndarray
    pck: np.ndarray
    pred_to_gt: np.ndarray
    gt_to_pred: np.ndarray

    @property
    def correct_joints(self) -> np.ndarray:
        """(P, K) bool: joint k of prediction p is correct for the GT person p is attached to (AP's TP)."""
        num_pred, _, num_joints = self.match.shape
        correct = np.zeros((num_pred, num_joints), dtype=bool)
        attached = np.flatnonzero(self.pred_to_gt >= 0)
        correct[attached] = self.match[attached, self.pred_to_gt[attached]]
        return correct


def pckh_assignment(pred_joints, gt_joints, gt_head_sizes, *, threshold: float = PCKH_THRESHOLD) -> PCKhAssignment:
    """poseval's two-step greedy PCKh assignment of predicted to GT people in one frame.

    pred_joints: (P, K, 3) x, y, v; gt_joints: (G, K, 3) x, y, v (v > 0 = present); gt_head_sizes: (G,).
    Step 1: each prediction keeps only its best GT (largest pck, first index on ties).
    Step 2: each GT takes the prediction with the largest remaining pck (first index on ties), if > 0.
    """
    pred_joints = np.asarray(pred_joints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    gt_joints = np.asarray(gt_joints, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    gt_head_sizes = np.asarray(gt_head_sizes, dtype=np.float64).reshape(-1)
    num_pred, num_gt = len(pred_joints), len(gt_joints)
    has_pred, has_gt = pred_joints[..., 2] > 0, gt_joints[..., 2] > 0  # (P, K), (G, K)

    # d[p, g, k] = |pred_pk - gt_gk| / h_g where both joints exist, else inf
    offsets = pred_joints[:, None, :, :2] - gt_joints[None, :, :, :2]         # (P, G, K, 2)
    with np.errstate(divide="ignore", invalid="ignore"):                     # zero-size head boxes
        distance = np.sqrt((offsets**2).sum(axis=-1)) / gt_head_sizes[None, :, None]
    distance = np.where(has_pred[:, None, :] & has_gt[None, :, :], distance, np.inf)
    match = distance <= threshold                                             # inclusive, as poseval

    # pck[p, g] = sum_k match[p, g, k] / n_g, n_g = annotated joints of g (raw count when n_g = 0)
    annotated = has_gt.sum(axis=1)                                            # (G,)
    pck = match.sum(axis=2) / np.where(annotated > 0, annotated, 1)[None, :]

    pred_to_gt = np.full(num_pred, -1, dtype=np.int64)
    gt_to_pred = np.full(num_gt, -1, dtype=np.int64)
    if num_pred and num_gt:
        # Step 1: zero every pck[p, g] except at p's best GT.
        best_gt = np.argmax(pck, axis=1)                                      # (P,)
        kept = np.zeros_like(pck)
        kept[np.arange(num_pred), best_gt] = pck[np.arange(num_pred), best_gt]
        # Step 2: each GT takes its best remaining prediction; a zero maximum means unassigned.
        best_pred = np.argmax(kept, axis=0)                                   # (G,)
        assigned = kept.max(axis=0) > 0
        gt_to_pred[assigned] = best_pred[assigned]
        pred_to_gt[gt_to_pred[assigned]] = np.flatnonzero(assigned)         # unique after step 1
    return PCKhAssignment(distance, match, pck, pred_to_gt, gt_to_pred)


def average_precision(scores, labels, num_positives: int) -> tuple[float, float, float]:
    """VOC all-point interpolated AP of ranked candidates, in percent, as poseval computes it.

    scores: (M,) candidate scores; labels: (M,) bool true positives; num_positives: N (annotated GT joints).
    Returns (AP, precision, recall), the last two with every candidate kept. No candidate -> (0, 0, 0);
    N = 0 with candidates -> AP and recall NaN (0 / 0).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=bool).reshape(-1)
    if scores.size == 0:
        return 0.0, 0.0, 0.0
    order = np.argsort(scores)[::-1]  # poseval's ranking; ties keep this (implementation-defined) order
    true_positives = np.cumsum(labels[order])
    precision = true_positives / np.arange(1, len(order) + 1)                # TP_k / k
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = true_positives / np.float64(num_positives)                   # TP_k / N
    # Envelope: prepend (r 0, p 0), append (r 1, p 0), make precision non-increasing from the right.
    recall_ext = np.concatenate(([0.0], recall, [1.0]))
    precision_ext = np.maximum.accumulate(np.concatenate(([0.0], precision, [0.0]))[::-1])[::-1]
    steps = np.flatnonzero(recall_ext[1:] != recall_ext[:-1]) + 1           # where recall changes
    ap = np.sum((recall_ext[steps] - recall_ext[steps - 1]) * precision_ext[steps])
    return float(100 * ap), float(100 * precision[-1]), float(100 * recall[-1])


def strictly_inside_polygon(points, polygon) -> np.ndarray:
    """Point-in-polygon with the boundary excluded (shapely's ``contains``), for simple polygons.

    points: (M, 2) x, y; polygon: (V, 2) vertices, closed implicitly -> (M,) bool.
    A polygon with fewer than 3 vertices contains nothing.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    polygon = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(polygon) < 3 or len(points) == 0:
        return np.zeros(len(points), dtype=bool)
    px, py = points[:, :1], points[:, 1:]                                     # (M, 1)
    ax, ay = polygon[:, 0], polygon[:, 1]                                     # edge starts (V,)
    bx, by = np.roll(ax, -1), np.roll(ay, -1)                                 # edge ends (V,)
    # On the boundary: collinear with an edge (cross product 0) and within its bounding box.
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)                     # (M, V)
    on_edge = ((cross == 0) & (np.minimum(ax, bx) <= px) & (px <= np.maximum(ax, bx))
               & (np.minimum(ay, by) <= py) & (py <= np.maximum(ay, by)))
    # Inside: a ray to +x crosses the boundary an odd number of times (edges straddling y = py).
    straddles = (ay > py) != (by > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_crossing = ax + (py - ay) * (bx - ax) / (by - ay)
    crossings = (straddles & (px < x_crossing)).sum(axis=1)
    return (crossings % 2 == 1) & ~on_edge.any(axis=1)


# ------------------------------------------------------------------------------------------------
# Helpers: pairing and checks, pre-processing, per-frame tensors, summaries
# ------------------------------------------------------------------------------------------------
@dataclass
class _FrameTensors:
    """One labelled frame after pre-processing and assignment (inputs of AP and MOT).

    gt_ids (G,), pred_ids (P,); has_gt (G, K), has_pred (P, K); scores (P, K);
    correct (P, K) AP labels; cost (G, P, K) normalised distance where matched, NaN = forbidden.
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    has_gt: np.ndarray
    has_pred: np.ndarray
    scores: np.ndarray
    correct: np.ndarray
    cost: np.ndarray


@dataclass
class _SequenceStats:
    """What one sequence contributes: AP candidates (in frame, person order), N_j, MOT counts."""

    name: str
    candidate_joint: np.ndarray
    candidate_score: np.ndarray
    candidate_label: np.ndarray
    num_annotated: np.ndarray
    mot: MotCounts
    num_frames: int
    num_mot_frames: int


def _as_video_list(videos, role: str) -> list[Video]:
    if isinstance(videos, Video):
        return [videos]
    if isinstance(videos, (str, Path)):
        raise InputError(f"{role}: expected Video objects, got the path {str(videos)!r}; use evaluate_paths()")
    videos = list(videos)
    if not all(isinstance(v, Video) for v in videos):
        raise InputError(f"{role}: expected a Video or a list of Video objects")
    names = [v.name for v in videos]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{role}: several videos share the name(s) {duplicates}; sequences are paired by name")
    return videos


def _pair_videos(gt: list[Video], pred: list[Video]) -> list[tuple[Video, Video]]:
    if not gt:
        raise InputError("gt: no ground-truth video to evaluate")
    by_name = {v.name: v for v in pred}
    missing = [v.name for v in gt if v.name not in by_name]
    if missing:
        raise InputError(f"no prediction for the ground-truth video(s) {missing}: every GT sequence needs a "
                         "prediction video of the same name (an empty one if nothing was detected)")
    extra = sorted(set(by_name) - {v.name for v in gt})
    if extra:
        warnings.warn(f"prediction video(s) without ground truth ignored: {extra}", stacklevel=3)
    pairs = []
    for video in gt:
        prediction = by_name[video.name]
        if len(prediction.frames) != len(video.frames):
            raise InputError(f"video {video.name!r}: the prediction has {len(prediction.frames)} frames but the "
                             f"ground truth has {len(video.frames)}; frames are paired by position, so the "
                             "prediction must list every GT image (labelled or not) in the same order")
        pairs.append((video, prediction))
    return pairs


def _check_track_ids(video: Video, role: str, poseval_compat: bool) -> None:
    """Prediction ids unique per frame (any mode); in compat mode all ids in 0 .. 9999, as poseval demands."""
    for index, frame in enumerate(video.frames):
        ids = [person.track_id for person in frame.people]
        where = f"video {video.name!r}, frame {index} ({frame.file_name!r})"
        if role == "pred" and len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            raise InputError(f"{where}: predicted track ids {repeated} occur more than once; each predicted "
                             "person in a frame needs its own track id")
        if poseval_compat and ids and max(ids) >= MAX_TRACK_ID:
            raise InputError(f"{where}: {role} track id {max(ids)} >= {MAX_TRACK_ID}, which poseval refuses; "
                             "renumber the tracks (e.g. 0, 1, 2, ... by first appearance) or pass "
                             "poseval_compat=False")
        if poseval_compat and ids and min(ids) < 0:
            raise InputError(f"{where}: {role} track id {min(ids)} < 0; poseval needs track ids >= 0 (it offsets "
                             "each sequence's ids by 10000): renumber the tracks (e.g. 0, 1, 2, ... by first "
                             "appearance) or pass --strict (poseval_compat=False)")


def _evaluate_sequence(gt: Video, pred: Video, poseval_compat: bool, fallback_warned: list) -> _SequenceStats:
    _check_track_ids(gt, "gt", poseval_compat)
    _check_track_ids(pred, "pred", poseval_compat)
    # §4.1: unlabelled frames (no GT person) leave together with the prediction frame at their position.
    labelled = [i for i, frame in enumerate(gt.frames) if frame.people]
    frames = [_frame_tensors(gt, i, pred.frames[i], fallback_warned) for i in labelled]

    joint, score, label = [], [], []
    for frame in frames:  # AP candidates in (frame, person, joint) order: poseval's order for ties
        person_index, joint_index = np.nonzero(frame.has_pred)
        joint.append(joint_index)
        score.append(frame.scores[person_index, joint_index])
        label.append(frame.correct[person_index, joint_index])
    num_annotated = sum((f.has_gt.sum(axis=0) for f in frames), np.zeros(NUM_JOINTS, dtype=np.int64))

    # MOT frames: poseval leaves out each sequence's last labelled frame (a 2017 workaround never removed).
    mot_frames = frames[:-1] if poseval_compat else frames
    if poseval_compat and len(frames) == 1:
        warnings.warn(f"video {gt.name!r} has a single labelled frame: it adds nothing to MOT (poseval crashes "
                      "on such a sequence)", stacklevel=3)
    mot = accumulate_sequence(mot_frames, NUM_JOINTS, phantom_rule=poseval_compat)
    return _SequenceStats(
        name=gt.name,
        candidate_joint=np.concatenate(joint) if joint else np.zeros(0, dtype=np.int64),
        candidate_score=np.concatenate(score) if score else np.zeros(0),
        candidate_label=np.concatenate(label) if label else np.zeros(0, dtype=bool),
        num_annotated=num_annotated.astype(np.int64),
        mot=mot,
        num_frames=len(frames),
        num_mot_frames=len(mot_frames),
    )


def _frame_tensors(gt_video: Video, index: int, pred_frame: Frame, fallback_warned: list) -> _FrameTensors:
    gt_frame = gt_video.frames[index]
    gt_joints, gt_ids, _ = _people_arrays(gt_frame.people)
    pred_joints, pred_ids, scores = _people_arrays(pred_frame.people)
    gt_people = list(gt_frame.people)
    if any(p.scores is None for p in pred_frame.people) and not fallback_warned[0]:
        warnings.warn(f"video {gt_video.name!r}: predicted people without keypoint scores get the fallback score "
                      f"{MISSING_SCORE:g}; AP then depends on the order of tied scores", stacklevel=4)
        fallback_warned[0] = True

    # §4.3: ignore regions (from the GT frame) delete joints strictly inside, then emptied people.
    if gt_frame.ignore_regions:
        gt_joints, gt_keep = _drop_ignored_joints(gt_joints, gt_frame.ignore_regions)
        pred_joints, pred_keep = _drop_ignored_joints(pred_joints, gt_frame.ignore_regions)
        gt_ids, pred_ids, scores = gt_ids[gt_keep], pred_ids[pred_keep], scores[pred_keep]
        gt_people = [p for p, keep in zip(gt_people, gt_keep) if keep]

    head_sizes = np.zeros(len(gt_people))
    if len(pred_ids) and len(gt_ids):  # distances are needed only when both sides have people
        head_sizes = people_head_sizes(gt_people, f"video {gt_video.name!r}, frame {index} ({gt_frame.file_name!r})")
    assignment = pckh_assignment(pred_joints, gt_joints, head_sizes)
    # MOT cost[g, p, k]: the distance of an allowed (matching) pair, NaN = forbidden.
    cost = np.where(assignment.match, assignment.distance, np.nan).transpose(1, 0, 2)
    return _FrameTensors(gt_ids=gt_ids, pred_ids=pred_ids, has_gt=gt_joints[..., 2] > 0,
                         has_pred=pred_joints[..., 2] > 0, scores=scores,
                         correct=assignment.correct_joints, cost=cost)


def _people_arrays(people: list[Person]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """people -> joints (N, K, 3) x, y, present (1/0); track ids (N,); joint scores (N, K)."""
    if not people:
        return np.zeros((0, NUM_JOINTS, 3)), np.zeros(0, dtype=np.int64), np.zeros((0, NUM_JOINTS))
    joints = slots17_to_joints(np.stack([p.keypoints for p in people]))      # (N, K, 3)
    present = joints[..., 2] > 0
    joints = np.concatenate([joints[..., :2], present[..., None].astype(np.float64)], axis=-1)
    ids = np.array([p.track_id for p in people], dtype=np.int64)
    scores = np.stack([p.joint_scores if p.scores is not None else np.full(NUM_JOINTS, MISSING_SCORE)
                       for p in people])
    return joints, ids, scores


def _drop_ignored_joints(joints: np.ndarray, polygons: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Joints strictly inside any polygon become absent; people left without a joint are removed.

    joints: (N, K, 3) with the presence flag in channel 2 -> (kept joints (N', K, 3), kept (N,) bool).
    """
    points = joints[..., :2].reshape(-1, 2)
    inside = np.zeros(len(points), dtype=bool)
    for polygon in polygons:
        inside |= strictly_inside_polygon(points, polygon)
    present = (joints[..., 2] > 0) & ~inside.reshape(joints.shape[:2])
    filtered = np.concatenate([joints[..., :2], present[..., None].astype(np.float64)], axis=-1)
    kept = present.any(axis=1)
    return filtered[kept], kept


def _summarise(sequences: list[_SequenceStats], poseval_compat: bool) -> PoseTrackResult:
    """Sequence contributions -> per-joint metrics (AP over the pooled candidates, MOT over summed counts)."""
    joint = np.concatenate([s.candidate_joint for s in sequences])
    score = np.concatenate([s.candidate_score for s in sequences])
    label = np.concatenate([s.candidate_label for s in sequences])
    num_annotated = sum((s.num_annotated for s in sequences), np.zeros(NUM_JOINTS, dtype=np.int64))
    ap_table = np.array([average_precision(score[joint == k], label[joint == k], num_annotated[k])
                         for k in range(NUM_JOINTS)])                         # (K, 3)

    mot = sum((s.mot for s in sequences), MotCounts.zeros(NUM_JOINTS))
    paired = mot.num_matches + mot.num_switches                               # M
    errors = mot.num_misses + mot.num_false_positives + mot.num_switches
    with np.errstate(divide="ignore", invalid="ignore"):
        objects = np.where(mot.num_objects > 0, mot.num_objects, np.nan)      # N, NaN when 0
        claimed = np.where(paired + mot.num_false_positives > 0, paired + mot.num_false_positives, np.nan)
        mota = 100 * (1 - errors / objects)                                   # MOTA = 1 - (FN + FP + IDSW) / N
        motp = np.where(paired > 0, 100 * (1 - mot.distance_sum / np.maximum(paired, 1)), 0.0)
        mot_precision = 100 * paired / claimed                               # M / (M + FP)
        mot_recall = 100 * paired / objects                                  # M / N
    return PoseTrackResult(
        ap=ap_table[:, 0], ap_precision=ap_table[:, 1], ap_recall=ap_table[:, 2],
        mota=mota, motp=motp, mot_precision=mot_precision, mot_recall=mot_recall,
        num_gt=mot.num_objects, num_matches=mot.num_matches, num_switches=mot.num_switches,
        num_misses=mot.num_misses, num_false_positives=mot.num_false_positives, num_annotated=num_annotated,
        num_frames=sum(s.num_frames for s in sequences), num_mot_frames=sum(s.num_mot_frames for s in sequences),
        poseval_compat=poseval_compat,
    )


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def _json_float(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value
