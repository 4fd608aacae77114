"""The online pipeline: SpatialNet (+PGG) -> poses, TemporalNet -> HE per pose and TIE per frame pair -> tracker.

The networks run once per frame: :class:`NetworkObserver` keeps frame t-1's SpatialNet outputs, so the TIE
branch of the pair (t-1, t) reuses them. :func:`run_tracker` then feeds the observations to any tracker and
times the association alone, so the cost of tracking is measured apart from the networks. Observations can
be computed once and re-used by every tracker variant (the evaluation does that).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from mpat_nb.codec import instance_embedding_at, svf_to_pixels
from mpat_nb.codec_temporal import boxes_from_joints
from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.data.augment import NO_AUGMENTATION, to_rgb
from mpat_nb.decode import DecodeConfig, decode_batch, maps_from_output, poses_to_people, prepare_image
from mpat_nb.inference import InferenceOptions, inference_context, prepare_for_inference
from mpat_nb.tracking.config import TrackerConfig
from mpat_nb.tracking.cuts import colour_histogram, histogram_change
from mpat_nb.tracking.observation import Detection, FrameObservation
from mpat_nb.tracking.trackers import Tracker
from mpat_nb.utils import InputError


class NetworkObserver:
    """Runs the networks on one frame at a time and returns its :class:`FrameObservation`.

    spatial: a SpatialNet (eval mode is set here); temporal: a TemporalNet or None (then detections carry no
    HE and observations no TIE fields: only the geometric baselines can use them). decode_config: how poses
    are decoded (``DecodeConfig(embedding="ke+sie", pgg_iterations=1)`` for PGG). min_pose_score: people whose
    mean joint score is lower are dropped before tracking. inference: fast paths (:mod:`mpat_nb.inference`);
    given, the observer runs prepared copies of the models (the ones passed in are left as they are); None: the
    models themselves, plain eager. Either way the networks run under ``torch.inference_mode()``.
    """

    def __init__(self, spatial: torch.nn.Module, temporal: torch.nn.Module | None = None,
                 decode_config: DecodeConfig = DecodeConfig(), *, min_pose_score: float = TrackerConfig.min_pose_score,
                 inference: InferenceOptions | None = None):
        if decode_config.flip_test:
            raise ValueError("the tracker runs SpatialNet once per frame: use a DecodeConfig with flip_test=False")
        if inference is not None:
            spatial = prepare_for_inference(spatial, inference)
            temporal = prepare_for_inference(temporal, inference) if temporal is not None else None
        self.inference = inference
        self.spatial, self.temporal = spatial.eval(), (temporal.eval() if temporal is not None else None)
        self.decode_config, self.min_pose_score = decode_config, min_pose_score
        self.device = next(spatial.parameters()).device
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (call between videos and after a cut you know of)."""
        self._previous = None          # SpatialNet output of frame t-1 (batch of one)
        self._previous_histogram = None  # colour histogram of frame t-1 (shot-cut test)
        self._index = 0

    def observe(self, image: np.ndarray, gt_people: Sequence[Person] | None = None, *,
                file_name: str = "") -> FrameObservation:
        """One frame: image (H, W, 3) uint8 RGB (grayscale / RGBA converted). gt_people: track these ground-truth
        poses instead of the decoded ones (tracking-only evaluation; HE and TIE still come from the networks)."""
        with inference_context(self.inference, self.device):      # the observation holds NumPy arrays only
            return self._observe(image, [gt_people], file_name)[0]

    def observe_sources(self, image: np.ndarray, gt_people: Sequence[Person], *,
                        file_name: str = "") -> tuple[FrameObservation, FrameObservation]:
        """(predicted, ground-truth) observations of one frame from a single pass of the networks.

        The evaluation tracks both pose sources; they share SpatialNet's output and the TIE fields, and HE runs
        once over both sets of boxes. Each observation's ``network_seconds`` is the time of that shared pass.
        """
        with inference_context(self.inference, self.device):
            predicted, ground_truth = self._observe(image, [None, gt_people], file_name)
        return predicted, ground_truth

    def _observe(self, image: np.ndarray, sources: list[Sequence[Person] | None],
                 file_name: str) -> list[FrameObservation]:
        """One observation per source: None = the decoded poses, a list of people = those ground-truth poses."""
        image = np.asarray(image)
        if image.ndim < 2 or image.shape[0] == 0 or image.shape[1] == 0:
            raise InputError(f"frame {self._index} is empty (shape {image.shape}): skip it or check the video reader")
        rgb = to_rgb(image)
        started = _clock(self.device)
        config = self.spatial.config
        tensor = prepare_image(rgb, config.input_size)[None]                             # (1, 3, S, S)
        output = self.spatial(tensor.to(self.device))
        maps = maps_from_output(output)
        svf = maps["svf"][0].float().cpu().numpy()                                 # (2, H, W) output pixels
        per_source = [self._decoded(maps, (rgb.shape[1], rgb.shape[0]), svf) if people is None
                      else self._ground_truth(rgb, people, svf) for people in sources]
        everyone = [d for detections in per_source for d in detections]
        if self.temporal is not None and everyone:                                 # one HE pass for all sources
            boxes = torch.as_tensor(np.stack([d.box for d in everyone]), dtype=torch.float32, device=self.device)
            embeddings = self.temporal.human_embedding(output.features, [boxes], tensor.to(self.device))[0]
            embeddings = embeddings.float().cpu().numpy()
            for detection, embedding in zip(everyone, embeddings):
                detection.embedding = embedding
        tvf_forward = tvf_backward = None
        if self.temporal is not None and self._previous is not None:
            previous = self._previous
            forward, backward = self.temporal.temporal_instance(
                previous.features, previous.heatmaps_final, previous.svf_final,
                output.features, output.heatmaps_final, output.svf_final)
            tvf_forward = svf_to_pixels(forward[0]).float().cpu().numpy()                 # (2, H, W) output px
            tvf_backward = svf_to_pixels(backward[0]).float().cpu().numpy()
        self._previous = output
        histogram = colour_histogram(rgb)
        change = histogram_change(self._previous_histogram, histogram) if self._previous_histogram is not None else 0.0
        self._previous_histogram = histogram
        seconds = _clock(self.device) - started
        observations = [FrameObservation(self._index, detections, tvf_forward, tvf_backward, file_name,
                                         rgb.shape[1], rgb.shape[0], seconds, change) for detections in per_source]
        self._index += 1
        return observations

    def _decoded(self, maps, image_size: tuple[int, int], svf: np.ndarray) -> list[Detection]:
        config = self.spatial.config
        poses = decode_batch(maps, self.decode_config)[0]                         # (P, K, 3) grid x, y, score
        people = poses_to_people(poses, image_size, config.input_size, config.output_size)
        detections = []
        for pose, person in zip(poses, people):
            present = pose[:, 2] > 0
            if not present.any() or pose[present, 2].mean() < self.min_pose_score:
                continue
            detections.append(_detection(pose, person, svf, config.output_size))
        return detections

    def _ground_truth(self, rgb: np.ndarray, gt_people: Sequence[Person], svf: np.ndarray) -> list[Detection]:
        from mpat_nb.data.pairs import augment_frame

        config = self.spatial.config
        people = [p for p in gt_people if p.present.any()]
        _, on_grid = augment_frame(rgb, people, NO_AUGMENTATION, config.input_size, config.output_size)
        kept = {p.track_id: p for p in people}
        detections = []
        for joints, track_id in zip(on_grid.joints.numpy(), on_grid.track_ids.tolist()):
            person = copy.deepcopy(kept[track_id])
            person.scores = person.present.astype(np.float64)
            pose = joints.astype(np.float64)
            pose[:, 2] = (pose[:, 2] > 0).astype(np.float64)                       # v -> score 1 for present
            detection = _detection(pose, person, svf, config.output_size)
            detection.gt_track_id = track_id
            detections.append(detection)
        return detections


def _detection(pose: np.ndarray, person: Person, svf: np.ndarray, output_size: int) -> Detection:
    """A Detection from a pose (K, 3) on the grid: box from its joints, centre = mean SIE of its joints."""
    present = pose[:, 2] > 0
    box = boxes_from_joints(torch.as_tensor(pose[None], dtype=torch.float32), output_size)[0].numpy()
    sie = instance_embedding_at(svf, pose[present, :2])                              # SIE(p) = p + v(p)
    return Detection(joints=pose, centre=sie.mean(axis=0), box=box.astype(np.float64), person=person)


def observe_video(frames: Iterable[np.ndarray], spatial: torch.nn.Module, temporal: torch.nn.Module | None = None,
                  decode_config: DecodeConfig = DecodeConfig(), *, gt_video: Video | None = None,
                  min_pose_score: float = TrackerConfig.min_pose_score, progress: bool = False,
                  inference: InferenceOptions | None = None) -> list[FrameObservation]:
    """Observations of every frame of a video (networks once per frame). gt_video: track its poses instead.
    inference: see :class:`NetworkObserver`."""
    from tqdm.auto import tqdm

    observer = NetworkObserver(spatial, temporal, decode_config, min_pose_score=min_pose_score, inference=inference)
    observations = []
    for t, image in enumerate(tqdm(frames, desc="networks", disable=not progress, leave=False)):
        gt_frame = gt_video.frames[t] if gt_video is not None else None
        observations.append(observer.observe(image, gt_frame.people if gt_frame else None,
                                             file_name=gt_frame.file_name if gt_frame else f"{t:06d}.jpg"))
    return observations


def observe_video_sources(frames: Iterable[np.ndarray], spatial: torch.nn.Module, temporal: torch.nn.Module | None,
                          gt_video: Video, decode_config: DecodeConfig = DecodeConfig(), *,
                          min_pose_score: float = TrackerConfig.min_pose_score) -> dict[str, list[FrameObservation]]:
    """{"predicted": [...], "ground truth": [...]}: both pose sources of a video from one pass per frame."""
    observer = NetworkObserver(spatial, temporal, decode_config, min_pose_score=min_pose_score)
    pairs = [observer.observe_sources(image, frame.people, file_name=frame.file_name)
             for image, frame in zip(frames, gt_video.frames)]
    return {"predicted": [p for p, _ in pairs], "ground truth": [g for _, g in pairs]}


@dataclass
class TrackingRun:
    """A tracker's output on one video: the PoseTrack18 video with track ids and per-frame timings (seconds)."""

    video: Video
    association_seconds: list[float] = field(default_factory=list)
    network_seconds: list[float] = field(default_factory=list)
    track_ids: list[np.ndarray] = field(default_factory=list)


def run_tracker(observations: Sequence[FrameObservation], tracker: Tracker, *, name: str = "video",
                min_joint_score: float | None = None) -> TrackingRun:
    """Feed the observations to ``tracker`` (reset first) and build the PoseTrack18 output.

    min_joint_score: joints below it are left out of the output (default: the tracker config's).
    """
    threshold = tracker.config.min_joint_score if min_joint_score is None else min_joint_score
    tracker.reset()
    run = TrackingRun(Video(name))
    for observation in observations:
        frame, ids, seconds = track_step(tracker, observation, threshold)
        run.association_seconds.append(seconds)
        run.network_seconds.append(observation.network_seconds)
        run.track_ids.append(ids)
        run.video.frames.append(frame)
    return run


def track_step(tracker: Tracker, observation: FrameObservation,
               min_joint_score: float) -> tuple[Frame, np.ndarray, float]:
    """One online step: (the PoseTrack18 frame with track ids, the ids (N,), the association's seconds)."""
    started = time.perf_counter()
    ids = tracker.step(observation)
    seconds = time.perf_counter() - started
    return tracked_frame(observation, ids, min_joint_score), ids, seconds


def tracked_frame(observation: FrameObservation, track_ids: np.ndarray, min_joint_score: float) -> Frame:
    """The PoseTrack18 frame of an observation whose detections got ``track_ids`` (N,): people in image
    pixels with their track ids, joints scoring below ``min_joint_score`` left out (and people left empty)."""
    people = [_output_person(d.person, int(i), min_joint_score) for d, i in zip(observation.detections, track_ids)]
    return Frame(observation.file_name, observation.index, observation.width, observation.height,
                 people=[p for p in people if p.present.any()])


def _output_person(person: Person, track_id: int, min_joint_score: float) -> Person:
    """A copy of the person with its track id, joints scoring below ``min_joint_score`` removed."""
    result = copy.copy(person)
    result.track_id = track_id
    if person.scores is not None and min_joint_score > 0:
        keep = person.scores >= min_joint_score
        result.keypoints = np.where(keep[:, None], person.keypoints, 0.0)
        result.scores = np.where(keep, person.scores, 0.0)
    return result


def _clock(device: torch.device) -> float:
    """Seconds, after the device's queued work is done (so GPU time is counted where it is spent)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
