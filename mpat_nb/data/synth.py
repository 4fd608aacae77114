"""Synthetic multi-person videos with exact ground truth: the training and benchmark data of mpat_nb.

No PoseTrack download is possible here, so this generator stands in for it. It renders articulated
people (:mod:`mpat_nb.data.body`) in cluttered scenes (:mod:`mpat_nb.data.render`) and records
PoseTrack18-style ground truth, plus what only a renderer knows: hidden joints, an instance mask and
the person centre. The paper's hard cases are knobs of :class:`SynthConfig` and named presets:

=================  ===============================================================================
``easy``           a few people, static camera, light noise
``crowd``          many people close together (grouping: KE alone merges, SIE alone splits)
``interaction``    pairs touching, facing or crossing paths (overlapping limbs)
``camera_motion``  pan, zoom and hand-held shake (breaks TIE-style geometry, Fig. 1b)
``fast_motion``    low frame rate and running / jumping: large displacements between frames
``shot_change``    a cut: new background, camera and layout; identities keep ids and clothes
``occlusion``      foreground pillars / crates / signs; a person vanishes behind one and comes back
``motion_blur``    directional blur along each person's (and the camera's) motion
``mixed``          default benchmark: each hard case switched on per clip at random (seeded)
=================  ===============================================================================

Quick start::

    clip = generate_clip("mixed", seed=0, num_frames=30, size=(256, 256))
    clip.frames            # (T, H, W, 3) uint8 RGB
    clip.instance_masks    # (T, H, W) int16, 0 = background, track_id + 1 = person
    clip.video             # mpat_nb.data.annotations.Video (PoseTrack18 layout)
    clip.save("out")       # out/images/<name>/000000.jpg ..., out/annotations/<name>.json

For training, :class:`SyntheticVideoSource` renders any frame on demand (``source[t]``) without
keeping the clip. Everything is a pure function of (preset, config, seed, num_frames, size): random
numbers come from ``np.random.default_rng([seed, preset code, stream, ...])``, never from global state.

Ground truth conventions (per frame, per listed person):

* ``keypoints`` (17, 3): PoseTrack18 slots; a joint is visible (v = 2) iff it is inside the image and
  the instance mask at its pixel (x, y rounded) holds this person; otherwise it is absent (0, 0, 0).
  Self-occlusion does not hide a joint (the pixel still belongs to the person), as in PoseTrack.
  The ears (slots 3-4) are always absent.
* ``keypoints_all`` (17, 3): every joint projected, v = 2 visible, v = 1 hidden or outside the
  image (coordinates kept); ears 0, 0, 0.
* ``centre`` (2,): the mean of the 15 annotated joints of ``keypoints_all`` (hidden ones included),
  a torso-ish point that does not jump when a joint becomes hidden; it can lie outside the image.
* ``bbox``: the whole drawn silhouette (not reduced by occlusion), clipped to the image.
  ``bbox_head``: around the drawn head and head_bottom, not clipped: ``0.6 x diagonal`` is about
  75 % of the head height (0.16 m for an adult), as MPII / PoseTrack head boxes give for PCKh.
* A person is listed in ``Frame.people`` only with at least one visible joint (PoseTrack does not
  label invisible people), even if a few of its pixels are still in the instance mask; a person
  who reappears keeps its ``track_id``. Track ids are 0 .. N-1 over all identities of the clip.
* Camera: people live in 3-D and are projected by a pinhole camera onto a scene canvas; pan, zoom
  and shake then move a 2-D window over that canvas (no parallax).
* Pixel-centre convention: pixel (i, j) covers [i - 0.5, i + 0.5]; joints are drawn with sub-pixel
  precision. Frames: ``file_name = images/<name>/<t:06d>.jpg``, ``image_id = seed * 10000 + t``.

Seeds: training uses 0 .. 899_999, validation 900_000 .. 949_999 and test 950_000 .. 999_999
(:func:`split_seeds`), so the three never share a clip. Video names are ``<seed:06d>_mpii_synth_<preset>``,
which the official PoseTrack evaluation parses.

Speed: ``benchmarks/bench_synth.py`` renders 256 x 256 frames with 6 people on one core at roughly
200-350 frames/s (rendering only) and 160-280 frames/s with noise and JPEG on a shared 2-core
machine; motion blur is the slowest case. The module never changes OpenCV's thread count: in
DataLoader workers, call ``cv2.setNumThreads(1)`` yourself to avoid oversubscription.

Glossary: T frames, N people, H x W image, P body points, K = 15 joints.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.data.body import (
    LOCOMOTION_KINDS,
    MOTION_KINDS,
    POINT,
    REFERENCE_HEIGHT,
    BodyShape,
    body_points,
    ground_speed,
    pose_angles,
    sample_body_shape,
    sample_motion_program,
)
from mpat_nb.data.render import (
    OccluderLook,
    PersonStyle,
    add_sensor_noise,
    blur_along,
    draw_occluder,
    draw_person,
    jpeg_roundtrip,
    make_background,
    person_style,
    sample_appearances,
    sample_occluder_look,
)
from mpat_nb.skeleton import JOINT_TO_SLOT17, NUM_KEYPOINTS_17, UNANNOTATED_SLOTS_17
from mpat_nb.utils import InputError

__all__ = [
    "Clip", "HARD_CASES", "PRESETS", "SPLIT_RANGES", "SynthConfig", "SynthFrame", "SyntheticVideoSource",
    "TEST_SEED_OFFSET", "TRAIN_SEED_OFFSET", "VAL_SEED_OFFSET", "generate_clip", "iter_frames", "resolve_config",
    "split_seeds", "video_name",
]

# ----------------------------------------------------------------------------------------------
# Seeds and names
# ----------------------------------------------------------------------------------------------
TRAIN_SEED_OFFSET = 0
VAL_SEED_OFFSET = 900_000
TEST_SEED_OFFSET = 950_000
SEED_LIMIT = 1_000_000            # seeds are written with 6 digits in video names
SPLIT_RANGES: dict[str, tuple[int, int]] = {
    "train": (TRAIN_SEED_OFFSET, VAL_SEED_OFFSET),
    "val": (VAL_SEED_OFFSET, TEST_SEED_OFFSET),
    "test": (TEST_SEED_OFFSET, SEED_LIMIT),
}
MIN_SIZE = 32                      # pixels; smaller frames cannot show a person's limbs
MAX_FRAMES = 10_000                # the PoseTrack evaluator parses frame numbers 0 .. 9999


def split_seeds(split: str, count: int, offset: int = 0) -> np.ndarray:
    """(count,) int64 seeds of a split: train 0.., val 900_000.., test 950_000.. (disjoint ranges).

    offset: start this many seeds into the split's range (e.g. a second validation set).
    """
    if split not in SPLIT_RANGES:
        raise InputError(f"unknown split {split!r}; use one of {sorted(SPLIT_RANGES)}")
    low, high = SPLIT_RANGES[split]
    if count < 0 or offset < 0 or low + offset + count > high:
        raise InputError(f"split {split!r} has seeds {low}..{high - 1}: offset {offset} + count {count} does not fit")
    return np.arange(low + offset, low + offset + count, dtype=np.int64)


def video_name(seed: int, preset: str) -> str:
    """``<seed:06d>_mpii_synth_<preset>``: the official evaluator parses ``<digits>_mpii``."""
    return f"{seed:06d}_mpii_synth_{preset}"


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the generator, with its default and why it exists. Lengths in metres, ranges
    are inclusive (low, high) and drawn per clip (or per person / frame where said)."""

    description: str = "a few people, static camera, some clutter"  # shown by `mpat-nb generate --list-presets`
    # People and bodies
    num_people: tuple[int, int] = (2, 4)            # people at the first frame; PoseTrack frames hold 1 to 10+
    height_range: tuple[float, float] = (1.5, 1.95)  # adult standing heights: size is not only depth
    child_fraction: float = 0.1                     # children (1.0-1.4 m, larger heads) break "small = far"
    proportion_jitter: float = 0.07                 # relative std of each limb length and width: no two bodies alike
    motion_mix: tuple[tuple[str, float], ...] = (    # relative frequency of each motion program
        ("walk", 3.0), ("run", 0.7), ("wave", 1.0), ("jump", 0.6), ("turn", 0.6), ("random", 1.5))
    speed_range: tuple[float, float] = (0.8, 1.2)   # per-person cadence factor: people move out of step
    # Layout
    person_height_near: float = 0.7                 # image-height fraction of a 1.7 m person at the nearest depth
    depth_range: tuple[float, float] = (3.0, 9.0)   # ground depths (m): far people are a third the size of near ones
    lateral_spread: float = 0.8                     # fraction of the view's width people are spread over
    min_separation: float = 0.7                     # least ground distance (m) between people not in a pair
    depth_motion_fraction: float = 0.3              # walkers heading to / from the camera: they grow or shrink
    pair_fraction: float = 0.0                      # people placed in interacting pairs (touching, overlapping)
    crossing_fraction: float = 0.5                  # of the pairs: walkers whose paths cross mid-shot
    # Time
    fps: float = 25.0                               # frame rate (PoseTrack 25-30); lower = larger displacements
    # Camera
    camera_pan: float = 0.0                         # pan speed in image widths per second
    camera_zoom: float = 0.0                        # zoom change over a shot (0.5 = scale x 1.5 or / 1.5)
    camera_shake: float = 0.0                       # hand-held jitter amplitude, fraction of the image height
    horizon_range: tuple[float, float] = (0.3, 0.45)  # horizon row as a fraction of the image height
    camera_height: float = 1.3                      # m above the ground: near feet low, far people higher up
    # Shots
    num_shot_changes: int = 0                       # cuts per clip: new background, camera and layout
    shot_leave_fraction: float = 0.25               # chance that each person leaves at a cut (one always stays)
    shot_enter_range: tuple[int, int] = (0, 1)      # new people entering at each cut
    # Occlusion
    num_occluders: tuple[int, int] = (0, 1)         # static pillars, crates and signs per shot
    full_occlusion_events: int = 0                  # per shot: a walker vanishes behind a pillar and reappears
    # Background
    background_clutter: int = 30                    # random shapes (buildings, posts, panels) on the canvas
    background_distractors: int = 6                 # limb- and head-like shapes that bait a keypoint detector
    # Image formation
    motion_blur: float = 0.0                        # exposure / frame interval: blur length = motion x this
    noise_std: tuple[float, float] = (1.0, 5.0)     # sensor noise std in grey levels, drawn per clip
    jpeg_quality: tuple[int, int] = (55, 95)        # JPEG re-encoding quality, drawn per frame
    sensor_effects: bool = True                     # False: no noise, no JPEG (rendering only)
    # Mixture
    hard_case_probability: float = 0.0              # > 0: switch each hard case on per clip with this chance

    def validate(self) -> SynthConfig:
        """Raise :class:`InputError` naming the first bad knob; return self."""
        def bad(name: str, why: str) -> InputError:
            return InputError(f"SynthConfig.{name} = {getattr(self, name)!r}: {why}")

        for name in ("num_people", "height_range", "speed_range", "depth_range", "horizon_range",
                     "shot_enter_range", "num_occluders", "noise_std", "jpeg_quality"):
            value = getattr(self, name)
            if not (isinstance(value, tuple) and len(value) == 2 and value[0] <= value[1]):
                raise bad(name, "must be a (low, high) pair with low <= high")
        if self.num_people[0] < 1:
            raise bad("num_people", "needs at least one person")
        if self.depth_range[0] <= 0.5:
            raise bad("depth_range", "the nearest depth must be more than 0.5 m")
        if not (0 < self.horizon_range[0] and self.horizon_range[1] < 1):
            raise bad("horizon_range", "must lie inside (0, 1)")
        if not (1 <= self.jpeg_quality[0] and self.jpeg_quality[1] <= 100):
            raise bad("jpeg_quality", "must lie in 1..100")
        for name in ("child_fraction", "depth_motion_fraction", "pair_fraction", "crossing_fraction",
                     "shot_leave_fraction", "hard_case_probability", "lateral_spread"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "must be a fraction in [0, 1]")
        for name in ("fps", "person_height_near", "camera_height"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be positive")
        for name in ("camera_pan", "camera_zoom", "camera_shake", "motion_blur", "proportion_jitter", "min_separation",
                     "num_shot_changes", "full_occlusion_events", "background_clutter", "background_distractors"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        kinds = [kind for kind, _ in self.motion_mix]
        if not kinds or any(k not in MOTION_KINDS for k in kinds) or any(w < 0 for _, w in self.motion_mix) \
                or sum(w for _, w in self.motion_mix) <= 0:
            raise bad("motion_mix", f"must be (kind, weight) pairs with kinds from {MOTION_KINDS} and a positive total")
        return self


#: What each hard case changes relative to the base configuration (also used by ``mixed``).
HARD_CASES: dict[str, dict] = {
    "crowd": dict(num_people=(8, 12), min_separation=0.35, depth_range=(3.0, 7.0), lateral_spread=0.65),
    "interaction": dict(num_people=(4, 6), pair_fraction=1.0, crossing_fraction=0.4),
    "camera_motion": dict(camera_pan=0.3, camera_zoom=0.5, camera_shake=0.012),
    "fast_motion": dict(fps=8.0, speed_range=(1.0, 1.4),
                        motion_mix=(("walk", 1.0), ("run", 3.0), ("jump", 1.5), ("turn", 0.5), ("random", 1.0))),
    "shot_change": dict(num_shot_changes=1, shot_leave_fraction=0.3, shot_enter_range=(1, 2)),
    "occlusion": dict(num_people=(3, 5), num_occluders=(2, 3), full_occlusion_events=1),
    "motion_blur": dict(motion_blur=1.0, fps=12.0, camera_pan=0.15,
                        motion_mix=(("walk", 1.0), ("run", 2.0), ("jump", 1.0), ("wave", 0.5), ("random", 1.0))),
}
_DESCRIPTIONS = {
    "crowd": "many people close together",
    "interaction": "pairs touching, facing each other or crossing paths",
    "camera_motion": "camera pan, zoom and hand-held shake",
    "fast_motion": "low frame rate, running and jumping: large displacements between frames",
    "shot_change": "a cut: new background, camera and layout; same identities and clothes",
    "occlusion": "foreground occluders; a person vanishes behind a pillar and reappears",
    "motion_blur": "directional blur along each person's and the camera's motion",
}
_BASE = SynthConfig()
PRESETS: dict[str, SynthConfig] = {
    "easy": dataclasses.replace(_BASE, description="one to three people, static camera, light noise", num_people=(1, 3),
                                num_occluders=(0, 0), depth_range=(3.0, 7.0), background_distractors=0,
                                background_clutter=15, noise_std=(0.5, 2.0), jpeg_quality=(80, 95)),
    **{name: dataclasses.replace(_BASE, description=_DESCRIPTIONS[name], **changes)
       for name, changes in HARD_CASES.items()},
    "mixed": dataclasses.replace(_BASE, num_people=(2, 6), hard_case_probability=0.4,
                                 description="default benchmark: a seeded random mixture of the hard cases per clip"),
}


def resolve_config(preset: str = "mixed", seed: int = 0, config: SynthConfig | None = None,
                   **overrides) -> tuple[SynthConfig, list[str]]:
    """The configuration a clip is rendered with, and the hard cases a mixture switched on.

    Order: ``config`` (or ``PRESETS[preset]``) -> hard cases drawn for this seed if
    ``hard_case_probability > 0`` -> ``overrides``. A bare int for a range knob means (n, n).
    """
    if config is None:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
        config = PRESETS[preset]
    elif not isinstance(config, SynthConfig):
        raise InputError(f"config must be a SynthConfig, got {type(config).__name__}")
    overrides = _checked_overrides(overrides)
    chosen: list[str] = []
    probability = overrides.get("hard_case_probability", config.hard_case_probability)
    if probability > 0:
        rng = np.random.default_rng(_rng_key(seed, preset) + [_STREAM_MIXTURE])
        chosen = [name for name in HARD_CASES if rng.random() < probability]
        changes: dict = {}
        for name in chosen:
            for knob, value in HARD_CASES[name].items():
                changes[knob] = _combine(knob, changes[knob], value) if knob in changes else value
        config = dataclasses.replace(config, **changes)
    return dataclasses.replace(config, **overrides).validate(), chosen


def _combine(knob: str, first, second):
    """Two hard cases change the same knob: keep the harder value (lower frame rate, more people,
    both motion mixes); otherwise the later one wins."""
    if knob == "fps":
        return min(first, second)
    if knob == "num_people":
        return max(first[0], second[0]), max(first[1], second[1])
    if knob == "motion_mix":
        weights = dict(first)
        for kind, weight in second:
            weights[kind] = weights.get(kind, 0.0) + weight
        return tuple(weights.items())
    return second


def _checked_overrides(overrides: dict) -> dict:
    known = {f.name: f for f in dataclasses.fields(SynthConfig)}
    checked = {}
    for name, value in overrides.items():
        if name not in known:
            raise InputError(f"unknown SynthConfig knob {name!r}; known knobs: {', '.join(known)}")
        default = known[name].default
        if isinstance(default, tuple) and len(default) == 2 and not isinstance(default[0], tuple):
            if isinstance(value, (int, float)):
                value = (value, value)
            elif isinstance(value, list):
                value = tuple(value)
        elif name == "motion_mix" and isinstance(value, dict):
            value = tuple(value.items())
        checked[name] = value
    return checked


# ----------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------
@dataclass
class SynthFrame:
    """One rendered frame of a :class:`SyntheticVideoSource`.

    image: (H, W, 3) uint8 RGB; instance_mask: (H, W) int16 (0 = background, track_id + 1 = person);
    frame: the annotations; occluded_ids: track ids inside the image with no visible joint (not in
    ``frame.people``); depths: track id -> camera depth (m) of the pelvis, for everyone in the shot
    (the ground truth of the far-to-near ordinal maps).
    """

    index: int
    image: np.ndarray
    instance_mask: np.ndarray
    frame: Frame
    occluded_ids: list[int] = field(default_factory=list)
    depths: dict[int, float] = field(default_factory=dict)


@dataclass
class Clip:
    """A whole synthetic clip.

    frames: (T, H, W, 3) uint8 RGB; instance_masks: (T, H, W) int16; video: PoseTrack18-layout
    ground truth; config: the resolved configuration (mixture applied); events: the hard cases of
    this clip (see :class:`SyntheticVideoSource` and ``full_occlusions``: (track_id, first hidden
    frame, frame of re-appearance) observed in the ground truth); depths: (T, N) pelvis depth in
    metres of identity n in frame t, NaN where the identity is not in the shot.
    """

    frames: np.ndarray
    instance_masks: np.ndarray
    video: Video
    config: SynthConfig
    preset: str
    seed: int
    events: dict
    depths: np.ndarray

    @property
    def name(self) -> str:
        return self.video.name

    def __len__(self) -> int:
        return len(self.frames)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/images/<name>/000000.jpg ...`` (JPEG quality 95) and
        ``out_dir/annotations/<name>.json`` (PoseTrack18, with keypoints_all and centre); return the JSON path."""
        from mpat_nb.data.formats import save_posetrack18, write_frames

        out = Path(out_dir)
        write_frames(self.frames, out / "images" / self.name, ext=".jpg", quality=95)
        path = out / "annotations" / f"{self.name}.json"
        save_posetrack18(self.video, path)
        return path


def generate_clip(preset: str = "mixed", seed: int = 0, num_frames: int = 30, size: tuple[int, int] = (256, 256),
                  config: SynthConfig | None = None, **overrides) -> Clip:
    """Render a whole clip: frames (T, H, W, 3), instance masks (T, H, W) and annotations.

    preset: a key of :data:`PRESETS` (also names the video); config: use this instead of the preset's;
    overrides: patch configuration knobs, e.g. ``num_people=(6, 6)``; size: (width, height).
    """
    source = SyntheticVideoSource(preset, seed, num_frames, size, config, **overrides)
    rendered = list(source)
    frames = np.stack([r.image for r in rendered])
    masks = np.stack([r.instance_mask for r in rendered])
    video = Video(source.video_name, [r.frame for r in rendered])
    events = dict(source.events)
    events["full_occlusions"] = _observed_full_occlusions(rendered)
    depths = np.full((len(rendered), source.num_identities), np.nan)
    for t, r in enumerate(rendered):
        for track_id, depth in r.depths.items():
            depths[t, track_id] = depth
    return Clip(frames, masks, video, source.config, preset, seed, events, depths)


def validation_clips(preset: str, num_clips: int, num_frames: int, size: int) -> list[Clip]:
    """``num_clips`` clips of ``preset`` from the generator's validation seeds (disjoint from the training seeds),
    ``num_frames`` frames of ``size`` x ``size``: what training validates on and the notebooks measure."""
    return [generate_clip(preset=preset, seed=int(seed), num_frames=num_frames, size=(size, size))
            for seed in split_seeds("val", num_clips)]


def iter_frames(preset: str = "mixed", seed: int = 0, num_frames: int = 30, size: tuple[int, int] = (256, 256),
                config: SynthConfig | None = None, **overrides) -> Iterator[SynthFrame]:
    """Yield the frames of a clip one at a time (same pixels as :func:`generate_clip`)."""
    yield from SyntheticVideoSource(preset, seed, num_frames, size, config, **overrides)


class SyntheticVideoSource:
    """A clip planned up front (cheap: trajectories, poses, backgrounds) and rendered frame by frame.

    ``source[t]`` renders frame t from scratch (random access, e.g. frame pairs (t - d, t) for
    TemporalNet); iterating renders 0 .. T-1. Nothing rendered is kept, so memory stays small.

    Attributes: ``config`` (resolved), ``video_name``, ``num_frames``, ``size`` (W, H),
    ``num_identities`` (track ids are 0 .. num_identities - 1), ``events``:
    ``hard_cases`` (switched on by a mixture), ``shot_cuts`` (first frame of each new shot),
    ``shot_enter`` / ``shot_leave`` ({cut frame: track ids}), ``scripted_occlusions`` (planned
    disappearances behind a pillar: track id, hidden_from, hidden_until).
    """

    def __init__(self, preset: str = "mixed", seed: int = 0, num_frames: int = 30,
                 size: tuple[int, int] = (256, 256), config: SynthConfig | None = None, **overrides):
        seed = _checked_int(seed, "seed", 0, SEED_LIMIT - 1)
        self.num_frames = _checked_int(num_frames, "num_frames", 1, MAX_FRAMES)
        self.size = _checked_size(size)
        if not isinstance(preset, str) or (config is None and preset not in PRESETS):
            raise InputError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
        if not re.fullmatch(r"[A-Za-z0-9_]+", preset):
            raise InputError(f"preset name {preset!r} names the video and its files: use letters, digits and '_'")
        self.preset, self.seed = preset, seed
        self.config, hard_cases = resolve_config(preset, seed, config, **overrides)
        self.video_name = video_name(seed, preset)
        self._plan = _plan_clip(self.config, _rng_key(seed, preset), self.num_frames, self.size)
        self.events = {"hard_cases": hard_cases, **self._plan.events}
        self.num_identities = len(self._plan.identities)

    def __len__(self) -> int:
        return self.num_frames

    def __iter__(self) -> Iterator[SynthFrame]:
        for t in range(self.num_frames):
            yield self[t]

    def __getitem__(self, t: int) -> SynthFrame:
        if not -self.num_frames <= t < self.num_frames:
            raise IndexError(f"frame {t} out of range for a clip of {self.num_frames} frames")
        return _render_frame(self._plan, t % self.num_frames, self.video_name, self.seed)


# ----------------------------------------------------------------------------------------------
# Planning: identities, shots, cameras, trajectories, occluders
# ----------------------------------------------------------------------------------------------
_STREAM_MIXTURE, _STREAM_IDENTITIES, _STREAM_SHOT, _STREAM_FRAME = 1, 2, 3, 4


def _rng_key(seed: int, preset: str) -> list[int]:
    """Root of a clip's random streams: the seed and a stable code of the preset name, so that two
    presets with the same seed do not share backgrounds and people."""
    return [seed, zlib.crc32(preset.encode("utf-8"))]


@dataclass
class _Identity:
    """One person of the clip: body, clothes and preferred motion; the same in every shot."""

    track_id: int
    shape: BodyShape
    style: PersonStyle                # clothes, palette and part table for the renderer
    motion_kind: str
    speed: float


@dataclass
class _Actor:
    """An identity during one shot. Arrays over the shot's frames: points (T_s, P, 2) image pixels,
    depths (T_s, P) m, pixels_per_metre (T_s,), blur (T_s, 2) pixels of motion during the exposure."""

    identity: _Identity
    points: np.ndarray
    depths: np.ndarray
    pixels_per_metre: np.ndarray
    blur: np.ndarray


@dataclass
class _Occluder:
    """A static object: a convex polygon per frame (T_s, M, 2) in image pixels at a ground depth."""

    depth: float
    polygons: np.ndarray
    pixels_per_metre: np.ndarray
    look: OccluderLook
    kind: str                         # "pillar", "crate" or "sign"
    scene_x: tuple[float, float]      # left and right edge in scene pixels


@dataclass
class _Shot:
    start: int
    stop: int
    canvas: np.ndarray                # (Hc, Wc, 3) uint8 background in scene pixels
    cameras: np.ndarray               # (T_s, 2, 3) scene pixels -> image pixels
    background_blur: np.ndarray       # (T_s, 2) pixels the background moves during the exposure
    actors: list[_Actor]
    occluders: list[_Occluder]
    static_camera: bool
    cached_background: np.ndarray | None = None


@dataclass
class _Plan:
    config: SynthConfig
    size: tuple[int, int]
    key: list[int]                    # [seed, preset code]: the root of every random stream
    identities: list[_Identity]
    shots: list[_Shot]
    shot_of_frame: np.ndarray         # (T,) shot index of each frame
    noise_std: float
    events: dict


@dataclass
class _Camera:
    """A shot's pinhole camera over a canvas: scene pixel = principal + focal * (x, y) / z."""

    image_size: tuple[int, int]       # (W, H)
    focal: float                      # pixels per metre at 1 m depth, zoom 1
    principal: np.ndarray             # (2,) scene pixels of the optical axis (the horizon row)
    height: float                     # m above the ground
    matrices: np.ndarray              # (T_s, 2, 3) scene -> image
    zoom: np.ndarray                  # (T_s,)
    view_min: np.ndarray              # (2,) scene pixels: the region seen during the shot
    view_max: np.ndarray


def _plan_clip(config: SynthConfig, key: list[int], num_frames: int, size: tuple[int, int]) -> _Plan:
    identity_rng = np.random.default_rng(key + [_STREAM_IDENTITIES])
    cuts = _cut_frames(identity_rng, config.num_shot_changes, num_frames)
    bounds = [0, *cuts, num_frames]

    # Who is in which shot: the first shot's people, then at each cut some leave and some enter.
    present = list(range(int(identity_rng.integers(config.num_people[0], config.num_people[1] + 1))))
    members, enter, leave = [present], {}, {}
    next_id = len(present)
    for cut in cuts:
        staying = [i for i in present if identity_rng.random() >= config.shot_leave_fraction]
        if not staying:
            staying = [present[int(identity_rng.integers(len(present)))]]
        entering = list(range(next_id, next_id + int(identity_rng.integers(config.shot_enter_range[0],
                                                                          config.shot_enter_range[1] + 1))))
        next_id += len(entering)
        leave[cut] = [i for i in present if i not in staying]
        enter[cut] = entering
        present = staying + entering
        members.append(present)
    identities = _sample_identities(identity_rng, config, next_id)
    noise_std = float(identity_rng.uniform(*config.noise_std))

    shots, scripted = [], []
    for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        rng = np.random.default_rng(key + [_STREAM_SHOT, index])
        shot, events = _plan_shot(rng, config, size, start, stop, [identities[i] for i in members[index]])
        shots.append(shot)
        scripted.extend(events)
    shot_of_frame = np.concatenate([np.full(s.stop - s.start, i) for i, s in enumerate(shots)])
    events = {"shot_cuts": list(cuts), "shot_enter": enter, "shot_leave": leave, "scripted_occlusions": scripted}
    return _Plan(config, size, key, identities, shots, shot_of_frame, noise_std, events)


def _cut_frames(rng: np.random.Generator, count: int, num_frames: int) -> list[int]:
    """Frames that start a new shot: evenly spread with jitter, every shot at least 2 frames long."""
    count = min(count, num_frames // 2 - 1) if num_frames >= 4 else 0
    if count <= 0:
        return []
    spacing = num_frames / (count + 1)
    cuts = [int(round(spacing * (k + 1) + rng.uniform(-0.25, 0.25) * spacing)) for k in range(count)]
    cuts = sorted(set(int(np.clip(c, 2, num_frames - 2)) for c in cuts))
    return [c for i, c in enumerate(cuts) if i == 0 or c - cuts[i - 1] >= 2]


def _sample_identities(rng: np.random.Generator, config: SynthConfig, count: int) -> list[_Identity]:
    kinds = [kind for kind, _ in config.motion_mix]
    weights = np.array([w for _, w in config.motion_mix], dtype=np.float64)
    appearances = sample_appearances(rng, count)
    identities = []
    for track_id, appearance in enumerate(appearances):
        child = rng.random() < config.child_fraction
        height = rng.uniform(1.0, 1.4) if child else rng.uniform(*config.height_range)
        shape = sample_body_shape(rng, float(height), config.proportion_jitter, build=float(rng.uniform(0.85, 1.2)))
        identities.append(_Identity(track_id, shape, person_style(shape, appearance),
                                    kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))],
                                    float(rng.uniform(*config.speed_range))))
    return identities


def _plan_shot(rng: np.random.Generator, config: SynthConfig, size: tuple[int, int], start: int, stop: int,
               identities: list[_Identity]) -> tuple[_Shot, list[dict]]:
    width, height = size
    frames = np.arange(start, stop)
    times = frames / config.fps
    camera = _plan_camera(rng, config, size, times)
    canvas_size = np.ceil(camera.view_max).astype(int) + 1
    canvas = make_background(rng, int(canvas_size[0]), int(canvas_size[1]), camera.principal[1],
                             config.background_clutter, config.background_distractors,
                             scale=camera.focal / config.depth_range[0])
    placements = _place_people(rng, config, camera, identities, times)

    events = []
    occluders = [_sample_occluder(rng, config, camera) for _ in
                 range(int(rng.integers(config.num_occluders[0], config.num_occluders[1] + 1)))]
    candidates = [p for p in placements if not p["paired"]]
    for _ in range(config.full_occlusion_events):
        if not candidates or stop - start < 8:
            break
        placement = candidates.pop(int(rng.integers(len(candidates))))
        event = _script_full_occlusion(rng, config, camera, times, placement, start)
        if event is not None:
            _clear_line_of_sight(rng, config, camera, event.pop("path"), placements, occluders, placement)
            occluders.append(event.pop("occluder"))
            events.append(event)

    actors = [_actor_from(placement, camera, config) for placement in placements]
    background_blur = _background_motion(camera.matrices, size) * config.motion_blur
    static = bool(np.allclose(camera.matrices, camera.matrices[:1]))
    shot = _Shot(start, stop, canvas, camera.matrices, background_blur, actors, occluders, static)
    return shot, events


def _background_motion(matrices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T_s, 2, 3) cameras -> (T_s, 2) image pixels per frame that the scene point under the image
    centre moves (central difference; zeros for a one-frame shot)."""
    count = len(matrices)
    if count < 2:
        return np.zeros((count, 2))
    centre = np.array([size[0] / 2, size[1] / 2])
    scene = np.linalg.solve(matrices[:, :, :2], (centre[None] - matrices[:, :, 2])[..., None])[..., 0]   # (T_s, 2)
    after, before = np.minimum(np.arange(count) + 1, count - 1), np.maximum(np.arange(count) - 1, 0)
    moved = (np.einsum("tij,tj->ti", matrices[after, :, :2], scene) + matrices[after, :, 2]
             - np.einsum("tij,tj->ti", matrices[before, :, :2], scene) - matrices[before, :, 2])
    return moved / (after - before)[:, None]


def _plan_camera(rng: np.random.Generator, config: SynthConfig, size: tuple[int, int], times: np.ndarray) -> _Camera:
    """Pan, zoom and shake over a canvas just large enough for everything the shot sees."""
    width, height = size
    elapsed = times - times[0]
    duration = max(elapsed[-1], 1e-6)
    # Zoom: (1 + camera_zoom) ** u with u going -0.5 -> 0.5 (or back), smoothly.
    progress = elapsed / duration
    smooth = progress * progress * (3 - 2 * progress) - 0.5
    zoom = (1.0 + config.camera_zoom) ** (smooth * rng.choice([-1.0, 1.0]))
    # Pan: mostly horizontal, in image widths per second (converted to scene pixels at zoom 1).
    direction = rng.uniform(-0.3, 0.3) + (0.0 if rng.random() < 0.5 else np.pi)
    pan = config.camera_pan * width * np.array([np.cos(direction), 0.4 * np.sin(direction)])
    centre = elapsed[:, None] * pan[None, :]
    # Shake: a few random sinusoids (2-7 Hz) in image pixels, plus a small roll.
    shake = np.zeros((len(times), 3))
    if config.camera_shake > 0:
        for axis in range(3):
            for _ in range(3):
                amplitude, frequency, phase = rng.uniform(0.3, 1.0), rng.uniform(2, 7), rng.uniform(0, 2 * np.pi)
                shake[:, axis] += amplitude * np.sin(2 * np.pi * frequency * times + phase)
        shake /= 1.5
        shake[:, :2] *= config.camera_shake * height
        shake[:, 2] *= 0.6 * config.camera_shake
    roll = shake[:, 2]
    # scene -> image: image = zoom R(roll) (scene - centre) + image centre; shake moves the image.
    half = np.array([width / 2, height / 2])
    cos, sin = np.cos(roll) * zoom, np.sin(roll) * zoom
    linear = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], 1)      # (T, 2, 2)
    offset = half[None] + shake[:, :2] - np.einsum("tij,tj->ti", linear, centre)
    # The region seen: image corners mapped back to the scene.
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64)
    inverse = np.linalg.inv(linear)
    seen = np.einsum("tij,tkj->tki", inverse, corners[None] - offset[:, None])         # (T, 4, 2)
    low = seen.reshape(-1, 2).min(0) - 4
    # Shift the scene so that the canvas starts at (0, 0).
    offset = offset + np.einsum("tij,j->ti", linear, low)
    view_min, view_max = seen.reshape(-1, 2).min(0) - low, seen.reshape(-1, 2).max(0) - low
    matrices = np.concatenate([linear, offset[:, :, None]], axis=2)
    # The optical axis: horizontally at the first view's centre; vertically where the horizon should be.
    first_centre = np.linalg.solve(linear[0], half - offset[0])
    horizon = rng.uniform(*config.horizon_range)
    principal = first_centre - np.array([0.0, (0.5 - horizon) * height / zoom[0]])
    focal = config.person_height_near * height * config.depth_range[0] / REFERENCE_HEIGHT
    return _Camera(size, focal, principal, config.camera_height, matrices, zoom, view_min, view_max)


def _place_people(rng: np.random.Generator, config: SynthConfig, camera: _Camera, identities: list[_Identity],
                  times: np.ndarray) -> list[dict]:
    """Motion program, heading and ground trajectory of each person for the shot.

    Each placement is a dict: identity, program, heading (T_s,), ground (T_s, 2) x, z in metres,
    paired (bool). Positions are chosen for the middle of the shot, then the path is integrated
    forwards and backwards from there, so people are in view mid-shot and may walk in or out.
    """
    z_near, z_far = config.depth_range
    mid_time = 0.5 * (times[0] + times[-1])
    view_centre = 0.5 * (camera.view_min[0] + camera.view_max[0])
    view_half = 0.5 * (camera.view_max[0] - camera.view_min[0]) * config.lateral_spread

    def lateral_metres(scene_x: float, depth: float) -> float:
        return (scene_x - camera.principal[0]) * depth / camera.focal

    order = list(range(len(identities)))
    rng.shuffle(order)
    num_paired = int(round(config.pair_fraction * len(identities))) // 2 * 2
    pairs = [(order[k], order[k + 1]) for k in range(0, num_paired, 2)]
    partner = {a: b for a, b in pairs} | {b: a for a, b in pairs}

    placements: dict[int, dict] = {}
    for index, identity in enumerate(identities):
        if index in placements:
            continue
        kind = identity.motion_kind
        for _ in range(20):   # keep people apart (rejection sampling)
            depth = float(rng.uniform(z_near, z_far))
            x = lateral_metres(float(rng.uniform(view_centre - view_half, view_centre + view_half)), depth)
            others = [p["mid"] for p in placements.values()]
            if all(np.hypot(x - ox, depth - oz) >= config.min_separation for ox, oz in others):
                break
        if kind in LOCOMOTION_KINDS:
            if rng.random() < config.depth_motion_fraction:
                heading = rng.choice([0.0, np.pi]) + rng.uniform(-0.4, 0.4)
            else:
                heading = rng.choice([-1.0, 1.0]) * np.pi / 2 + rng.uniform(-0.5, 0.5)
        else:
            heading = rng.uniform(-1.2, 1.2) if rng.random() < 0.75 else rng.uniform(-np.pi, np.pi)
        placements[index] = dict(identity=identity, kind=kind, mid=(x, depth), heading=float(heading),
                                 turn_rate=float(rng.normal(0.0, 0.12)), paired=False)
        if index in partner:
            _place_partner(rng, config, placements, index, partner[index], identities)

    result = []
    for index in range(len(identities)):
        placement = placements[index]
        program = sample_motion_program(rng, placement["kind"], placement["identity"].speed)
        if placement.get("sync_with") is not None:   # walking side by side: in step
            other = placements[placement["sync_with"]]["program"]
            program.cadence, program.phase = other.cadence, other.phase + np.pi
        placement["program"] = program
        _integrate_path(placement, times, mid_time, config)
        result.append(placement)
    return result


def _place_partner(rng: np.random.Generator, config: SynthConfig, placements: dict, first: int, second: int,
                   identities: list[_Identity]) -> None:
    """Arrange an interacting pair: crossing paths, walking side by side, or facing each other."""
    a = placements[first]
    a["paired"] = True
    x, depth = a["mid"]
    roll = rng.random()
    if roll < config.crossing_fraction:
        # Both walk laterally in opposite directions and pass each other mid-shot, one behind the other.
        direction = rng.choice([-1.0, 1.0])
        a.update(kind="walk", heading=direction * np.pi / 2 + rng.uniform(-0.2, 0.2), turn_rate=0.0)
        b = dict(kind="walk", mid=(x + rng.uniform(-0.1, 0.1), depth + rng.uniform(0.4, 1.2)),
                 heading=-direction * np.pi / 2 + rng.uniform(-0.2, 0.2), turn_rate=0.0)
    elif roll < config.crossing_fraction + 0.5 * (1 - config.crossing_fraction):
        # Side by side, shoulders nearly touching: both walk in step, or both stand and wave / move.
        walking = rng.random() < 0.5
        kind = "walk" if walking else str(rng.choice(["wave", "random"]))
        heading = (rng.choice([-1.0, 1.0]) * np.pi / 2 if walking else rng.uniform(-0.6, 0.6))
        a.update(kind=kind, heading=heading, turn_rate=0.0)
        gap = rng.uniform(0.35, 0.55)
        left = np.array([np.cos(heading), np.sin(heading)])        # the first person's left on the ground
        b = dict(kind=kind, mid=(x + gap * left[0], depth + gap * left[1] + rng.uniform(-0.1, 0.1)),
                 heading=heading, turn_rate=0.0, sync_with=first if walking else None)
    else:
        # Facing each other at arm's length, gesturing: their arms overlap.
        a.update(kind=str(rng.choice(["wave", "random"])), heading=np.pi / 2, turn_rate=0.0)
        b = dict(kind=str(rng.choice(["wave", "random"])), heading=-np.pi / 2, turn_rate=0.0,
                 mid=(x + rng.uniform(0.45, 0.75), depth + rng.uniform(-0.15, 0.15)))
    placements[second] = dict(identity=identities[second], paired=True, **b)


def _integrate_path(placement: dict, times: np.ndarray, mid_time: float, config: SynthConfig) -> None:
    """Fill placement["heading"] (T_s,) and placement["ground"] (T_s, 2) from the mid-shot state,
    slowing the walker down if the path would leave the allowed depth band."""
    speed = ground_speed(placement["program"], placement["identity"].shape)
    heading = placement["heading"] + placement["turn_rate"] * (times - mid_time)
    step = np.gradient(times) if len(times) > 1 else np.zeros(1)
    velocity = speed * np.stack([np.sin(heading), -np.cos(heading)], axis=1)
    # Displacement relative to the middle of the shot: integrate the velocity, then re-centre.
    displacement = np.cumsum(velocity * step[:, None], axis=0)
    displacement -= np.array([np.interp(mid_time, times, displacement[:, k]) for k in range(2)])
    low, high = 0.6 * config.depth_range[0], 1.4 * config.depth_range[1]
    span = displacement[:, 1].max() - displacement[:, 1].min()
    if span > 0.9 * (high - low):
        displacement *= 0.9 * (high - low) / span
    depth = float(np.clip(placement["mid"][1], low - displacement[:, 1].min(), high - displacement[:, 1].max()))
    placement["ground"] = np.array([placement["mid"][0], depth])[None, :] + displacement
    placement["heading"] = heading
    placement["times"] = times


def _actor_from(placement: dict, camera: _Camera, config: SynthConfig) -> _Actor:
    """Pose the body over the shot and project it into every frame."""
    identity = placement["identity"]
    frames = len(placement["times"])
    angles = pose_angles(placement["program"], placement["times"])
    points3d = body_points(identity.shape, angles, placement["ground"], placement["heading"], camera.height)
    image, depths = _project(points3d, camera)
    pixels_per_metre = camera.focal * camera.zoom / points3d[:, POINT["pelvis"], 2]
    blur = np.zeros((frames, 2))
    if config.motion_blur > 0 and frames > 1:
        blur = np.gradient(image[:, POINT["pelvis"]], axis=0) * config.motion_blur
    return _Actor(identity, image, depths, pixels_per_metre, blur)


def _project(points3d: np.ndarray, camera: _Camera) -> tuple[np.ndarray, np.ndarray]:
    """(T_s, P, 3) camera-space metres -> (T_s, P, 2) image pixels and (T_s, P) depths."""
    depth = np.maximum(points3d[..., 2], 0.2)
    scene = camera.principal + camera.focal * points3d[..., :2] / depth[..., None]
    image = np.einsum("tij,tpj->tpi", camera.matrices[:, :, :2], scene) + camera.matrices[:, None, :, 2]
    return image, depth


def _sample_occluder(rng: np.random.Generator, config: SynthConfig, camera: _Camera, kind: str | None = None,
                     depth: float | None = None, scene_x: tuple[float, float] | None = None) -> _Occluder:
    """A pillar (full height), crate (hides legs) or sign board (hides torsos) standing on the ground."""
    kind = kind or str(rng.choice(["pillar", "crate", "sign"], p=[0.4, 0.35, 0.25]))
    depth = depth if depth is not None else float(rng.uniform(0.7 * config.depth_range[0], config.depth_range[1]))
    f, cy, h = camera.focal, camera.principal[1], camera.height
    if scene_x is None:
        width_m = rng.uniform(*{"pillar": (0.25, 0.6), "crate": (0.6, 1.6), "sign": (0.6, 1.3)}[kind])
        centre = rng.uniform(camera.view_min[0], camera.view_max[0])
        scene_x = (centre - f * width_m / depth / 2, centre + f * width_m / depth / 2)
    ground_y = cy + f * h / depth
    if kind == "pillar":
        top, bottom = -10.0, ground_y
    elif kind == "crate":
        top, bottom = cy + f * (h - rng.uniform(0.5, 1.2)) / depth, ground_y
    else:
        lower = rng.uniform(0.9, 1.3)
        top, bottom = cy + f * (h - lower - rng.uniform(0.5, 0.8)) / depth, cy + f * (h - lower) / depth
    scene = np.array([[scene_x[0], top], [scene_x[1], top], [scene_x[1], bottom], [scene_x[0], bottom]])
    polygons = np.einsum("tij,mj->tmi", camera.matrices[:, :, :2], scene) + camera.matrices[:, None, :, 2]
    return _Occluder(depth, polygons, camera.focal * camera.zoom / depth, sample_occluder_look(rng), kind,
                     (float(scene_x[0]), float(scene_x[1])))


def _script_full_occlusion(rng: np.random.Generator, config: SynthConfig, camera: _Camera, times: np.ndarray,
                           placement: dict, start: int) -> dict | None:
    """Make one person walk behind a pillar: hidden around mid-shot, visible before and after.

    The person walks sideways (faster if the shot is short); the pillar is sized to cover all of its
    annotated joints during a short window around mid-shot. Returns None if that cannot be arranged.
    """
    count = len(times)
    window = max(1, int(round(0.12 * count)))
    first = count // 2 - window // 2
    width_px = camera.view_max[0] - camera.view_min[0]
    identity = placement["identity"]
    z_near, z_far = config.depth_range
    depth = float(rng.uniform(z_near + 0.35 * (z_far - z_near), z_near + 0.7 * (z_far - z_near)))
    scene_x = rng.uniform(camera.view_min[0] + 0.35 * width_px, camera.view_max[0] - 0.35 * width_px)
    x_metres = (scene_x - camera.principal[0]) * depth / camera.focal
    direction = rng.choice([-1.0, 1.0])
    for speed_factor, kind in ((1.0, "walk"), (1.0, "run"), (1.5, "run"), (2.2, "run")):
        program = sample_motion_program(rng, kind, identity.speed * speed_factor)
        trial = dict(placement, kind=kind, program=program, mid=(x_metres, depth),
                     heading=direction * np.pi / 2 + rng.uniform(-0.15, 0.15), turn_rate=0.0)
        _integrate_path(trial, times, float(times[first + window // 2]), config)
        angles = pose_angles(program, times)
        points3d = body_points(identity.shape, angles, trial["ground"], trial["heading"], camera.height)
        depth_now = np.maximum(points3d[..., 2], 0.2)
        scene = camera.principal + camera.focal * points3d[..., :2] / depth_now[..., None]
        joints_x = scene[:, JOINT_TO_SLOT17, 0]                                  # (T_s, K)
        margin = 3.0 / float(camera.zoom.min())
        left = joints_x[first:first + window].min() - margin
        right = joints_x[first:first + window].max() + margin
        outside = (joints_x < left - margin) | (joints_x > right + margin)       # clearly out of the pillar
        image = _project(points3d, camera)[0][:, JOINT_TO_SLOT17]
        width, height = camera.image_size
        in_view = (image[..., 0] > 1) & (image[..., 0] < width - 2) & (image[..., 1] > 1) & (image[..., 1] < height - 2)
        seen = (outside & in_view).any(axis=1)
        if seen[:first].any() and seen[first + window:].any():
            pillar_depth = float(rng.uniform(0.6 * z_near, 0.5 * (z_near + depth)))
            occluder = _sample_occluder(rng, config, camera, kind="pillar", depth=pillar_depth,
                                        scene_x=(left, right))
            placement.update(trial)
            body = 0.4 * camera.focal / depth                                   # half a body width in pixels
            path = (float(joints_x.min() - body), float(joints_x.max() + body), float(trial["ground"][:, 1].max()))
            return dict(track_id=identity.track_id, hidden_from=start + first, hidden_until=start + first + window,
                        occluder=occluder, path=path)
    return None


def _clear_line_of_sight(rng: np.random.Generator, config: SynthConfig, camera: _Camera,
                         path: tuple[float, float, float], placements: list[dict], occluders: list[_Occluder],
                         target: dict) -> None:
    """Move people and occluders that could stand in front of the scripted person behind it, so that
    it is visible before and after its pillar. path: (left, right) scene x it covers, its largest depth."""
    left, right, farthest = path
    reach = 0.8   # m: arms' reach around the pelvis
    for other in placements:
        if other is target:
            continue
        depth = other["ground"][:, 1]
        x = camera.principal[0] + camera.focal * other["ground"][:, 0] / depth
        half = camera.focal * reach / depth
        overlaps = (x + half >= left).any() and (x - half <= right).any()
        if overlaps and depth.min() < farthest + 0.6:
            other["ground"] = other["ground"] + np.array([0.0, farthest + 0.6 - depth.min()])
    for index, occluder in enumerate(occluders):
        if occluder.depth < farthest + 0.6 and occluder.scene_x[1] >= left and occluder.scene_x[0] <= right:
            occluders[index] = _sample_occluder(rng, config, camera, kind=occluder.kind,
                                                depth=farthest + float(rng.uniform(0.6, 2.0)), scene_x=occluder.scene_x)


# ----------------------------------------------------------------------------------------------
# Rendering one frame
# ----------------------------------------------------------------------------------------------
def _render_frame(plan: _Plan, t: int, name: str, seed: int) -> SynthFrame:
    """Frame t: background, then occluders and people far to near, ground truth, sensor effects."""
    width, height = plan.size
    shot = plan.shots[int(plan.shot_of_frame[t])]
    k = t - shot.start
    image = _background(shot, k, (width, height))
    if plan.config.motion_blur > 0:
        image = blur_along(image, *shot.background_blur[k])
    instance_mask = np.zeros((height, width), dtype=np.int16)

    # Painter's order: farthest first. Occluders and people share one depth ordering.
    layers = [(float(a.depths[k, POINT["pelvis"]]), 1, i) for i, a in enumerate(shot.actors)]
    layers += [(o.depth, 0, i) for i, o in enumerate(shot.occluders)]
    layers.sort(key=lambda layer: (-layer[0], layer[1], layer[2]))
    drawn = []
    for _, is_person, i in layers:
        if not is_person:
            occluder = shot.occluders[i]
            draw_occluder(image, instance_mask, occluder.polygons[k], occluder.look,
                          float(occluder.pixels_per_metre[k]))
            continue
        actor = shot.actors[i]
        identity = actor.identity
        drawing = draw_person(image, instance_mask, actor.points[k], actor.depths[k], float(actor.pixels_per_metre[k]),
                              identity.style, identity.track_id + 1, blur=tuple(actor.blur[k]))
        if drawing is not None:
            drawn.append((actor, drawing))

    people, occluded = _ground_truth(drawn, k, instance_mask)
    if plan.config.sensor_effects:
        rng = np.random.default_rng(plan.key + [_STREAM_FRAME, t])
        image = add_sensor_noise(image, rng, plan.noise_std)
        low, high = plan.config.jpeg_quality
        image = jpeg_roundtrip(image, int(rng.integers(low, high + 1)))
    frame = Frame(file_name=f"images/{name}/{t:06d}.jpg", image_id=seed * 10000 + t, width=width, height=height,
                  is_labeled=True, people=people)
    depths = {a.identity.track_id: float(a.depths[k, POINT["pelvis"]]) for a in shot.actors}
    return SynthFrame(t, image, instance_mask, frame, occluded, depths)


def _background(shot: _Shot, k: int, size: tuple[int, int]) -> np.ndarray:
    """The canvas seen through frame k's camera (cached when the camera does not move)."""
    if shot.static_camera and shot.cached_background is not None:
        return shot.cached_background.copy()
    image = cv2.warpAffine(shot.canvas, shot.cameras[k], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if shot.static_camera:
        shot.cached_background = image.copy()
    return image


def _ground_truth(drawn: list, k: int, instance_mask: np.ndarray) -> tuple[list[Person], list[int]]:
    """The annotations of the drawn people in frame k of their shot, decided by the instance mask.

    drawn: (actor, PersonDrawing) pairs. Returns the listed people (at least one visible joint),
    sorted by track id, and the track ids inside the image with no visible joint.
    """
    if not drawn:
        return [], []
    height, width = instance_mask.shape
    track_ids = np.array([actor.identity.track_id for actor, _ in drawn])
    keypoints_xy = np.stack([actor.points[k, :NUM_KEYPOINTS_17] for actor, _ in drawn])     # (N, 17, 2)
    inside = _inside(keypoints_xy, width, height)                                            # (N, 17)
    columns = np.clip(np.floor(keypoints_xy[..., 0] + 0.5).astype(np.intp), 0, width - 1)
    rows = np.clip(np.floor(keypoints_xy[..., 1] + 0.5).astype(np.intp), 0, height - 1)
    visible = inside & (instance_mask[rows, columns] == (track_ids + 1)[:, None])
    visible[:, list(UNANNOTATED_SLOTS_17)] = False
    keypoints_all = np.concatenate([keypoints_xy, np.where(visible, 2.0, 1.0)[..., None]], axis=2)
    keypoints_all[:, list(UNANNOTATED_SLOTS_17)] = 0.0
    keypoints = np.where(visible[..., None], keypoints_all, 0.0)
    centres = keypoints_xy[:, JOINT_TO_SLOT17].mean(axis=1)                                  # (N, 2)
    people, occluded = [], []
    for n, (_, drawing) in enumerate(drawn):
        if visible[n].any():
            people.append(Person(keypoints=keypoints[n], track_id=int(track_ids[n]), bbox=drawing.bbox,
                                 bbox_head=drawing.head_box, keypoints_all=keypoints_all[n], centre=centres[n]))
        elif inside[n, JOINT_TO_SLOT17].any():
            occluded.append(int(track_ids[n]))
    people.sort(key=lambda person: person.track_id)
    return people, sorted(occluded)


def _inside(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(..., 2) -> (...) bool: the point's pixel (rounded) is inside the image."""
    x, y = points[..., 0], points[..., 1]
    return (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)


def _observed_full_occlusions(rendered: list[SynthFrame]) -> list[tuple[int, int, int]]:
    """(track_id, first hidden frame, re-appearance frame): listed, then inside the image with no
    visible joint for one or more frames, then listed again."""
    events = []
    listed = [{p.track_id for p in r.frame.people} for r in rendered]
    hidden = [set(r.occluded_ids) for r in rendered]
    track_ids = set().union(*listed) if listed else set()
    for track_id in sorted(track_ids):
        t = 1
        while t < len(rendered):
            if track_id in hidden[t] and track_id in listed[t - 1]:
                end = t
                while end < len(rendered) and track_id in hidden[end]:
                    end += 1
                if end < len(rendered) and track_id in listed[end]:
                    events.append((track_id, t, end))
                t = end
            t += 1
    return events


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------
def _checked_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    if not low <= int(value) <= high:
        raise InputError(f"{name} must be in {low}..{high}, got {value}")
    return int(value)


def _checked_size(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        width, height = (int(v) for v in size)
        if any(isinstance(v, bool) or float(v) != int(v) for v in size):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"size must be (width, height) in pixels, e.g. (256, 256), got {size!r}") from None
    if width < MIN_SIZE or height < MIN_SIZE:
        raise InputError(f"size must be at least {MIN_SIZE} x {MIN_SIZE} pixels, "
                         f"got (width, height) = {(width, height)}")
    return width, height
