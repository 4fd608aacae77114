"""Training augmentation (supplementary material): hue, saturation, brightness, contrast, rotation
+-30 degrees, horizontal flip with left/right swap, scale 0.75-1.25, plus a small translation.

The geometric part is one affine warp from the source image to the network input (it also letterboxes
images of any size and aspect into the square input). Parameters are sampled once and can be applied to
several images, which is how TemporalNet gets *identical* augmentation on both frames of a pair.

Glossary: N people, K = 15 joints; joints ``(N, K, 3)`` hold x, y, v in pixels (v > 0 present).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mpat_nb.skeleton import FLIP_PERMUTATION


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation (defaults from the paper's supplementary material)."""

    rotation_deg: float = 30.0          # +- degrees (supplementary)
    scale_range: tuple[float, float] = (0.75, 1.25)  # (supplementary)
    translate_frac: float = 0.05        # +- fraction of the input size [I]: small, keeps people in view
    flip_prob: float = 0.5              # horizontal flip with left/right joint swap (supplementary)
    hue_deg: float = 12.0               # +- degrees on the hue circle [I]
    saturation: float = 0.3             # +- relative change [I]
    brightness: float = 0.2             # +- fraction of 255 [I]
    contrast: float = 0.3               # +- relative change around the mean grey [I]


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation; apply it to as many images as you like."""

    angle_deg: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the output size
    flip: bool = False
    hue_deg: float = 0.0
    saturation: float = 1.0
    brightness: float = 0.0
    contrast: float = 1.0


NO_AUGMENTATION = AugmentParams()


def sample_augmentation(rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> AugmentParams:
    """Draw one set of augmentation parameters."""
    return AugmentParams(
        angle_deg=float(rng.uniform(-config.rotation_deg, config.rotation_deg)),
        scale=float(rng.uniform(*config.scale_range)),
        shift=(float(rng.uniform(-config.translate_frac, config.translate_frac)),
               float(rng.uniform(-config.translate_frac, config.translate_frac))),
        flip=bool(rng.random() < config.flip_prob),
        hue_deg=float(rng.uniform(-config.hue_deg, config.hue_deg)),
        saturation=float(1.0 + rng.uniform(-config.saturation, config.saturation)),
        brightness=float(rng.uniform(-config.brightness, config.brightness) * 255.0),
        contrast=float(1.0 + rng.uniform(-config.contrast, config.contrast)),
    )


def augmentation_matrix(params: AugmentParams, image_size: tuple[int, int], output_size: tuple[int, int]) -> np.ndarray:
    """The (2, 3) affine map from source pixels to output pixels.

    image_size, output_size: (width, height). Without augmentation the image is letterboxed: scaled to
    fit the output and centred. Then scale, rotate about the centre, shift, and mirror if flipped
    (pixel-centre convention x' = W_out - 1 - x).
    """
    src_w, src_h = image_size
    out_w, out_h = output_size
    fit = min(out_w / src_w, out_h / src_h)
    src_centre = np.array([(src_w - 1) / 2.0, (src_h - 1) / 2.0])
    out_centre = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0])
    theta = np.deg2rad(params.angle_deg)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) * (fit * params.scale)
    translation = out_centre + np.array(params.shift) * np.array([out_w, out_h]) - rotation @ src_centre
    matrix = np.concatenate([rotation, translation[:, None]], axis=1)
    if params.flip:
        mirror = np.array([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = (mirror @ np.vstack([matrix, [0, 0, 1]]))[:2]
    return matrix


def augment_image(image: np.ndarray, params: AugmentParams, output_size: tuple[int, int]) -> np.ndarray:
    """Warp and colour-jitter one image. image: (H, W, 3) uint8 RGB -> (H_out, W_out, 3) uint8."""
    matrix = augmentation_matrix(params, (image.shape[1], image.shape[0]), output_size)
    warped = cv2.warpAffine(image, matrix, output_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return jitter_colour(warped, params)


def augment_mask(mask: np.ndarray, params: AugmentParams, output_size: tuple[int, int]) -> np.ndarray:
    """Warp a label mask (H, W) with nearest-neighbour sampling (no colour change)."""
    matrix = augmentation_matrix(params, (mask.shape[1], mask.shape[0]), output_size)
    return cv2.warpAffine(mask, matrix, output_size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def augment_points(points: np.ndarray, params: AugmentParams, image_size: tuple[int, int], output_size: tuple[int, int]) -> np.ndarray:
    """Map points (..., 2) x, y from source to output pixels (no left/right swap: use for centres)."""
    matrix = augmentation_matrix(params, image_size, output_size)
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def augment_joints(joints: np.ndarray, params: AugmentParams, image_size: tuple[int, int], output_size: tuple[int, int]) -> np.ndarray:
    """Map joints (N, K, 3) to output pixels; a flip also swaps left and right joints.

    Joints that leave the output image become absent (v = 0, x = y = 0). Pixel centres sit at integer
    coordinates, so the image spans [-0.5, W - 0.5) x [-0.5, H - 0.5), as the generator labels visibility.
    """
    joints = np.asarray(joints, dtype=np.float64)
    moved = joints.copy()
    moved[..., :2] = augment_points(joints[..., :2], params, image_size, output_size)
    if params.flip:
        moved = moved[:, FLIP_PERMUTATION]
    out_w, out_h = output_size
    inside = ((moved[..., 0] >= -0.5) & (moved[..., 0] < out_w - 0.5)
              & (moved[..., 1] >= -0.5) & (moved[..., 1] < out_h - 0.5))
    keep = (moved[..., 2] > 0) & inside
    moved[~keep] = 0.0
    return moved


def jitter_colour(image: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Hue rotation, saturation scale, then contrast and brightness. (H, W, 3) uint8 -> same."""
    if params.hue_deg == 0 and params.saturation == 1 and params.brightness == 0 and params.contrast == 1:
        return image
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + params.hue_deg * 256.0 / 360.0) % 256.0
    hsv[..., 1] = np.clip(hsv[..., 1] * params.saturation, 0, 255)
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).astype(np.float32)
    mean = rgb.mean()
    rgb = (rgb - mean) * params.contrast + mean + params.brightness
    return np.clip(rgb, 0, 255).astype(np.uint8)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 -> (H, W, 3) uint8 RGB."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[..., :3]
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image
