"""Tests of the PoseTrack evaluator (mpat_nb.evaluate, mpat_nb.evaluate_mot).

The reference numbers come from docs/evaluation.md §6.3 (confirmed there with the official poseval);
the rest are hand-computed small cases, brute-force re-computations and a cross-check of the CLEAR-MOT
counts against py-motmetrics.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.evaluate import (
    MISSING_SCORE,
    PoseTrackResult,
    average_precision,
    evaluate,
    evaluate_paths,
    head_size,
    pckh_assignment,
    strictly_inside_polygon,
)
from mpat_nb.evaluate_mot import ClearMotAccumulator, max_pairs_min_cost_assignment
from mpat_nb.skeleton import JOINT_TO_SLOT17, NUM_JOINTS, joints_to_slots17
from mpat_nb.utils import InputError

K = NUM_JOINTS
SEQ = "000001_mpii_test"
REAL_DIR = (Path(__file__).resolve().parents[2] / "shared" / "real_samples" / "mmpose_posetrack18"
            / "annotations" / "val")


# ------------------------------------------------------------------------------------------------
# Builders
# ------------------------------------------------------------------------------------------------
def make_person(track_id: int, x0: float, y0: float, score: float | None = 0.5, head=(30.0, 40.0)) -> Person:
    """A person with all 15 joints on a diagonal line from (x0, y0); head box 30 x 40 -> head size 30 px."""
    joints = np.zeros((K, 3))
    joints[:, 0] = x0 + 20 * np.arange(K)
    joints[:, 1] = y0 + 7 * np.arange(K)
    joints[:, 2] = 2
    scores = None if score is None else np.full(17, score)
    return Person(joints_to_slots17(joints), track_id=track_id, scores=scores, bbox_head=[x0, y0, *head])


def two_person_clip(num_frames: int = 3, score: float | None = 0.5, name: str = SEQ) -> Video:
    """docs/evaluation.md §6.3: two GT people far apart (A id 0, B id 1), all joints, 3 labelled frames."""
    return Video(name, [Frame(f"images/val/{name}/{t:06d}.jpg", people=[make_person(0, 100, 100, score),
                                                                           make_person(1, 1000, 500, score)])
                        for t in range(num_frames)])


def gt_clip(num_frames: int = 3, name: str = SEQ) -> Video:
    return two_person_clip(num_frames, score=None, name=name)


def shift_joint(person: Person, joint: int, dx: float) -> None:
    person.keypoints[JOINT_TO_SLOT17[joint], 0] += dx


def drop_joint(person: Person, joint: int) -> None:
    person.keypoints[JOINT_TO_SLOT17[joint]] = 0.0


def random_gt_video(rng: np.random.Generator, name: str = SEQ, num_frames: int = 8, max_people: int = 4,
                    with_ignore: bool = True, close: bool = False) -> Video:
    """Random multi-person GT: tracks enter / leave, random missing joints, unlabelled frames, ignore polygons.

    People stand on a grid 250 px apart (``close=True``: 18 px apart, so that predictions compete).
    Ignore polygons cover the left strip x < 200 (an extra person stands wholly inside it) and a small box
    that clips a few joints of the first grid person; every labelled frame keeps people outside them.
    """
    spacing = 18.0 if close else 250.0
    frames = []
    for t in range(num_frames):
        people = []
        if t == 0 or rng.random() > 0.15:  # some frames unlabelled (no GT person)
            count = int(rng.integers(1, max_people + 1))
            for track_id in sorted(rng.choice(max_people + 2, size=count, replace=False).tolist()):
                x0 = 300 + spacing * track_id + 2.0 * t
                y0 = 80 + (0 if close else 40 * (track_id % 2))
                joints = np.zeros((K, 3))
                joints[:, 0] = x0 + rng.uniform(0, 60, K)
                joints[:, 1] = y0 + rng.uniform(0, 150, K)
                joints[:, 2] = np.where(rng.random(K) < 0.85, 2, 0)
                joints[joints[:, 2] == 0, :2] = 0
                head = [x0, y0 - 30, rng.uniform(20, 35), rng.uniform(25, 40)]
                people.append(Person(joints_to_slots17(joints), track_id=track_id, bbox_head=head))
            if with_ignore and rng.random() < 0.5:
                # An extra person fully inside the ignore strip: removed from GT and prediction alike.
                joints = np.zeros((K, 3))
                joints[:, 0], joints[:, 1], joints[:, 2] = 50 + rng.uniform(0, 60, K), 300 + rng.uniform(0, 99, K), 2
                people.append(Person(joints_to_slots17(joints), track_id=9, bbox_head=[50, 270, 30, 40]))
        regions = []
        if with_ignore and people:
            regions.append(np.array([[0, 250], [200, 250], [200, 450], [0, 450]], dtype=float))
            regions.append(np.array([[0, 0], [150, 10], [20, 120]], dtype=float))
            regions.append(np.array([[300, 80], [340, 80], [340, 130], [300, 130]], dtype=float))  # partial cover
        frames.append(Frame(f"images/val/{name}/{t:06d}.jpg", people=people, ignore_regions=regions))
    return Video(name, frames)


def as_prediction(video: Video, rng: np.random.Generator) -> Video:
    """A deep copy with distinct random keypoint scores (so AP never depends on tie order)."""
    out = copy.deepcopy(video)
    for frame in out.frames:
        frame.ignore_regions = []
        for person in frame.people:
            person.scores = rng.uniform(0.1, 1.0, 17)
    return out


def perturbed_prediction(gt: Video, rng: np.random.Generator) -> Video:
    """Jitter, dropped joints and people, id permutations, duplicates, far false positives, empty frames."""
    out = as_prediction(gt, rng)
    mapping = {i: i for i in range(20)}
    for frame in out.frames:
        if rng.random() < 0.3:  # permute two ids from here on
            a, b = rng.choice(8, size=2, replace=False)
            mapping[a], mapping[b] = mapping[b], mapping[a]
        if rng.random() < 0.12:
            frame.people = []
            continue
        people = []
        for person in frame.people:
            if rng.random() < 0.15:
                continue
            present = person.keypoints[:, 2] > 0
            person.keypoints[present, :2] += rng.normal(0, rng.uniform(0, 12), (int(present.sum()), 2))
            lost = present & (rng.random(17) < 0.1)
            person.keypoints[lost] = 0
            person.track_id = mapping[person.track_id]
            people.append(person)
            if rng.random() < 0.15:  # a near duplicate competing for the same GT person
                twin = copy.deepcopy(person)
                twin_present = twin.keypoints[:, 2] > 0
                twin.keypoints[twin_present, :2] += rng.normal(0, 4, (int(twin_present.sum()), 2))
                twin.track_id = 100 + len(people)
                twin.scores = rng.uniform(0.0, 0.5, 17)
                people.append(twin)
        if rng.random() < 0.3:  # a far-away false positive
            fake = make_person(200 + int(rng.integers(5)), 1500, 800, score=None)
            fake.scores = rng.uniform(0.0, 0.3, 17)
            people.append(fake)
        frame.people = people
    return out


# ------------------------------------------------------------------------------------------------
# docs/evaluation.md §6.3: hand-checkable vectors confirmed with poseval
# ------------------------------------------------------------------------------------------------
def _swap_from_frame_2(pred: Video) -> None:
    for frame in pred.frames[1:]:
        frame.people[0].track_id, frame.people[1].track_id = 1, 0


def _b_missing_in_frame_1(pred: Video) -> None:
    pred.frames[0].people.pop(1)


def _extra_far_person(pred: Video) -> None:
    for frame in pred.frames:
        frame.people.append(make_person(7, 400, 900, score=0.9))


def _no_prediction_in_frame_2(pred: Video) -> None:
    pred.frames[1].people = []


def _shift_joint_0(pred: Video) -> None:
    for frame in pred.frames:
        shift_joint(frame.people[0], 0, 15.00)  # exactly half a head size: still a hit
        shift_joint(frame.people[1], 0, 15.01)


@pytest.mark.parametrize("corrupt, expected_map, expected_mota", [
    (lambda pred: None, 100.0, 100.0),
    (_swap_from_frame_2, 100.0, 50.0),
    (_b_missing_in_frame_1, 83.33, 75.0),
    (_extra_far_person, 66.67, 50.0),
    (_no_prediction_in_frame_2, 66.67, 33.33),
    (_shift_joint_0, 95.0, 93.33),
])
def test_hand_checkable_vectors(corrupt, expected_map, expected_mota):
    pred = two_person_clip()
    corrupt(pred)
    result = evaluate(gt_clip(), pred)
    assert result.total_map == pytest.approx(expected_map, abs=0.005)
    assert result.total_mota == pytest.approx(expected_mota, abs=0.005)


def test_vector_details():
    pred = two_person_clip()
    _swap_from_frame_2(pred)
    result = evaluate(gt_clip(), pred)
    assert (result.num_gt == 4).all() and (result.num_switches == 2).all()  # last frame dropped

    pred = two_person_clip()
    _no_prediction_in_frame_2(pred)
    result = evaluate(gt_clip(), pred)
    # phantom rule: 3 objects, 1 miss + 1 FP per joint (not 4 objects, 2 misses)
    assert (result.num_gt == 3).all() and (result.num_misses == 1).all() and (result.num_false_positives == 1).all()

    pred = two_person_clip()
    _shift_joint_0(pred)
    result = evaluate(gt_clip(), pred)
    assert result.ap[0] == pytest.approx(25.0)  # tie order of the equal scores, as poseval
    assert result.mota[0] == pytest.approx(0.0)
    np.testing.assert_allclose(result.ap[1:], 100.0)
    assert result.motp[0] == pytest.approx(100 * (1 - 0.5))  # the only pairs are A's at d = 0.5

    pred = two_person_clip()
    _extra_far_person(pred)
    result = evaluate(gt_clip(), pred)
    np.testing.assert_allclose(result.ap_precision, 100 * 6 / 9)
    np.testing.assert_allclose(result.ap_recall, 100.0)


def test_motmetrics_readme_toy():
    """py-motmetrics' three-frame example, through our accumulator."""
    acc = ClearMotAccumulator()
    acc.update([1, 2], [1, 2, 3], [[0.1, np.nan, 0.3], [0.5, 0.2, 0.3]])  # 1-1, 2-2 match; hyp 3 FP
    assert (acc.num_matches, acc.num_false_positives) == (2, 1)
    acc.update([1, 2], [1], [[0.2], [0.4]])                            # 1-1 carried forward; 2 missed
    assert (acc.num_matches, acc.num_misses) == (3, 1)
    acc.update([1, 2], [1, 3], [[0.6, 0.2], [0.1, 0.6]])              # 1-1 carried forward (0.6 beats a
    assert (acc.num_matches, acc.num_switches) == (4, 1)              # cheaper 1-3); 2 -> 3 is a switch
    assert acc.num_objects == 6
    assert acc.distance_sum == pytest.approx(0.1 + 0.2 + 0.2 + 0.6 + 0.6)
    mota = 1 - (acc.num_misses + acc.num_false_positives + acc.num_switches) / acc.num_objects
    assert mota == pytest.approx(0.5)


def test_assignment_maximises_pairs_before_cost():
    cost = np.array([[0.1, 0.2], [np.nan, 0.3]])
    rows, cols = max_pairs_min_cost_assignment(cost)  # 0-0 + 1-1 (0.4) beats 0-1 alone (0.2)
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    rows, cols = max_pairs_min_cost_assignment(np.full((2, 3), np.nan))
    assert rows.size == 0 and cols.size == 0


# ------------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("poseval_compat", [True, False])
def test_ground_truth_against_itself_is_perfect(seed, poseval_compat):
    rng = np.random.default_rng(seed)
    gt = [random_gt_video(rng, name=f"00000{i}_mpii_test") for i in range(2)]
    pred = [as_prediction(v, rng) for v in gt]
    result = evaluate(gt, pred, poseval_compat=poseval_compat)
    for name in ("ap", "ap_precision", "ap_recall", "mota", "motp", "mot_precision", "mot_recall"):
        values = getattr(result, name)
        np.testing.assert_allclose(values[~np.isnan(values)], 100.0, err_msg=name)
    assert result.total_map == 100.0 and result.total_mota == 100.0 and result.total_motp == 100.0
    assert result.num_misses.sum() == result.num_false_positives.sum() == result.num_switches.sum() == 0


def test_inputs_are_not_modified():
    rng = np.random.default_rng(3)
    gt = random_gt_video(rng)
    pred = perturbed_prediction(gt, rng)
    before = copy.deepcopy((gt, pred))
    evaluate(gt, pred)
    for video, original in zip((gt, pred), before):
        for frame, frame0 in zip(video.frames, original.frames):
            assert len(frame.people) == len(frame0.people)
            for person, person0 in zip(frame.people, frame0.people):
                np.testing.assert_array_equal(person.keypoints, person0.keypoints)


def _brute_force_ap(scores, labels, num_positives):
    """Direct transcription of the AP rule of docs/evaluation.md §6.1 (distinct scores)."""
    if len(scores) == 0:
        return 0.0
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    tp, recall, precision = 0, [0.0], [0.0]
    for rank, i in enumerate(order, start=1):
        tp += bool(labels[i])
        recall.append(tp / num_positives)
        precision.append(tp / rank)
    recall.append(1.0)
    precision.append(0.0)
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    return 100 * sum((recall[i] - recall[i - 1]) * precision[i] for i in range(1, len(recall))
                     if recall[i] != recall[i - 1])


@pytest.mark.parametrize("seed", range(20))
def test_average_precision_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 40))
    scores = rng.permutation(count) / count + 0.01
    labels = rng.random(count) < rng.uniform(0.1, 0.9)
    num_positives = int(labels.sum() + rng.integers(0, 5)) or 1
    ap, precision, recall = average_precision(scores, labels, num_positives)
    assert ap == pytest.approx(_brute_force_ap(scores, labels, num_positives), abs=1e-10)
    assert precision == pytest.approx(100 * labels.sum() / count)
    assert recall == pytest.approx(100 * labels.sum() / num_positives)


def test_average_precision_edge_cases():
    assert average_precision([], [], 5) == (0.0, 0.0, 0.0)           # no candidate: 0, stays in the mean
    ap, precision, recall = average_precision([0.3, 0.2], [False, False], 0)
    assert math.isnan(ap) and math.isnan(recall) and precision == 0.0  # N_j = 0: NaN
    assert average_precision([0.9, 0.1], [False, True], 1)[0] == pytest.approx(50.0)


def _brute_force_assignment(pred, gt, heads):
    """Loop transcription of docs/evaluation.md §5."""
    num_pred, num_gt = len(pred), len(gt)
    pck = np.zeros((num_pred, num_gt))
    for p in range(num_pred):
        for g in range(num_gt):
            hits = 0
            for k in range(K):
                if pred[p, k, 2] > 0 and gt[g, k, 2] > 0:
                    hits += math.dist(pred[p, k, :2], gt[g, k, :2]) / heads[g] <= 0.5
            annotated = int((gt[g, :, 2] > 0).sum())
            pck[p, g] = hits / annotated if annotated else hits
    for p in range(num_pred):
        best = max(range(num_gt), key=lambda g: (pck[p, g], -g))
        for g in range(num_gt):
            if g != best:
                pck[p, g] = 0
    gt_to_pred = []
    for g in range(num_gt):
        best = max(range(num_pred), key=lambda p: (pck[p, g], -p))
        gt_to_pred.append(best if pck[best, g] > 0 else -1)
    return gt_to_pred


@pytest.mark.parametrize("seed", range(15))
def test_pckh_assignment_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    num_gt, num_pred = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    gt = np.zeros((num_gt, K, 3))
    gt[..., :2] = rng.uniform(0, 60, (num_gt, K, 2))          # crowded: everyone overlaps
    gt[..., 2] = rng.random((num_gt, K)) < 0.8
    pred = np.zeros((num_pred, K, 3))
    source = rng.integers(0, num_gt, num_pred)
    pred[..., :2] = gt[source, :, :2] + rng.normal(0, 8, (num_pred, K, 2))
    pred[..., 2] = rng.random((num_pred, K)) < 0.8
    heads = rng.uniform(15, 30, num_gt)
    result = pckh_assignment(pred, gt, heads)
    assert result.gt_to_pred.tolist() == _brute_force_assignment(pred, gt, heads)
    for g, p in enumerate(result.gt_to_pred):
        if p >= 0:
            assert result.pred_to_gt[p] == g
    assert ((result.pred_to_gt >= 0).sum() == (result.gt_to_pred >= 0).sum())


# ------------------------------------------------------------------------------------------------
# Hand-computed small cases
# ------------------------------------------------------------------------------------------------
def test_head_size():
    assert head_size([10, 20, 30, 40]) == pytest.approx(30.0)
    np.testing.assert_allclose(head_size(np.array([[0, 0, 3, 4], [5, 5, 0, 0]])), [3.0, 0.0])


def test_missed_joint():
    pred = two_person_clip()
    drop_joint(pred.frames[0].people[0], 4)
    result = evaluate(gt_clip(), pred)
    assert result.ap[4] == pytest.approx(100 * 5 / 6)   # 5 of 6 joints found, no false positive
    assert result.mota[4] == pytest.approx(75.0)        # frames 1-2: 4 objects, 1 miss
    assert result.num_misses[4] == 1 and result.num_misses.sum() == 1


def test_low_score_false_positive_person_only_hurts_mota():
    pred = two_person_clip()
    for frame in pred.frames:
        frame.people.append(make_person(7, 400, 900, score=0.1))  # ranked after every true positive
    result = evaluate(gt_clip(), pred)
    assert result.total_map == pytest.approx(100.0)
    assert result.total_mota == pytest.approx(50.0)
    np.testing.assert_allclose(result.mot_precision, 100 * 4 / 6)


def test_hypothesis_moving_to_a_new_object_is_not_a_switch():
    # frame 1: GT 0 with hypothesis 5; frame 2: only a new GT 1, again hypothesis 5 (object-side switches only)
    gt = Video(SEQ, [Frame("a", people=[make_person(0, 100, 100, None)]),
                     Frame("b", people=[make_person(1, 600, 100, None)]),
                     Frame("c", people=[make_person(1, 600, 100, None)])])
    pred = Video(SEQ, [Frame("a", people=[make_person(5, 100, 100)]),
                       Frame("b", people=[make_person(5, 600, 100)]),
                       Frame("c", people=[make_person(5, 600, 100)])])
    result = evaluate(gt, pred)
    assert result.num_switches.sum() == 0 and result.total_mota == 100.0


def test_object_switching_hypothesis_is_a_switch():
    gt = gt_clip()
    pred = two_person_clip()
    pred.frames[1].people[0].track_id = 5  # A's hypothesis changes from 0 to 5 in frame 2
    result = evaluate(gt, pred)
    assert (result.num_switches == 1).all()
    assert result.total_mota == pytest.approx(75.0)


def test_prediction_losing_its_best_gt_is_not_retried():
    gt_a = make_person(0, 100, 100, None)
    gt_b = make_person(1, 100, 140, None)  # 40 px below A: joints of A and B are more than 15 px apart
    exact_a = make_person(5, 100, 100)
    mixed = copy.deepcopy(exact_a)       # 10 joints on A, 5 joints on B: best GT is A, which exact_a takes
    mixed.track_id = 6
    mixed.scores = np.full(17, 0.3)     # ranked after exact_a: no tie-order effect on AP
    for joint in range(10, 15):
        mixed.keypoints[JOINT_TO_SLOT17[joint], :2] = gt_b.keypoints[JOINT_TO_SLOT17[joint], :2]
    gt_joints = np.stack([gt_a.joints, gt_b.joints])
    pred_joints = np.stack([exact_a.joints, mixed.joints])
    assignment = pckh_assignment(pred_joints, gt_joints, head_size(np.stack([gt_a.bbox_head, gt_b.bbox_head])))
    assert assignment.pck[1].tolist() == pytest.approx([10 / 15, 5 / 15])
    assert assignment.gt_to_pred.tolist() == [0, -1]   # B stays unassigned although `mixed` hits 5 of its joints
    assert assignment.pred_to_gt.tolist() == [0, -1]
    assert not assignment.correct_joints[1].any()      # all of `mixed` is false positive for AP

    gt = Video(SEQ, [Frame(str(t), people=copy.deepcopy([gt_a, gt_b])) for t in range(3)])
    pred = Video(SEQ, [Frame(str(t), people=copy.deepcopy([exact_a, mixed])) for t in range(3)])
    result = evaluate(gt, pred)
    np.testing.assert_allclose(result.ap[10:], 50.0)    # B's joints never found, `mixed`'s candidates all FP
    # MOT pairs joint by joint, independently of the person assignment: B's joints 10-14 are tracked by `mixed`
    np.testing.assert_allclose(result.mota[10:], 100.0)
    # joints 0-9: `mixed` is a second hypothesis on A and B has none: per frame 1 miss + 1 FP of 2 objects
    np.testing.assert_allclose(result.mota[:10], 0.0)


def test_ties_go_to_the_first_index():
    gt = np.stack([make_person(0, 100, 100).joints])
    twins = np.stack([make_person(5, 100, 100).joints, make_person(6, 100, 100).joints])
    assignment = pckh_assignment(twins, gt, [30.0])
    assert assignment.pred_to_gt.tolist() == [0, -1]


def test_unmatched_prediction_and_empty_frames():
    far = np.stack([make_person(5, 900, 900).joints])
    assignment = pckh_assignment(far, np.stack([make_person(0, 0, 0).joints]), [30.0])
    assert assignment.pred_to_gt.tolist() == [-1] and assignment.gt_to_pred.tolist() == [-1]
    empty = pckh_assignment(np.zeros((0, K, 3)), np.stack([make_person(0, 0, 0).joints]), [30.0])
    assert empty.distance.shape == (0, 1, K) and empty.gt_to_pred.tolist() == [-1]


def test_ignore_polygon_boundary_kept_interior_removed():
    square = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], dtype=float)
    points = np.array([[50, 50], [100, 50], [0, 0], [50, 100], [100.01, 50], [99.99, 99.99]])
    assert strictly_inside_polygon(points, square).tolist() == [True, False, False, False, False, True]
    triangle = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
    assert strictly_inside_polygon([[5, 5], [4, 4], [6, 5]], triangle).tolist() == [False, True, False]
    assert not strictly_inside_polygon([[1, 1]], square[:2]).any()   # degenerate polygon: contains nothing


def test_ignore_regions_in_evaluate():
    gt, pred = gt_clip(), two_person_clip()
    # person A: joint k at (100 + 20 k, 100 + 7 k)
    # A box whose right edge passes exactly through joint 2 of A (x = 140, y = 114) and covers joints 0-1.
    region = np.array([[90, 90], [140, 90], [140, 200], [90, 200]], dtype=float)
    far_region = np.array([[1400, 0], [1900, 0], [1900, 400], [1400, 400]], dtype=float)
    for frame in gt.frames:
        frame.ignore_regions = [region, far_region]
    for frame in pred.frames:  # an FP inside an ignore region, and a wrong joint 0 inside the other one
        frame.people.append(make_person(8, 1500, 100, score=0.9))
        shift_joint(frame.people[0], 0, 20.0)  # (120, 100): 20 px off, but inside the region
    result = evaluate(gt, pred)
    assert result.total_map == 100.0 and result.total_mota == 100.0
    assert result.num_annotated[0] == 3 and result.num_annotated[1] == 3  # A's joints 0, 1 ignored
    assert result.num_annotated[2] == 6                                 # on the boundary: kept

    # A person entirely inside an ignore region disappears (GT and prediction): no miss, no FP.
    gt, pred = gt_clip(), two_person_clip()
    for frame in gt.frames:
        frame.ignore_regions = [np.array([[900, 400], [1400, 400], [1400, 700], [900, 700]], dtype=float)]
    for frame in pred.frames:
        frame.people.pop(1)
    result = evaluate(gt, pred)
    assert result.total_mota == 100.0 and (result.num_annotated == 3).all()


def test_unlabelled_frames_leave_with_their_prediction_frame():
    gt = gt_clip(4)
    gt.frames[1].people = []
    pred = two_person_clip(4)
    pred.frames[1].people.append(make_person(9, 500, 900, score=0.99))  # would be a false positive
    result = evaluate(gt, pred)
    assert result.total_map == 100.0 and result.total_mota == 100.0
    assert result.num_frames == 3 and result.num_mot_frames == 2


def test_predicted_joint_the_gt_lacks_is_a_false_positive():
    gt, pred = gt_clip(), two_person_clip()
    drop_joint(gt.frames[0].people[0], 6)
    pred.frames[0].people[0].scores[JOINT_TO_SLOT17[6]] = 0.9
    result = evaluate(gt, pred)
    assert result.ap[6] == pytest.approx(100 * 5 / 6)   # the FP ranks first; precision 5/6 at full recall
    assert result.mota[6] == pytest.approx(100 * (1 - 1 / 3))
    assert result.num_annotated[6] == 5


def test_never_annotated_joint_is_nan_and_left_out_of_the_mean():
    gt, pred = gt_clip(), two_person_clip()
    for frame in gt.frames:
        for person in frame.people:
            drop_joint(person, 13)
    result = evaluate(gt, pred)
    assert math.isnan(result.ap[13]) and math.isnan(result.mota[13]) and math.isnan(result.mot_recall[13])
    assert result.total_map == 100.0
    assert result.total_mota == pytest.approx(100.0)        # mean over the 14 other joints
    assert math.isnan(result.group_values("ap")["Head"])    # groups are plain means, as poseval prints
    json.dumps(result.to_dict(), allow_nan=False)           # NaN -> None


def test_never_predicted_joint_scores_zero_and_stays_in_the_mean():
    pred = two_person_clip()
    for frame in pred.frames:
        for person in frame.people:
            drop_joint(person, 3)
    result = evaluate(gt_clip(), pred)
    assert result.ap[3] == 0.0
    assert result.total_map == pytest.approx(100 * 14 / 15)


def test_missing_scores_fall_back_with_a_warning():
    with pytest.warns(UserWarning, match="fallback score"):
        result = evaluate(gt_clip(), gt_clip())
    assert result.total_map == 100.0
    assert MISSING_SCORE == -9999


def test_strict_mode_differs_from_poseval_compat():
    pred = two_person_clip()
    _no_prediction_in_frame_2(pred)
    strict = evaluate(gt_clip(), pred, poseval_compat=False)
    assert strict.total_mota == pytest.approx(100 * (1 - 2 / 6))  # 3 frames, 6 objects, 2 misses, no FP
    assert (strict.num_false_positives == 0).all()

    pred = two_person_clip()
    for frame in pred.frames[2:]:  # swap only in the last frame: invisible to poseval
        frame.people[0].track_id, frame.people[1].track_id = 1, 0
    assert evaluate(gt_clip(), pred).total_mota == 100.0
    assert evaluate(gt_clip(), pred, poseval_compat=False).total_mota == pytest.approx(100 * (1 - 2 / 6))


def test_single_labelled_frame_adds_nothing_to_mot():
    with pytest.warns(UserWarning, match="single labelled frame"):
        result = evaluate(gt_clip(1), two_person_clip(1))
    assert result.total_map == 100.0 and math.isnan(result.total_mota)
    assert evaluate(gt_clip(1), two_person_clip(1), poseval_compat=False).total_mota == 100.0


def test_per_sequence_results_and_reporting():
    gt = [gt_clip(name="000001_mpii_test"), gt_clip(name="000002_mpii_test")]
    pred = [two_person_clip(name="000001_mpii_test"), two_person_clip(name="000002_mpii_test")]
    _swap_from_frame_2(pred[1])
    result = evaluate(gt, pred, per_sequence=True)
    assert set(result.per_sequence) == {"000001_mpii_test", "000002_mpii_test"}
    assert result.per_sequence["000001_mpii_test"].total_mota == 100.0
    assert result.per_sequence["000002_mpii_test"].total_mota == pytest.approx(50.0)
    assert result.total_mota == pytest.approx(75.0)  # counts are summed over sequences before the ratio
    np.testing.assert_array_equal(result.num_switches, sum(r.num_switches for r in result.per_sequence.values()))

    groups = result.group_values("mota")
    assert list(groups) == ["Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"]
    table = result.table()
    assert "Head" in table and "MOTP" in table and "75.0" in table
    summary = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert summary["total"]["MOTA"] == pytest.approx(75.0)
    assert summary["per_sequence"]["000002_mpii_test"]["counts"]["num_switches"] == 2 * K
    with pytest.raises(InputError, match="unknown metric"):
        result.group_values("mAP")


# ------------------------------------------------------------------------------------------------
# Cross-check of the MOT counts against py-motmetrics
# ------------------------------------------------------------------------------------------------
def _people_arrays(people):
    joints = np.stack([p.joints for p in people]) if people else np.zeros((0, K, 3))
    ids = np.array([p.track_id for p in people], dtype=np.int64)
    heads = head_size(np.stack([p.bbox_head for p in people])) if people and people[0].bbox_head is not None else None
    return joints, ids, heads


def _motmetrics_counts(gt_videos, pred_videos, poseval_compat):
    mm = pytest.importorskip("motmetrics")
    names = ["num_matches", "num_switches", "num_misses", "num_false_positives", "num_objects"]
    totals = {name: np.zeros(K, dtype=np.int64) for name in names}
    distance = np.zeros(K)
    for gt, pred in zip(gt_videos, pred_videos):
        accumulators = [mm.MOTAccumulator(auto_id=True) for _ in range(K)]
        labelled = [t for t, frame in enumerate(gt.frames) if frame.people]
        if poseval_compat:
            labelled = labelled[:-1]
        for t in labelled:
            gt_joints, gt_ids, heads = _people_arrays(gt.frames[t].people)
            pred_joints, pred_ids, _ = _people_arrays(pred.frames[t].people)
            if poseval_compat and (len(gt_ids) == 0 or len(pred_ids) == 0):
                for acc in accumulators:  # the phantom object / hypothesis
                    acc.update([0], [0], [[np.nan]])
                continue
            assignment = pckh_assignment(pred_joints, gt_joints, heads)
            for k, acc in enumerate(accumulators):
                rows = np.flatnonzero(gt_joints[:, k, 2] > 0)
                cols = np.flatnonzero(pred_joints[:, k, 2] > 0)
                dist = np.where(assignment.match[..., k], assignment.distance[..., k], np.nan).T  # (G, P)
                acc.update(gt_ids[rows].tolist(), pred_ids[cols].tolist(), dist[np.ix_(rows, cols)])
        for k, acc in enumerate(accumulators):
            # Count only MATCH / SWITCH / MISS / FP: motmetrics >= 1.2 also logs RAW, TRANSFER, ASCEND, MIGRATE.
            events = acc.mot_events
            counts = events.Type.value_counts()
            for name, kind in (("num_matches", "MATCH"), ("num_switches", "SWITCH"), ("num_misses", "MISS"),
                               ("num_false_positives", "FP")):
                totals[name][k] += int(counts.get(kind, 0))
            totals["num_objects"][k] += int(sum(counts.get(kind, 0) for kind in ("MATCH", "SWITCH", "MISS")))
            distance[k] += events[events.Type.isin(["MATCH", "SWITCH"])].D.sum()
    return totals, distance


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("poseval_compat", [True, False])
def test_mot_counts_match_motmetrics(seed, poseval_compat):
    rng = np.random.default_rng(100 + seed)
    gt = [random_gt_video(rng, name=f"00000{i}_mpii_test", num_frames=10, max_people=5, with_ignore=False,
                          close=bool(i % 2)) for i in range(2)]
    pred = [perturbed_prediction(v, rng) for v in gt]
    result = evaluate(gt, pred, poseval_compat=poseval_compat)
    expected, distance = _motmetrics_counts(gt, pred, poseval_compat)
    np.testing.assert_array_equal(result.num_matches, expected["num_matches"])
    np.testing.assert_array_equal(result.num_switches, expected["num_switches"])
    np.testing.assert_array_equal(result.num_misses, expected["num_misses"])
    np.testing.assert_array_equal(result.num_false_positives, expected["num_false_positives"])
    np.testing.assert_array_equal(result.num_gt, expected["num_objects"])
    paired = expected["num_matches"] + expected["num_switches"]
    np.testing.assert_allclose(result.motp, np.where(paired > 0, 100 * (1 - distance / np.maximum(paired, 1)), 0))
    assert result.num_switches.sum() > 0 and result.num_misses.sum() > 0  # the clips do exercise the accumulator


# ------------------------------------------------------------------------------------------------
# Error paths
# ------------------------------------------------------------------------------------------------
def test_missing_prediction_video_is_an_error():
    with pytest.raises(InputError, match="000002_mpii_test"):
        evaluate([gt_clip(), gt_clip(name="000002_mpii_test")], [two_person_clip()])


def test_extra_prediction_video_is_ignored_with_a_warning():
    with pytest.warns(UserWarning, match="000009_mpii_test"):
        result = evaluate(gt_clip(), [two_person_clip(), two_person_clip(name="000009_mpii_test")])
    assert result.total_mota == 100.0


def test_frame_count_mismatch_is_an_error():
    with pytest.raises(InputError, match=r"000001_mpii_test.*2 frames.*3"):
        evaluate(gt_clip(3), two_person_clip(2))


def test_duplicate_predicted_track_ids_are_an_error():
    pred = two_person_clip()
    pred.frames[2].people[1].track_id = 0
    with pytest.raises(InputError, match=r"000001_mpii_test.*frame 2.*\[0\]"):
        evaluate(gt_clip(), pred)


def test_gt_person_without_head_box():
    gt = gt_clip()
    gt.frames[1].people[0].bbox_head = None
    with pytest.raises(InputError, match=r"frame 1.*head box"):
        evaluate(gt, two_person_clip())
    pred = two_person_clip()
    pred.frames[1].people = []  # no prediction in that frame: no distance needed, no error
    assert evaluate(gt, pred).total_map == pytest.approx(100 * 4 / 6)


def test_track_ids_of_10000_need_strict_mode():
    pred = two_person_clip()
    pred.frames[0].people[0].track_id = 10000
    with pytest.raises(InputError, match="10000"):
        evaluate(gt_clip(), pred)
    assert evaluate(gt_clip(), pred, poseval_compat=False).total_map == 100.0


def test_bad_argument_types():
    with pytest.raises(InputError, match="evaluate_paths"):
        evaluate("gt_folder/", two_person_clip())
    with pytest.raises(InputError, match="share the name"):
        evaluate([gt_clip(), gt_clip()], two_person_clip())


# ------------------------------------------------------------------------------------------------
# Files and real geometry
# ------------------------------------------------------------------------------------------------
def test_evaluate_paths_round_trip(tmp_path):
    formats = pytest.importorskip("mpat_nb.data.formats")
    rng = np.random.default_rng(7)
    gt = [random_gt_video(rng, name=f"00000{i}_mpii_test") for i in range(2)]
    pred = [perturbed_prediction(v, rng) for v in gt]
    formats.save_posetrack_folder(gt, tmp_path / "gt")
    formats.save_posetrack_folder(pred, tmp_path / "pred")
    from_files = evaluate_paths(tmp_path / "gt", tmp_path / "pred")
    in_memory = evaluate(gt, pred)
    np.testing.assert_allclose(from_files.ap, in_memory.ap)
    np.testing.assert_allclose(from_files.mota, in_memory.mota)
    single = evaluate_paths(tmp_path / "gt" / "000000_mpii_test.json", tmp_path / "pred" / "000000_mpii_test.json")
    assert isinstance(single, PoseTrackResult)


@pytest.mark.skipif(not REAL_DIR.is_dir(), reason="shared real samples not available")
def test_real_derived_clip_against_itself():
    """docs/evaluation.md §6.3: real frames 012834 / 009473 repeated 10 / 8 times, shifted 3 px per frame."""
    formats = pytest.importorskip("mpat_nb.data.formats")
    rng = np.random.default_rng(0)
    gt = []
    for name, count in (("012834_mpii_test", 10), ("009473_mpii_test", 8)):
        first = formats.load_posetrack_any(REAL_DIR / f"{name}.json")[0].frames[0]
        frames = []
        for t in range(count):
            frame = copy.deepcopy(first)
            for person in frame.people:
                person.keypoints[person.keypoints[:, 2] > 0, 0] += 3 * t
                person.bbox_head[0] += 3 * t
            frames.append(frame)
        gt.append(Video(name, frames))
    assert sum(len(region) for region in gt[0].frames[0].ignore_regions) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluate(gt, [as_prediction(v, rng) for v in gt])
    assert result.total_map == 100.0 and result.total_mota == 100.0 and result.total_motp == 100.0
    assert result.to_dict()["total"]["mot_precision"] == 100.0 and result.total_mot_recall == 100.0
