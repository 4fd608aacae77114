"""CLEAR-MOT bookkeeping for the PoseTrack evaluation (the MOT half of :mod:`mpat_nb.evaluate`).

The PoseTrack MOT metrics run one CLEAR-MOT accumulator per sequence and per joint type. Objects are the
ground-truth (GT) people who have that joint annotated, hypotheses the predicted people who have that joint
predicted, and the cost of a pair is the head-normalised joint distance, or "forbidden" (NaN) when it is
above the PCKh threshold. Per frame (Bernardin & Stiefelhagen 2008, as py-motmetrics implements it):

1. carry-forward: an object whose last paired hypothesis is present again, still free and at an allowed
   cost keeps it (MATCH);
2. the remaining objects x hypotheses get a minimum-cost assignment that first maximises the number of
   allowed pairs; a pair whose object was last paired with another hypothesis is a SWITCH, else a MATCH;
3. unpaired objects are MISSes, unpaired hypotheses false positives (FP).

Only object-side switches are counted. This module owns that logic so that :mod:`mpat_nb.evaluate` can
report the intended MOTP; ``motmetrics`` is only used in the tests, as a cross-check.

Glossary: O objects (GT people with the joint), H hypotheses (predicted people with the joint) in one
frame, G GT people, P predicted people, K = 15 joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class MotCounts:
    """Summed CLEAR-MOT events per joint.

    All arrays are (K,). ``num_objects`` = matches + switches + misses (N in MOTA), and
    ``distance_sum`` is the summed normalised distance over MATCH and SWITCH pairs.
    """

    num_objects: np.ndarray
    num_matches: np.ndarray
    num_switches: np.ndarray
    num_misses: np.ndarray
    num_false_positives: np.ndarray
    distance_sum: np.ndarray

    @classmethod
    def zeros(cls, num_joints: int) -> "MotCounts":
        ints = [np.zeros(num_joints, dtype=np.int64) for _ in range(5)]
        return cls(*ints, distance_sum=np.zeros(num_joints, dtype=np.float64))

    def __add__(self, other: "MotCounts") -> "MotCounts":
        return MotCounts(
            self.num_objects + other.num_objects,
            self.num_matches + other.num_matches,
            self.num_switches + other.num_switches,
            self.num_misses + other.num_misses,
            self.num_false_positives + other.num_false_positives,
            self.distance_sum + other.distance_sum,
        )


class ClearMotAccumulator:
    """CLEAR-MOT event counter for one sequence and one joint type (py-motmetrics' algorithm).

    Call :meth:`update` once per frame, in temporal order. Counters: ``num_matches``, ``num_switches``,
    ``num_misses``, ``num_false_positives``, ``num_objects`` and ``distance_sum`` (over MATCH + SWITCH).
    """

    def __init__(self) -> None:
        # object id -> hypothesis id of its most recent pairing (any earlier frame, no time limit)
        self.last_hypothesis: dict[int, int] = {}
        self.num_matches = 0
        self.num_switches = 0
        self.num_misses = 0
        self.num_false_positives = 0
        self.num_objects = 0
        self.distance_sum = 0.0

    def add_unmatched(self, num_objects: int, num_hypotheses: int) -> None:
        """A frame in which no pair is allowed: every object is a MISS, every hypothesis an FP.

        Equivalent to :meth:`update` with an all-NaN cost matrix (the pairing memory is untouched).
        """
        self.num_objects += int(num_objects)
        self.num_misses += int(num_objects)
        self.num_false_positives += int(num_hypotheses)

    def update(self, object_ids, hypothesis_ids, cost) -> None:
        """Add one frame.

        object_ids: (O,) ints; hypothesis_ids: (H,) ints, unique within the frame;
        cost: (O, H) floats, NaN (or inf) = this pair is forbidden.
        """
        object_ids = np.asarray(object_ids, dtype=np.int64).reshape(-1)
        hypothesis_ids = np.asarray(hypothesis_ids, dtype=np.int64).reshape(-1)
        cost = np.asarray(cost, dtype=np.float64).reshape(len(object_ids), len(hypothesis_ids)).copy()
        object_paired = np.zeros(len(object_ids), dtype=bool)
        hypothesis_paired = np.zeros(len(hypothesis_ids), dtype=bool)

        if object_ids.size and hypothesis_ids.size:
            # Step 1, carry-forward: objects in row order, each re-takes its previous hypothesis if it is
            # present, not yet taken in this frame, and the pair is allowed.
            for row, object_id in enumerate(object_ids.tolist()):
                previous = self.last_hypothesis.get(object_id)
                if previous is None:
                    continue
                free = np.flatnonzero(~hypothesis_paired & (hypothesis_ids == previous))
                if free.size == 0:
                    continue
                col = int(free[0])
                if np.isfinite(cost[row, col]):
                    object_paired[row] = hypothesis_paired[col] = True
                    self.num_matches += 1
                    self.distance_sum += float(cost[row, col])

            # Step 2, the rest: minimum cost among the assignments with the most allowed pairs.
            cost[object_paired, :] = np.nan
            cost[:, hypothesis_paired] = np.nan
            for row, col in zip(*max_pairs_min_cost_assignment(cost)):
                object_id, hypothesis_id = int(object_ids[row]), int(hypothesis_ids[col])
                previous = self.last_hypothesis.get(object_id)
                if previous is not None and previous != hypothesis_id:
                    self.num_switches += 1  # the object changed hypothesis: identity switch
                else:
                    self.num_matches += 1
                self.distance_sum += float(cost[row, col])
                self.last_hypothesis[object_id] = hypothesis_id
                object_paired[row] = hypothesis_paired[col] = True

        # Step 3: leftovers.
        self.num_objects += len(object_ids)
        self.num_misses += int((~object_paired).sum())
        self.num_false_positives += int((~hypothesis_paired).sum())


def max_pairs_min_cost_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of allowed entries: the most pairs possible, and among those the smallest total cost.

    cost: (O, H) with NaN/inf = forbidden -> (rows, cols), each (M,), rows ascending.

    Forbidden entries get the constant L = 2 r c + 1 (r = min(O, H), c = 1 + the largest |allowed cost|):
    one forbidden pair then costs more than any r allowed ones, so the solver never trades an allowed
    pair for a cheaper total (the same constant as py-motmetrics, so ties resolve identically).
    """
    cost = np.asarray(cost, dtype=np.float64)
    allowed = np.isfinite(cost)
    if not allowed.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not allowed.all():
        largest = np.abs(cost[allowed]).max() + 1.0
        cost = np.where(allowed, cost, 2 * min(cost.shape) * largest + 1)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)


def accumulate_sequence(frames, num_joints: int, *, phantom_rule: bool) -> MotCounts:
    """Run the K accumulators of one sequence over its MOT frames.

    frames: iterable of objects with ``gt_ids (G,)``, ``pred_ids (P,)``, ``has_gt (G, K)``,
    ``has_pred (P, K)`` and ``cost (G, P, K)`` (normalised distance, NaN = forbidden), in temporal order.
    phantom_rule: poseval's special case - a frame with no predicted person or no GT person counts as one
    phantom object and one phantom hypothesis that may not pair: exactly 1 MISS + 1 FP per joint.
    """
    accumulators = [ClearMotAccumulator() for _ in range(num_joints)]
    for frame in frames:
        num_gt, num_pred = len(frame.gt_ids), len(frame.pred_ids)
        if phantom_rule and (num_gt == 0 or num_pred == 0):
            for accumulator in accumulators:
                accumulator.add_unmatched(1, 1)
            continue
        objects_per_joint = frame.has_gt.sum(axis=0)        # (K,)
        hypotheses_per_joint = frame.has_pred.sum(axis=0)   # (K,)
        # A joint without a single allowed pair needs no assignment: all MISS / FP (vectorised test).
        any_allowed = np.isfinite(frame.cost).any(axis=(0, 1)) if frame.cost.size else np.zeros(num_joints, bool)
        for joint in range(num_joints):
            if not any_allowed[joint]:
                accumulators[joint].add_unmatched(objects_per_joint[joint], hypotheses_per_joint[joint])
                continue
            rows = np.flatnonzero(frame.has_gt[:, joint])
            cols = np.flatnonzero(frame.has_pred[:, joint])
            accumulators[joint].update(frame.gt_ids[rows], frame.pred_ids[cols],
                                       frame.cost[np.ix_(rows, cols, [joint])][..., 0])
    return MotCounts(
        num_objects=np.array([a.num_objects for a in accumulators], dtype=np.int64),
        num_matches=np.array([a.num_matches for a in accumulators], dtype=np.int64),
        num_switches=np.array([a.num_switches for a in accumulators], dtype=np.int64),
        num_misses=np.array([a.num_misses for a in accumulators], dtype=np.int64),
        num_false_positives=np.array([a.num_false_positives for a in accumulators], dtype=np.int64),
        distance_sum=np.array([a.distance_sum for a in accumulators], dtype=np.float64),
    )
