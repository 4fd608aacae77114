"""Online trackers: ours (HE + TIE, docs/method.md 3.3) and the two peer baselines, behind one interface.

Every tracker is fed one :class:`~mpat_nb.tracking.observation.FrameObservation` per frame, in order, and
returns the track id of each detection: ``ids = tracker.step(observation)`` (``(N,)`` int64). ``reset()``
starts a new video. ``last_costs`` keeps the matrices of the last step (rows: the tracks it compared, whose
ids are ``last_costs["track_ids"]``; columns: the detections) for the notebooks.

Track birth and end (all trackers): a detection left unmatched starts a new track with a fresh id; a track
left unmatched ends - or, with ``TrackerConfig.memory``, waits up to ``memory_frames`` frames to be re-found
on HE and predicted position (beyond the paper, whose own failure case is identity drift after a full
occlusion because it only looks one frame back).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from mpat_nb.tracking.config import TrackerConfig, variant_config
from mpat_nb.tracking.costs import box_iou, he_distances, oks, pose_distances, tie_distances
from mpat_nb.tracking.observation import Detection, FrameObservation, stack_detections

#: Cost given to forbidden pairs before the Hungarian solver (finite: scipy rejects rows of inf only).
_FORBIDDEN = 1e6
#: Cap of the predicted-position term of the memory cost, in person scales [I].
_POSITION_CAP = 4.0


@dataclass
class Track:
    """A track's state: its id, its last detection, when it was seen and its centre velocity (px/frame)."""

    track_id: int
    detection: Detection
    last_seen: int
    velocity: np.ndarray

    def predicted_centre(self, frame: int) -> np.ndarray:
        return self.detection.centre + self.velocity * (frame - self.last_seen)


class Tracker:
    """Shared bookkeeping: tracks of the previous frame, births, ends. Subclasses implement ``_costs``."""

    name = "tracker"

    def __init__(self, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget every track (call between videos)."""
        self.active: list[Track] = []           # seen in the previous frame
        self.lost: list[Track] = []             # seen earlier, kept only with memory
        self.next_id = 0
        self.last_costs: dict[str, np.ndarray] = {}

    def step(self, observation: FrameObservation) -> np.ndarray:
        """Track ids (N,) of the observation's detections, in their order."""
        detections = observation.detections
        ids = np.full(len(detections), -1, dtype=np.int64)
        self.last_costs = {"track_ids": np.array([t.track_id for t in self.active], dtype=np.int64)}
        matched_tracks: set[int] = set()
        if self.active and detections:
            for row, col in self._match(self.active, detections, observation):
                ids[col] = self.active[row].track_id
                self._update(self.active[row], detections[col], observation.index)
                matched_tracks.add(row)
        unmatched = [j for j in range(len(detections)) if ids[j] < 0]
        ended = [t for r, t in enumerate(self.active) if r not in matched_tracks]
        recovered = self._recover(unmatched, detections, observation) if unmatched else {}
        for col, track in recovered.items():
            ids[col] = track.track_id
            self._update(track, detections[col], observation.index)
        for col in range(len(detections)):                                   # births
            if ids[col] < 0:
                ids[col] = self.next_id
                self.next_id += 1
        self._remember(ended, observation.index)
        by_id = {t.track_id: t for t in [*self.active, *recovered.values()]}
        self.active = [by_id.get(int(i)) or Track(int(i), d, observation.index, np.zeros(2))
                       for i, d in zip(ids, detections)]
        return ids

    # -- what subclasses change ----------------------------------------------------------------------
    def _match(self, tracks: list[Track], detections: list[Detection],
               observation: FrameObservation) -> list[tuple[int, int]]:
        """(track index, detection index) pairs: by default the Hungarian assignment on :meth:`_costs`."""
        return _hungarian(*self._costs(tracks, detections, observation))

    def _costs(self, tracks: list[Track], detections: list[Detection],
               observation: FrameObservation) -> tuple[np.ndarray, float]:
        """(cost (T, N), accept-below limit): lower is better."""
        raise NotImplementedError

    def _recover(self, unmatched: list[int], detections: list[Detection],
                 observation: FrameObservation) -> dict[int, Track]:
        """Lost tracks re-found among the unmatched detections: {detection index: track}."""
        return {}

    def _remember(self, ended: list[Track], frame: int) -> None:
        """Tracks not matched this frame end (no memory)."""

    @staticmethod
    def _update(track: Track, detection: Detection, frame: int) -> None:
        gap = max(frame - track.last_seen, 1)
        track.velocity = (detection.centre - track.detection.centre) / gap
        track.detection, track.last_seen = detection, frame


class EmbeddingTracker(Tracker):
    """Ours: Hungarian assignment on the combined HE + TIE cost of :mod:`mpat_nb.tracking.config`.

    Shot cuts (:meth:`at_cut`) gate what geometry says: TIE leaves the cost of the frame that starts a new shot,
    and the memory's predicted-position term leaves the cost of every lost track last seen before a cut (a
    position in the old shot says nothing about the new one): such a track is re-found on HE alone.
    """

    name = "HE+TIE"

    def reset(self) -> None:
        super().reset()
        self.cut_frames: list[int] = []         # frames that started a new shot

    def step(self, observation: FrameObservation) -> np.ndarray:
        if self.at_cut(observation):
            self.cut_frames.append(observation.index)
        return super().step(observation)

    def _costs(self, tracks, detections, observation):
        config = self.config
        previous, current = stack_detections([t.detection for t in tracks]), stack_detections(detections)
        terms, weights = [], []
        if config.use_he and config.weight_he > 0:
            if previous["embeddings"] is None or current["embeddings"] is None:
                raise ValueError("the HE term needs Human Embeddings on every detection: run TemporalNet "
                                 "(mpat_nb.tracking.pipeline.observe_video with a temporal model)")
            d_he = he_distances(previous["embeddings"], current["embeddings"])
            self.last_costs["he"] = d_he
            terms.append(config.weight_he * d_he / config.tau_he)
            weights.append(config.weight_he)
        cut = self.at_cut(observation)
        self.last_costs["cut"] = cut
        if config.use_tie and config.weight_tie > 0 and observation.tvf_forward is not None:
            d_tie = tie_distances(previous["joints"], previous["centres"], previous["scales"], current["joints"],
                                  current["centres"], current["scales"], observation.tvf_forward,
                                  observation.tvf_backward)
            self.last_costs["tie"] = d_tie                 # kept for inspection, but not used across a cut
            if not cut:
                terms.append(config.weight_tie * d_tie / config.tau_tie)
                weights.append(config.weight_tie)
        if config.weight_pose > 0 and terms and not cut:   # geometry beside an embedding term, within a shot
            d_pose = pose_distances(previous, current)
            self.last_costs["pose"] = d_pose
            terms.append(config.weight_pose * d_pose / config.tau_pose)
            weights.append(config.weight_pose)
        if not terms and cut:                              # TIE only, across a cut: no evidence, nobody matches
            cost = np.full((len(tracks), len(detections)), np.inf)
            self.last_costs["combined"] = cost
            return cost, config.max_cost
        if not terms:
            raise ValueError("TIE-only tracking needs the temporal vector fields of the frame pair "
                             "(observation.tvf_forward / tvf_backward)")
        cost = sum(terms) / sum(weights)                   # docs/method.md 3.3, Eq. (3): the weighted mean of d / tau
        self.last_costs["combined"] = cost
        return cost, config.max_cost

    def at_cut(self, observation: FrameObservation) -> bool:
        """Whether frame t starts a new shot (its frame_change exceeds ``config.cut_threshold``)."""
        threshold = self.config.cut_threshold
        return threshold is not None and observation.frame_change > threshold

    def _remember(self, ended, frame):
        if not self.config.memory:
            return
        self.lost = [t for t in [*self.lost, *ended] if frame - t.last_seen <= self.config.memory_frames]

    def _recover(self, unmatched, detections, observation):
        config = self.config
        candidates = [t for t in self.lost if observation.index - t.last_seen <= config.memory_frames]
        if not (config.memory and candidates):
            return {}
        chosen = [detections[j] for j in unmatched]
        current = stack_detections(chosen)
        predicted = np.stack([t.predicted_centre(observation.index) for t in candidates])          # (L, 2)
        scales = np.array([t.detection.scale for t in candidates])
        offsets = np.linalg.norm(predicted[:, None] - current["centres"][None], axis=-1)            # (L, U)
        position = np.minimum(offsets / (0.5 * (scales[:, None] + current["scales"][None])), _POSITION_CAP)
        across_cut = np.array([any(t.last_seen < cut <= observation.index for cut in self.cut_frames)
                               for t in candidates])                                                # (L,)
        position = np.where(across_cut[:, None], 0.0, position)                # no position across a shot cut
        self.last_costs["memory_across_cut"] = across_cut
        cost = config.memory_position_weight * position
        if config.use_he and current["embeddings"] is not None:
            previous = np.stack([t.detection.embedding for t in candidates])
            cost = cost + he_distances(previous, current["embeddings"]) / config.tau_he
        self.last_costs["memory"] = cost
        recovered = {}
        for row, col in _hungarian(cost, config.memory_max_cost):
            recovered[unmatched[col]] = candidates[row]
        self.lost = [t for t in self.lost if all(t is not r for r in recovered.values())]
        return recovered


class GreedyOKSTracker(Tracker):
    """Peer baseline (simple-baselines style): greedy matching on OKS to the previous frame's poses."""

    name = "greedy OKS"

    def _match(self, tracks, detections, observation):
        previous, current = stack_detections([t.detection for t in tracks]), stack_detections(detections)
        similarity = oks(previous["joints"], current["joints"], previous["scales"] ** 2, current["scales"] ** 2)
        self.last_costs["oks"] = similarity
        pairs, used_rows, used_cols = [], set(), set()
        for flat in np.argsort(-similarity, axis=None, kind="stable"):         # best pairs first
            row, col = divmod(int(flat), similarity.shape[1])
            if similarity[row, col] <= self.config.oks_threshold:
                break
            if row not in used_rows and col not in used_cols:
                pairs.append((row, col))
                used_rows.add(row)
                used_cols.add(col)
        return pairs


class HungarianIoUTracker(Tracker):
    """Peer baseline (Detect-and-Track style): Hungarian matching on box IoU with the previous frame."""

    name = "Hungarian IoU"

    def _costs(self, tracks, detections, observation):
        iou = box_iou(np.stack([t.detection.box for t in tracks]), np.stack([d.box for d in detections]))
        self.last_costs["iou"] = iou
        return 1.0 - iou, 1.0 - self.config.iou_threshold


def make_tracker(variant: str, config: TrackerConfig = TrackerConfig()) -> Tracker:
    """A tracker of :data:`mpat_nb.tracking.config.VARIANTS` (``"HE+TIE"``, ``"greedy OKS"``, ...)."""
    if variant == "greedy OKS":
        return GreedyOKSTracker(config)
    if variant == "Hungarian IoU":
        return HungarianIoUTracker(config)
    tracker = EmbeddingTracker(variant_config(variant, config))
    tracker.name = variant
    return tracker


def _hungarian(cost: np.ndarray, limit: float) -> list[tuple[int, int]]:
    """Optimal assignment (scipy's linear_sum_assignment) keeping only pairs with cost < limit."""
    if cost.size == 0:
        return []
    finite = np.where(np.isfinite(cost), cost, _FORBIDDEN)
    rows, cols = linear_sum_assignment(finite)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if finite[r, c] < limit]
