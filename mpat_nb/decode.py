"""From SpatialNet's maps to people: candidates, embeddings, grouping, image coordinates.

Steps (``docs/method.md`` 2.8): (1) optional flip test; (2) heatmap NMS and the top-k candidates per joint;
(3) read the embeddings at the candidates: KE (one scalar per joint map) and SIE = position + SVF;
(4) group into people (associative-embedding greedy rule, :mod:`mpat_nb.grouping`), optionally after
Pose-Guided Grouping refines the embeddings; (5) sub-pixel refinement and mapping back to the image.

Glossary: B images, K = 15 joints, M candidates per joint, H x W output grid, S input size.

Input checks (:class:`~mpat_nb.utils.InputError`, naming the argument and the fix): the maps of
:func:`extract_candidates` / :func:`decode_batch` must be torch tensors (not NumPy arrays) of floating dtype with
matching (B, K, H, W) shapes, and ``maps`` must hold ``heatmaps``, ``ke`` and ``svf``; float64 maps are
decoded in float32. :func:`predict_people` takes a list (or a (T, H, W, 3) array) of images, never one
(H, W, 3) image on its own (pass ``[image]``); each image is uint8 0..255, or floating-point in [0, 1], which is
scaled to 0..255 (``(image * 255).round()``); other floating ranges are refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from mpat_nb.codec import instance_embedding_gathered, subpixel_refine, svf_to_pixels, topk_candidates
from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.data.augment import NO_AUGMENTATION, augment_image, augmentation_matrix, to_rgb
from mpat_nb.grouping import GroupingConfig, group_candidates
from mpat_nb.models.pgg import PoseGuidedGrouping
from mpat_nb.skeleton import FLIP_PERMUTATION, joints_to_slots17
from mpat_nb.utils import InputError

#: Which embedding the grouping compares: the AE baseline uses KE alone.
EMBEDDINGS = ("ke", "sie", "ke+sie")


@dataclass(frozen=True)
class DecodeConfig:
    """Decoding choices (the paper is silent; defaults from AE / docs/method.md 2.8)."""

    top_k: int = 30                    # candidates per joint (AE)
    nms_kernel: int = 3                # 3 x 3 max-pool NMS (AE)
    embedding: str = "ke"              # "ke" (AE baseline), "sie", or "ke+sie"
    ke_bandwidth: float = 1.0          # KE units per bandwidth (AE tag threshold 1)
    sie_bandwidth: float = 6.0 / 128   # SIE bandwidth as a fraction of the output width (6 px at 128)
    flip_test: bool = False            # average with the horizontally flipped image
    pgg_iterations: int = 0            # > 0: Pose-Guided Grouping refines KE + SIE with R mean-shift steps first
    grouping: GroupingConfig = field(default_factory=GroupingConfig)


def tuned_decode_config(model: torch.nn.Module, **changes) -> DecodeConfig:
    """``DecodeConfig(**changes)`` with the bandwidths tuned for ``model``'s weights where ``changes`` does not set
    them (``SpatialNet.decode_tuning``, read from the checkpoint's "decode" entry; DecodeConfig's defaults if none).

    E.g. ``tuned_decode_config(model, embedding="ke+sie", pgg_iterations=1)`` is how ``track --pgg`` decodes.
    """
    return DecodeConfig(**{**getattr(model, "decode_tuning", {}), **changes})


@dataclass
class Candidates:
    """One image's candidates. xy (K, M, 2) output pixels; scores (K, M); ke (K, M, E); sie (K, M, 2)."""

    xy: np.ndarray
    scores: np.ndarray
    ke: np.ndarray
    sie: np.ndarray

    def embeddings(self, config: DecodeConfig, output_width: int) -> np.ndarray:
        """(K, M, D) the grouping embedding chosen by ``config.embedding``, in bandwidth units."""
        if config.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {config.embedding!r}")
        parts = []
        if "ke" in config.embedding:
            parts.append(self.ke / config.ke_bandwidth)
        if "sie" in config.embedding:
            parts.append(self.sie / (config.sie_bandwidth * output_width))
        return np.concatenate(parts, axis=2)


def model_maps(model: torch.nn.Module, images: torch.Tensor, *, flip_test: bool = False) -> dict[str, torch.Tensor]:
    """Run SpatialNet and return the last stack's maps (optionally averaged with the flipped image).

    images: (B, 3, S, S) in [0, 1]. Returns heatmaps (B, K, H, W), ke (B, K, H, W, E) with E = 1 (E = 2
    with the flip test: AE concatenates the two tags), svf (B, 2, H, W) in output pixels, features.
    """
    maps = maps_from_output(model(images))
    if flip_test:
        heatmaps, ke, svf = maps["heatmaps"], maps["ke"], maps["svf"]
        flipped = model(torch.flip(images, dims=[3]))
        heatmaps_f = torch.flip(flipped.heatmaps[:, -1], dims=[3])[:, FLIP_PERMUTATION]
        ke_f = torch.flip(flipped.keypoint_embedding[:, -1], dims=[3])[:, FLIP_PERMUTATION].unsqueeze(-1)
        svf_f = svf_to_pixels(torch.flip(flipped.svf[:, -1], dims=[3]))
        svf_f = torch.stack([-svf_f[:, 0], svf_f[:, 1]], dim=1)          # mirrored x offsets change sign
        maps.update(heatmaps=(heatmaps + heatmaps_f) / 2, ke=torch.cat([ke, ke_f], dim=-1), svf=(svf + svf_f) / 2)
    return maps


def maps_from_output(output) -> dict[str, torch.Tensor]:
    """The decoder's maps from one :class:`~mpat_nb.models.spatialnet.SpatialNetOutput` (last stack, no flip).

    Returns heatmaps (B, K, H, W), ke (B, K, H, W, 1), svf (B, 2, H, W) in output pixels, features (B, C, H, W).
    """
    return {"heatmaps": output.heatmaps_final, "ke": output.keypoint_embedding_final.unsqueeze(-1),
            "svf": svf_to_pixels(output.svf_final), "features": output.features}


def extract_candidates(heatmaps: torch.Tensor, ke: torch.Tensor, svf: torch.Tensor, config: DecodeConfig = DecodeConfig()) -> list[Candidates]:
    """Top-k NMS candidates per joint with their KE and SIE, for every image of the batch.

    heatmaps: (B, K, H, W); ke: (B, K, H, W, E) or (B, K, H, W); svf: (B, 2, H, W) in output pixels.
    """
    heatmaps, ke, svf = check_maps(heatmaps, ke, svf)
    if ke.ndim == 4:
        ke = ke.unsqueeze(-1)
    batch, num_joints, height, width = heatmaps.shape
    k = min(config.top_k, height * width)
    scores, ys, xs = topk_candidates(heatmaps, k, nms_kernel=config.nms_kernel)     # (B, K, M)
    flat = (ys * width + xs)                                                        # (B, K, M)
    ke_at = ke.reshape(batch, num_joints, height * width, -1).gather(
        2, flat.unsqueeze(-1).expand(-1, -1, -1, ke.shape[-1]))                     # (B, K, M, E)
    sie = instance_embedding_gathered(svf.float(), flat.reshape(batch, -1)).reshape(*flat.shape, 2)  # SIE(p) = p + v(p)
    ref_x, ref_y = subpixel_refine(heatmaps, ys, xs)
    xy = torch.stack([ref_x, ref_y], dim=-1)
    to_np = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
    return [Candidates(to_np(xy[b]), to_np(scores[b]), to_np(ke_at[b]), to_np(sie[b])) for b in range(batch)]


#: The keys of the ``maps`` dict :func:`decode_batch` reads (:func:`model_maps`, :func:`maps_from_output`)
MAP_KEYS = ("heatmaps", "ke", "svf")


def check_maps(heatmaps, ke, svf) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three maps, checked: InputError naming the map for a non-tensor, a non-floating dtype, or a shape that
    is not heatmaps (B, K, H, W), ke (B, K, H, W[, E]), svf (B, 2, H, W) with one B, K, H, W; float64 -> float32."""
    checked = []
    for name, value in (("heatmaps", heatmaps), ("ke", ke), ("svf", svf)):
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{name} is a {type(value).__module__}.{type(value).__name__}, expected a torch tensor: "
                             "pass torch.from_numpy(array) (maps from model_maps / maps_from_output are tensors)")
        if not value.is_floating_point():
            raise InputError(f"{name} has dtype {value.dtype}, expected floating point (float32): pass "
                             f"{name}.float()")
        checked.append(value.float() if value.dtype == torch.float64 else value)
    heatmaps, ke, svf = checked
    if heatmaps.ndim != 4:
        raise InputError(f"heatmaps has shape {tuple(heatmaps.shape)}, expected (B, K, H, W): add the batch "
                         "dimension with heatmaps.unsqueeze(0) for one image")
    batch, joints, height, width = heatmaps.shape
    if ke.ndim not in (4, 5) or tuple(ke.shape[:4]) != (batch, joints, height, width):
        raise InputError(f"ke has shape {tuple(ke.shape)}, expected (B, K, H, W) or (B, K, H, W, E) = "
                         f"({batch}, {joints}, {height}, {width}[, E]) to match heatmaps {tuple(heatmaps.shape)}")
    if tuple(svf.shape) != (batch, 2, height, width):
        raise InputError(f"svf has shape {tuple(svf.shape)}, expected (B, 2, H, W) = ({batch}, 2, {height}, "
                         f"{width}) to match heatmaps {tuple(heatmaps.shape)}")
    return heatmaps, ke, svf


def decode_batch(maps: dict[str, torch.Tensor], config: DecodeConfig = DecodeConfig(),
                 refine: Callable[[Candidates, np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
    """Group every image's candidates into poses (P, K, 3) x, y, score in output pixels.

    refine: optional function (candidates, embeddings (K, M, D)) -> refined embeddings. By default it is
    Pose-Guided Grouping when ``config.pgg_iterations > 0`` (the one argument that swaps AE grouping for
    PGG, :func:`pgg_refiner`), else nothing.
    """
    missing = [key for key in MAP_KEYS if not (hasattr(maps, "keys") and key in maps)]
    if missing:
        given = sorted(maps.keys()) if hasattr(maps, "keys") else type(maps).__name__
        raise InputError(f"maps lacks {missing} (has {given}): pass the dict of model_maps(model, images) or "
                         "maps_from_output(output), with heatmaps (B, K, H, W), ke (B, K, H, W, E), svf (B, 2, H, W)")
    check_maps(maps["heatmaps"], maps["ke"], maps["svf"])
    height_width = maps["heatmaps"].shape[-1]
    if refine is None and config.pgg_iterations:
        pgg = PoseGuidedGrouping(config.pgg_iterations, ke_bandwidth=config.ke_bandwidth,
                                 sie_bandwidth=config.sie_bandwidth).to(maps["heatmaps"].device)
        refine = pgg_refiner(pgg, height_width, config)
    poses = []
    for candidates in extract_candidates(maps["heatmaps"], maps["ke"], maps["svf"], config):
        embeddings = candidates.embeddings(config, height_width)
        if refine is not None:
            embeddings = refine(candidates, embeddings)
        image_poses, _ = group_candidates(candidates.xy, candidates.scores, embeddings, config.grouping)
        poses.append(image_poses)
    return poses


def pgg_refiner(pgg: PoseGuidedGrouping, output_width: int, config: DecodeConfig | None = None) -> Callable[[object, np.ndarray], np.ndarray]:
    """A ``refine(candidates, embeddings) -> refined`` function for ``decode_batch(..., refine=...)``.

    pgg: the module (its device is used); output_width: W of the maps being decoded; config: the
    ``DecodeConfig`` given to ``decode_batch`` (default ``DecodeConfig()``).

    For one image: the candidates with score > ``config.grouping.detection_threshold`` (the ones the grouping
    will use) are the points; PGG runs on their KE and SIE together, whatever ``config.embedding`` is (the
    product kernel is the point of PGG). The refined KE and SIE are then laid out as ``config.embedding``
    asks, in the config's bandwidths, so the grouping threshold keeps its meaning. Candidates at or below the
    threshold neither move nor attract: they keep their input embeddings (the grouping ignores them anyway),
    so the refinement happens among real detections only.
    """
    config = DecodeConfig() if config is None else config

    def refine(candidates, embeddings: np.ndarray) -> np.ndarray:
        num_joints, num_candidates, num_ke = candidates.ke.shape
        device = pgg.log_bandwidths.device
        ke = torch.as_tensor(candidates.ke, dtype=torch.float32, device=device).reshape(1, -1, num_ke)
        sie = torch.as_tensor(candidates.sie, dtype=torch.float32, device=device).reshape(1, -1, 2)
        keep = np.asarray(candidates.scores) > config.grouping.detection_threshold               # (K, M)
        valid = torch.as_tensor(keep, device=device).reshape(1, -1)
        with torch.no_grad():
            refined = pgg(ke, sie, valid, output_width)
        to_numpy = lambda t: t[0].reshape(num_joints, num_candidates, -1).float().cpu().numpy()  # noqa: E731
        moved = dataclasses.replace(candidates, ke=to_numpy(refined.ke), sie=to_numpy(refined.sie))
        refined_embeddings = moved.embeddings(config, output_width)                             # (K, M, D)
        if refined_embeddings.shape != np.shape(embeddings):
            raise ValueError(f"pgg_refiner: refined embeddings {refined_embeddings.shape} do not match the decoder's "
                             f"{np.shape(embeddings)}; build the refiner with the DecodeConfig given to decode_batch")
        return np.where(keep[..., None], refined_embeddings, embeddings).astype(np.asarray(embeddings).dtype)

    return refine


def poses_to_people(poses: np.ndarray, image_size: tuple[int, int], input_size: int, output_size: int) -> list[Person]:
    """Map poses (P, K, 3) from the output grid back to the original image and wrap them as people.

    image_size: (width, height) of the original image, which was letterboxed into the S x S input.
    Person ids are 0..P-1 (the tracker assigns real track ids).
    """
    scale = input_size / output_size
    inverse = np.linalg.inv(np.vstack([augmentation_matrix(NO_AUGMENTATION, image_size, (input_size, input_size)), [0, 0, 1]]))
    people = []
    for index, pose in enumerate(poses):
        present = pose[:, 2] > 0
        xy_input = (pose[:, :2] + 0.5) * scale - 0.5                       # output grid -> input pixels
        xy_image = xy_input @ inverse[:2, :2].T + inverse[:2, 2]           # input -> original image
        joints = np.zeros((len(pose), 3))
        joints[present, :2] = xy_image[present]
        joints[present, 2] = 1.0
        scores = np.where(present, pose[:, 2], 0.0)
        keypoints = joints_to_slots17(joints)
        keypoint_scores = joints_to_slots17(scores[:, None])[:, 0]
        people.append(Person(keypoints=keypoints, track_id=index, scores=keypoint_scores, score=float(scores.mean())))
    return people


@torch.no_grad()
def predict_people(model: torch.nn.Module, images: Sequence[np.ndarray], config: DecodeConfig = DecodeConfig(), *,
                   batch_size: int = 8, device: torch.device | str | None = None,
                   refine: Callable[[Candidates, np.ndarray], np.ndarray] | None = None) -> list[list[Person]]:
    """Detect and group people in RGB images of any size (letterboxed to the model's input size).

    images: a list of (H, W, 3) images, or a (T, H, W, 3) array; uint8, or floating point in [0, 1] (scaled to
    0..255). One (H, W, 3) image on its own is refused (InputError): pass ``[image]``.
    """
    images = check_images(images)
    input_size, output_size = model.config.input_size, model.config.output_size
    device = device or next(model.parameters()).device
    model.eval()
    results: list[list[Person]] = []
    for start in range(0, len(images), batch_size):
        chunk = [to_rgb(img) for img in images[start:start + batch_size]]
        tensor = torch.stack([prepare_image(img, input_size) for img in chunk]).to(device)          # (B, 3, S, S)
        maps = model_maps(model, tensor, flip_test=config.flip_test)
        for img, poses in zip(chunk, decode_batch(maps, config, refine)):
            results.append(poses_to_people(poses, (img.shape[1], img.shape[0]), input_size, output_size))
    return results


def prepare_image(image: np.ndarray, input_size: int) -> torch.Tensor:
    """What SpatialNet reads of one image at inference: (3, S, S) float32 in [0, 1], the image (any size; grayscale
    and RGBA converted) letterboxed into the S x S input without augmentation. The one preparation of the decoder,
    the tracker's observer and the measurements."""
    square = augment_image(to_rgb(image), NO_AUGMENTATION, (input_size, input_size))                # (S, S, 3)
    return torch.from_numpy(np.ascontiguousarray(square)).permute(2, 0, 1).float().div_(255.0)


def check_images(images) -> list[np.ndarray]:
    """:func:`predict_people`'s images as a list of uint8 arrays; InputError naming the image for one image
    given where a list is expected, a non-array, a floating image outside [0, 1] or with NaN."""
    if isinstance(images, torch.Tensor):
        raise InputError("images is a torch tensor: pass a list of (H, W, 3) uint8 NumPy images (tensor.numpy())")
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and (images.ndim == 2 or images.shape[-1] in (1, 3, 4)):
        raise InputError(f"images is one image of shape {images.shape}, expected a list of images: pass [image] "
                         "(a (T, H, W, 3) array is read as T images)")
    checked = []
    for index, image in enumerate(images):
        image = np.asarray(image)
        if image.dtype.kind == "f":
            if not np.isfinite(image).all():
                raise InputError(f"image {index} holds NaN or inf values")
            if image.size and (image.min() < 0 or image.max() > 1):
                raise InputError(f"image {index} is {image.dtype} with values in [{image.min():g}, {image.max():g}]: "
                                 "give uint8 0..255, or floating point in [0, 1] (image / 255)")
            image = np.round(image * 255.0).astype(np.uint8)
        elif image.dtype.kind in "iu" and image.dtype != np.uint8:
            if image.size and (image.min() < 0 or image.max() > 255):
                raise InputError(f"image {index} is {image.dtype} with values in [{image.min()}, {image.max()}]: "
                                 "give uint8 0..255 (a 16-bit image: (image / 257).round().astype(np.uint8))")
            image = image.astype(np.uint8)
        elif image.dtype != np.uint8:
            raise InputError(f"image {index} has dtype {image.dtype}: give uint8 0..255, or floating point in [0, 1]")
        checked.append(image)
    return checked


@torch.no_grad()
def predict_videos(model: torch.nn.Module, clips, decode_config: DecodeConfig = DecodeConfig()):
    """Per-frame poses for each clip, as Videos aligned with the clips' ground truth (ids per frame)."""
    videos = []
    for clip in clips:
        people = predict_people(model, list(clip.frames), decode_config)
        frames = [Frame(file_name=gt.file_name, image_id=gt.image_id, width=gt.width, height=gt.height, people=found)
                  for gt, found in zip(clip.video.frames, people)]
        videos.append(Video(name=clip.video.name, frames=frames))
    return videos
