"""PyTorch datasets for SpatialNet: synthetic frames generated on the fly, PoseTrack and COCO files.

Every dataset turns (image, people) into one training sample the same way (:func:`make_sample`):
augment (letterbox to the square network input, then the random affine + colour jitter), move joints and
centres with the image, scale to the output grid and encode the targets with :mod:`mpat_nb.codec`.

A sample is a dict ``{"image": (3, S, S) float32 in [0, 1], "targets": SpatialTargets}``;
:func:`collate_samples` stacks them into ``images (B, 3, S, S)`` and batched targets.
Synthetic samples are a pure function of (seed, index): the data stream can be resumed exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from mpat_nb.codec import SpatialTargets, collate_targets, encode_targets, joints_to_output_coords
from mpat_nb.data.annotations import Frame, Person
from mpat_nb.data.augment import (
    NO_AUGMENTATION,
    AugmentConfig,
    AugmentParams,
    augment_image,
    augment_joints,
    augment_mask,
    augment_points,
    sample_augmentation,
    to_rgb,
)
from mpat_nb.skeleton import NUM_JOINTS


def make_sample(
    image: np.ndarray,
    people: Sequence[Person],
    params: AugmentParams,
    input_size: int,
    output_size: int,
    *,
    ignore_regions: Sequence[np.ndarray] = (),
    heatmap_sigma: float | None = None,
) -> dict:
    """One training sample from an image and its people.

    image: (H, W, 3) uint8 RGB (grayscale (H, W) and RGBA (H, W, 4) are converted).
    people: their ``joints`` (K, 3) are used, with ``centre`` when every person has one.
    heatmap_sigma: the heatmap Gaussians' std in output pixels (None: ``encode_targets``'s default).
    """
    rgb = to_rgb(image)
    height, width = rgb.shape[:2]
    source, square = (width, height), (input_size, input_size)
    joints, centres, scales = people_to_arrays(people)                   # (N, K, 3), (N, 2) | None, (N,)
    joints_in = augment_joints(joints, params, source, square)          # (N, K, 3) input pixels
    keep = (joints_in[..., 2] > 0).any(axis=1)                          # people still in view
    centres_in = augment_points(centres[keep], params, source, square) if centres is not None else None
    fit = min(input_size / width, input_size / height) * params.scale
    ratio = output_size / input_size
    joints_out = joints_to_output_coords(joints_in[keep], input_size, output_size)
    centres_out = joints_to_output_coords(centres_in, input_size, output_size) if centres_in is not None else None
    ignore = None
    if len(ignore_regions):
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in ignore_regions], 1)
        ignore = cv2.resize(augment_mask(mask, params, square), (output_size, output_size), interpolation=cv2.INTER_NEAREST)
    targets = encode_targets(joints_out, centres_out, scales[keep] * fit * ratio, output_size, ignore_mask=ignore,
                              sigma=heatmap_sigma)
    pixels = torch.from_numpy(np.ascontiguousarray(augment_image(rgb, params, square))).permute(2, 0, 1)
    return {"image": pixels.float().div_(255.0), "targets": targets}


def collate_samples(samples: Sequence[dict]) -> tuple[torch.Tensor, SpatialTargets]:
    """Stack samples: images (B, 3, S, S) and batched targets."""
    return torch.stack([s["image"] for s in samples]), collate_targets([s["targets"] for s in samples])


def people_to_arrays(people: Sequence[Person]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """joints (N, K, 3); centres (N, 2) if every person has one, else None; scales (N,) = box diagonals."""
    if not people:
        return np.zeros((0, NUM_JOINTS, 3)), np.zeros((0, 2)), np.zeros(0)
    joints = np.stack([p.joints for p in people])
    centres = np.stack([p.centre for p in people]) if all(p.centre is not None for p in people) else None
    scales = []
    for person in people:
        box = person.bbox if person.bbox is not None else person.keypoint_box()
        scales.append(float(np.hypot(box[2], box[3])) if box is not None else 0.0)
    return joints, centres, np.asarray(scales)


class SyntheticSpatialDataset(Dataset):
    """Synthetic frames generated on demand: item i is a pure function of (seed, i).

    Items come in blocks of ``clips_in_flight x frames_per_clip``: a block reads ``clips_in_flight`` clips (seeds
    from the split's range; train and val ranges are disjoint), and item i of the block is frame
    ``1 + frame_gap x (i // clips_in_flight)`` of clip ``i % clips_in_flight``. With ``clips_in_flight`` the batch
    size, every batch holds that many different clips, and ``frames_per_clip`` consecutive batches reuse their
    plans (trajectories, backgrounds: about 60 % of the cost of one rendered frame) at frames ``frame_gap`` apart.
    Only the frames an item needs are rendered; frame 0 is never used, so motion blur and camera motion have a past.
    ``frames_per_clip=1`` (the default) is one clip of ``clip_frames`` frames per item, its last frame.
    """

    def __init__(self, input_size: int, output_size: int, *, preset: str = "mixed", split: str = "train",
                 length: int = 100_000, render_size: tuple[int, int] = (256, 256), augment: AugmentConfig | None = AugmentConfig(),
                 seed: int = 0, clip_frames: int = 2, frames_per_clip: int = 1, clips_in_flight: int = 1,
                 frame_gap: int = 3, heatmap_sigma: float | None = None):
        from mpat_nb.data.synth import split_seeds

        if frames_per_clip < 1 or clips_in_flight < 1 or frame_gap < 1:
            raise ValueError(f"frames_per_clip, clips_in_flight and frame_gap must be at least 1, got "
                             f"{frames_per_clip}, {clips_in_flight}, {frame_gap}")
        self.input_size, self.output_size = input_size, output_size
        self.preset, self.split, self.length = preset, split, length
        self.render_size, self.augment, self.seed = render_size, augment, seed
        self.frames_per_clip, self.clips_in_flight, self.frame_gap = frames_per_clip, clips_in_flight, frame_gap
        self.heatmap_sigma = heatmap_sigma
        self.clip_frames = clip_frames if frames_per_clip == 1 else 1 + frame_gap * frames_per_clip
        block = clips_in_flight * frames_per_clip
        self._seeds = split_seeds(split, -(-length // block) * clips_in_flight, offset=seed)
        self._sources: dict[int, object] = {}          # clip index -> SyntheticVideoSource (planned, not rendered)

    def __len__(self) -> int:
        return self.length

    def clip_and_frame(self, index: int) -> tuple[int, int]:
        """(clip index, frame) that item ``index`` renders."""
        if self.frames_per_clip == 1:
            return index, self.clip_frames - 1
        block, within = divmod(index, self.clips_in_flight * self.frames_per_clip)
        slot, clip = divmod(within, self.clips_in_flight)
        return block * self.clips_in_flight + clip, 1 + self.frame_gap * slot

    def __getitem__(self, index: int) -> dict:
        from mpat_nb.data.synth import SyntheticVideoSource

        clip, t = self.clip_and_frame(index)
        source = self._sources.get(clip)
        if source is None:
            source = SyntheticVideoSource(self.preset, int(self._seeds[clip]), self.clip_frames, self.render_size)
            self._sources[clip] = source
            while len(self._sources) > 2 * self.clips_in_flight:        # keep the plans of two blocks' clips
                del self._sources[next(iter(self._sources))]
        rendered = source[t]
        params = sample_augmentation(np.random.default_rng([self.seed, index]), self.augment) if self.augment else NO_AUGMENTATION
        return make_sample(rendered.image, rendered.frame.people, params, self.input_size, self.output_size,
                           heatmap_sigma=self.heatmap_sigma)


class AnnotatedFramesDataset(Dataset):
    """Real annotated frames (PoseTrack17/18 or COCO keypoints) for users who have the data.

    frames: annotated frames whose ``file_name`` is relative to ``image_root``. Use
    :func:`posetrack_frames` or :func:`coco_frames` to build the list from annotation files.
    length: items in total (default one epoch); epochs are reshuffled and item i gets its own
    augmentation, so item i is a pure function of (seed, i).
    """

    def __init__(self, frames: Sequence[Frame], image_root: str | Path, input_size: int, output_size: int, *,
                 augment: AugmentConfig | None = AugmentConfig(), seed: int = 0, length: int | None = None,
                 heatmap_sigma: float | None = None):
        self.frames = [f for f in frames if f.is_labeled and f.people]
        if not self.frames:
            raise ValueError("no labelled frame with people in the given annotations")
        self.image_root = Path(image_root)
        self.input_size, self.output_size, self.augment, self.seed = input_size, output_size, augment, seed
        self.heatmap_sigma = heatmap_sigma
        self.length = length or len(self.frames)
        epochs = -(-self.length // len(self.frames))
        rng = np.random.default_rng(seed)
        self._order = np.concatenate([rng.permutation(len(self.frames)) for _ in range(epochs)])

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        from mpat_nb.data.formats import read_image

        frame = self.frames[int(self._order[index])]
        image = read_image(self.image_root / frame.file_name)
        params = sample_augmentation(np.random.default_rng([self.seed, index]), self.augment) if self.augment else NO_AUGMENTATION
        return make_sample(image, frame.people, params, self.input_size, self.output_size,
                           ignore_regions=frame.ignore_regions, heatmap_sigma=self.heatmap_sigma)


def posetrack_frames(annotations: str | Path) -> list[Frame]:
    """Labelled frames of every PoseTrack17/18 JSON file in a file or folder."""
    from mpat_nb.data.formats import load_posetrack_any

    return [frame for video in load_posetrack_any(annotations) for frame in video.frames if frame.is_labeled]


def coco_frames(annotation_file: str | Path) -> list[Frame]:
    """Frames of a COCO keypoint file (head_bottom / head_top are not in COCO and stay unsupervised)."""
    from mpat_nb.data.formats import load_coco_keypoints

    return load_coco_keypoints(annotation_file)
