"""Frame pairs (I^t', I^t) for TemporalNet: synthetic clips, identical augmentation of both frames, TVF targets.

Supplementary 2.2: "we randomly select a pair of images I^t and I^t' from a range-5 temporal window
(||t - t'||_1 <= 5) in a video clip as input. The same augmentation procedure is applied to I^t and I^t'
simultaneously." Here the earlier frame is always the *previous* one (t' = t - d), so the forward field
T points forward in time; d is drawn from ``min_frame_gap .. max_frame_gap`` (default 1 .. 5 [I]: d = 0
would be the same image twice, which teaches no motion).

A sample (:func:`make_pair_sample`) is a dict::

    image_previous, image_current: (3, S, S) float32 in [0, 1]
    previous, current: FramePeople (joints, centres, boxes, track ids on the output grid)
    tvf: TVFTargets (H, W = output grid)
    frame_gap: int d; clip_key: int naming the clip (its synthetic seed)

and :func:`collate_pairs` turns a list of them into a :class:`PairBatch`. Items are a pure function of
(seed, index): resuming restarts the stream exactly, as for SpatialNet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mpat_nb.codec import centres_and_scales_from_joints, joints_to_output_coords
from mpat_nb.codec_temporal import TVFTargets, boxes_from_joints, collate_tvf_targets, encode_tvf_targets
from mpat_nb.config import MAX_FRAME_GAP
from mpat_nb.data.annotations import Person
from mpat_nb.data.augment import (
    NO_AUGMENTATION,
    AugmentConfig,
    AugmentParams,
    augment_image,
    augment_joints,
    augment_points,
    sample_augmentation,
    to_rgb,
)
from mpat_nb.data.datasets import people_to_arrays
from mpat_nb.utils import DeviceMovable

#: identity = clip_key * IDENTITY_STRIDE + track_id, unique over a batch of several clips
#: [B: PoseTrack track ids are 0 .. 999].
IDENTITY_STRIDE = 1000
#: Frames planned per synthetic clip; pairs are drawn inside it [I: long enough for every gap up to 5 at
#: many positions, short enough that planning a clip stays cheap].
CLIP_FRAMES = 16


@dataclass
class FramePeople(DeviceMovable):
    """The people of one augmented frame, on the output grid (pixel-centre convention).

    joints: (N, K, 3) x, y, v; centres: (N, 2); boxes: (N, 4) x1, y1, x2, y2 (HE proposals);
    track_ids: (N,) int64. Only people with a visible joint after augmentation are listed.
    """

    joints: torch.Tensor
    centres: torch.Tensor
    boxes: torch.Tensor
    track_ids: torch.Tensor


@dataclass
class PairBatch(DeviceMovable):
    """A batch of B frame pairs.

    images_previous, images_current: (B, 3, S, S); previous, current: B :class:`FramePeople` each;
    tvf: batched :class:`TVFTargets` ((B, 2, H, W) fields, (B, H, W) masks); frame_gap, clip_key: (B,) int64.
    """

    images_previous: torch.Tensor
    images_current: torch.Tensor
    previous: list[FramePeople]
    current: list[FramePeople]
    tvf: TVFTargets
    frame_gap: torch.Tensor
    clip_key: torch.Tensor

    @property
    def boxes_previous(self) -> list[torch.Tensor]:
        return [people.boxes for people in self.previous]

    @property
    def boxes_current(self) -> list[torch.Tensor]:
        return [people.boxes for people in self.current]

    def identities(self, which: str) -> list[torch.Tensor]:
        """One (N_b,) int64 tensor per image of frame ``which`` ("previous" | "current"): clip_key * 1000 + track id."""
        if which not in ("previous", "current"):
            raise ValueError(f"which must be 'previous' or 'current', got {which!r}")
        return [key * IDENTITY_STRIDE + people.track_ids for key, people in zip(self.clip_key, getattr(self, which))]


def make_pair_sample(image_previous: np.ndarray, people_previous: Sequence[Person], image_current: np.ndarray,
                     people_current: Sequence[Person], params: AugmentParams, input_size: int, output_size: int,
                     *, frame_gap: int = 1, clip_key: int = 0) -> dict:
    """One training pair: both frames get the same augmentation ``params``; TVF targets from their track ids.

    images: (H, W, 3) uint8 RGB (grayscale / RGBA converted); people: with ``joints``, ``track_id`` and, if every
    person has one, ``centre``. Frames of unequal size are fine: each is letterboxed into the same square input
    by the same parameters (for equal sizes the two affine maps are identical).
    """
    previous_image, previous = augment_frame(image_previous, people_previous, params, input_size, output_size)
    current_image, current = augment_frame(image_current, people_current, params, input_size, output_size)
    tvf = encode_tvf_targets(previous.joints, previous.centres, previous.track_ids,
                             current.joints, current.centres, current.track_ids, output_size)
    return {"image_previous": previous_image, "image_current": current_image, "previous": previous,
            "current": current, "tvf": tvf, "frame_gap": int(frame_gap), "clip_key": int(clip_key)}


def collate_pairs(samples: Sequence[dict]) -> PairBatch:
    """Stack pair samples into a :class:`PairBatch` (people stay per image: their counts differ)."""
    if len(samples) == 0:
        raise ValueError("collate_pairs needs at least one sample")
    return PairBatch(
        images_previous=torch.stack([s["image_previous"] for s in samples]),
        images_current=torch.stack([s["image_current"] for s in samples]),
        previous=[s["previous"] for s in samples], current=[s["current"] for s in samples],
        tvf=collate_tvf_targets([s["tvf"] for s in samples]),
        frame_gap=torch.tensor([s["frame_gap"] for s in samples], dtype=torch.int64),
        clip_key=torch.tensor([s["clip_key"] for s in samples], dtype=torch.int64),
    )


@dataclass(frozen=True)
class PairInfo:
    """Which pair item i is: the clip's seed, frames t' = t - d and t, and the shared augmentation."""

    clip_seed: int
    frame_previous: int
    frame_current: int
    params: AugmentParams

    @property
    def frame_gap(self) -> int:
        return self.frame_current - self.frame_previous


class SyntheticPairDataset(Dataset):
    """Frame pairs of synthetic clips rendered on demand: item i is a pure function of (seed, i).

    Item i plans clip ``split_seeds(split, length, offset=seed)[i]`` of ``clip_frames`` frames (cheap) and
    renders only its frames t - d and t (:class:`mpat_nb.data.synth.SyntheticVideoSource`); pairs may
    straddle a shot change (the HE branch must link people across cuts too).

    ``long_frame_gap`` G: half the pairs are drawn with d in ``max_frame_gap + 1 .. G`` instead (clips planned
    long enough), for the HE branch to see appearance change over the gaps the tracker's memory spans; the
    training loop keeps the TVF loss to d <= ``max_frame_gap`` (:func:`tvf_on_short_gaps`) [I].
    """

    def __init__(self, input_size: int, output_size: int, *, preset: str = "mixed", split: str = "train",
                 length: int = 100_000, render_size: tuple[int, int] = (256, 256),
                 augment: AugmentConfig | None = AugmentConfig(), seed: int = 0, clip_frames: int = CLIP_FRAMES,
                 max_frame_gap: int = MAX_FRAME_GAP, min_frame_gap: int = 1, long_frame_gap: int | None = None):
        from mpat_nb.data.synth import split_seeds

        if long_frame_gap is not None:
            if long_frame_gap <= max_frame_gap:
                raise ValueError(f"long_frame_gap ({long_frame_gap}) must exceed max_frame_gap ({max_frame_gap})")
            clip_frames = max(clip_frames, long_frame_gap + CLIP_FRAMES - MAX_FRAME_GAP)
        if not 0 <= min_frame_gap <= max_frame_gap < clip_frames:
            raise ValueError(f"need 0 <= min_frame_gap ({min_frame_gap}) <= max_frame_gap ({max_frame_gap}) < "
                             f"clip_frames ({clip_frames}): lower the gaps or plan longer clips")
        self.input_size, self.output_size = input_size, output_size
        self.preset, self.split, self.length, self.render_size = preset, split, length, render_size
        self.augment, self.seed, self.clip_frames = augment, seed, clip_frames
        self.min_frame_gap, self.max_frame_gap, self.long_frame_gap = min_frame_gap, max_frame_gap, long_frame_gap
        self._seeds = split_seeds(split, length, offset=seed)

    def __len__(self) -> int:
        return self.length

    def pair_info(self, index: int) -> PairInfo:
        """The clip, frames and augmentation of item ``index`` (no rendering)."""
        rng = np.random.default_rng([self.seed, index])
        params = sample_augmentation(rng, self.augment) if self.augment else NO_AUGMENTATION
        if self.long_frame_gap is not None and rng.random() < 0.5:              # half the pairs far apart
            gap = int(rng.integers(self.max_frame_gap + 1, self.long_frame_gap + 1))
        else:
            gap = int(rng.integers(self.min_frame_gap, self.max_frame_gap + 1))
        current = int(rng.integers(gap, self.clip_frames))                       # t in gap .. T-1, so t - d >= 0
        return PairInfo(int(self._seeds[index]), current - gap, current, params)

    def __getitem__(self, index: int) -> dict:
        from mpat_nb.data.synth import SyntheticVideoSource

        info = self.pair_info(index)
        source = SyntheticVideoSource(self.preset, info.clip_seed, self.clip_frames, self.render_size)
        previous, current = source[info.frame_previous], source[info.frame_current]
        return make_pair_sample(previous.image, previous.frame.people, current.image, current.frame.people,
                                info.params, self.input_size, self.output_size, frame_gap=info.frame_gap,
                                clip_key=info.clip_seed)


def augment_frame(image: np.ndarray, people: Sequence[Person], params: AugmentParams, input_size: int,
                  output_size: int) -> tuple[torch.Tensor, FramePeople]:
    """Warp one frame and its people into the square input, as :func:`mpat_nb.data.datasets.make_sample` does.

    image: (H, W, 3) uint8 (grayscale / RGBA converted); returns the input image (3, S, S) float in [0, 1]
    (S = input_size) and its :class:`FramePeople` on the output grid. ``NO_AUGMENTATION`` letterboxes only
    (what evaluation uses, e.g. :mod:`mpat_nb.temporal_metrics`).
    """
    rgb = to_rgb(image)
    source, square = (rgb.shape[1], rgb.shape[0]), (input_size, input_size)
    joints, centres, _ = people_to_arrays(people)                               # (N, K, 3), (N, 2) | None
    joints_in = augment_joints(joints, params, source, square)                 # input pixels; out of view -> absent
    keep = (joints_in[..., 2] > 0).any(axis=1)                                  # people still in view
    joints_out = torch.as_tensor(joints_to_output_coords(joints_in[keep], input_size, output_size), dtype=torch.float32)
    if centres is not None:
        centres_in = augment_points(centres[keep], params, source, square)
        centres_out = torch.as_tensor(joints_to_output_coords(centres_in, input_size, output_size), dtype=torch.float32)
    else:                                                                       # docs/method.md 6, choice 6
        centres_out = centres_and_scales_from_joints(joints_out)[0]
    track_ids = torch.as_tensor([p.track_id for p in people], dtype=torch.int64)[torch.from_numpy(keep)]
    boxes = boxes_from_joints(joints_out, output_size) if len(joints_out) else torch.zeros(0, 4)
    pixels = torch.from_numpy(np.ascontiguousarray(augment_image(rgb, params, square))).permute(2, 0, 1)
    return pixels.float().div_(255.0), FramePeople(joints_out, centres_out.reshape(-1, 2), boxes, track_ids)


def tvf_on_short_gaps(tvf: TVFTargets, frame_gap: torch.Tensor, max_frame_gap: int) -> TVFTargets:
    """The batch's TVF targets with the masks of pairs more than ``max_frame_gap`` frames apart set to 0.

    tvf: collated (B, 2, H, W) fields and (B, H, W) masks; frame_gap: (B,) int64 d of each pair. The TIE learns
    the motion between nearby frames (the supplementary's range-5 window); far pairs teach the HE branch only.
    """
    keep = (frame_gap <= max_frame_gap).to(tvf.forward_mask.dtype)[:, None, None]          # (B, 1, 1)
    return TVFTargets(tvf.forward, tvf.forward_mask * keep, tvf.backward, tvf.backward_mask * keep)
