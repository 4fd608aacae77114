"""Static drawing: skeletons coloured by track id, boxes, frame strips, and whole annotated clips.

Every function takes and returns RGB ``uint8`` images ``(H, W, 3)`` (never modifies its input) so the
same pictures serve notebooks (matplotlib), widgets and the command line (video files).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from mpat_nb.data.annotations import Frame, Person, Video
from mpat_nb.skeleton import JOINT_COLORS, LIMBS, slots17_to_joints, track_color


def draw_people(
    image: np.ndarray,
    people: Sequence[Person],
    *,
    color_by: str = "track",
    show_ids: bool = True,
    show_boxes: bool = False,
    show_head_boxes: bool = False,
    thickness: int | None = None,
    use_all_keypoints: bool = False,
) -> np.ndarray:
    """Draw the skeletons of ``people`` on a copy of ``image``.

    image: (H, W, 3) uint8 RGB. ``color_by="track"`` colours each person by its track id (the same
    colour in every frame); ``"joint"`` uses the fixed per-joint colours of :mod:`mpat_nb.skeleton`.
    ``use_all_keypoints`` draws synthetic ``keypoints_all`` (hidden joints dashed-grey) instead of the
    visible ``keypoints``.
    """
    if color_by not in ("track", "joint"):
        raise ValueError(f"color_by must be 'track' or 'joint', got {color_by!r}")
    canvas = _as_rgb_uint8(image).copy()
    size = max(canvas.shape[:2])
    thickness = thickness or max(1, round(size / 200))
    for person in people:
        colour = track_color(person.track_id)
        keypoints = person.keypoints_all if (use_all_keypoints and person.keypoints_all is not None) else person.keypoints
        joints = slots17_to_joints(keypoints)  # (K, 3)
        _draw_skeleton(canvas, joints, colour, color_by, thickness)
        if show_boxes and person.bbox is not None:
            _draw_box(canvas, person.bbox, colour, thickness)
        if show_head_boxes and person.bbox_head is not None:
            _draw_box(canvas, person.bbox_head, colour, max(1, thickness - 1))
        if show_ids:
            anchor = _label_anchor(person, joints)
            if anchor is not None:
                _draw_label(canvas, str(person.track_id), anchor, colour, size)
    return canvas


def draw_frame(image: np.ndarray, frame: Frame, **kwargs) -> np.ndarray:
    """Draw every person of an annotated frame (and its ignore regions, hatched) on a copy of ``image``."""
    canvas = _as_rgb_uint8(image).copy()
    for polygon in frame.ignore_regions:
        overlay = canvas.copy()
        cv2.fillPoly(overlay, [np.round(polygon).astype(np.int32)], (40, 40, 40))
        canvas = cv2.addWeighted(overlay, 0.5, canvas, 0.5, 0)
    return draw_people(canvas, frame.people, **kwargs)


def draw_video(frames: np.ndarray, video: Video, **kwargs) -> np.ndarray:
    """Annotate every frame of a clip.

    frames: (T, H, W, 3) uint8 RGB; ``video`` must have T frames. Returns (T, H, W, 3).
    """
    if len(frames) != len(video.frames):
        raise ValueError(f"{len(frames)} images but {len(video.frames)} annotated frames in video {video.name!r}")
    return np.stack([draw_frame(image, frame, **kwargs) for image, frame in zip(frames, video.frames)])


def frame_strip(
    images: Sequence[np.ndarray],
    *,
    labels: Sequence[str] | None = None,
    height: int | None = None,
    gap: int = 4,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Place images side by side (resized to a common height), optional label above each.

    images: sequence of (H_i, W_i, 3) uint8 -> (H', W', 3) uint8.
    """
    if len(images) == 0:
        raise ValueError("frame_strip needs at least one image")
    height = height or max(img.shape[0] for img in images)
    tiles = []
    for index, img in enumerate(images):
        img = _as_rgb_uint8(img)
        width = max(1, round(img.shape[1] * height / img.shape[0]))
        tile = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA) if img.shape[0] != height else img
        if labels is not None:
            banner = np.full((max(14, height // 10), width, 3), background, dtype=np.uint8)
            _put_text(banner, str(labels[index]), (3, banner.shape[0] - 4), (20, 20, 20), banner.shape[0] / 30)
            tile = np.concatenate([banner, tile], axis=0)
        tiles.append(tile)
    spacer = np.full((tiles[0].shape[0], gap, 3), background, dtype=np.uint8)
    parts = []
    for tile in tiles:
        parts.extend([tile, spacer])
    return np.concatenate(parts[:-1], axis=1)


def frame_grid(rows: Sequence[np.ndarray], *, gap: int = 4, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Stack strips vertically (padding narrower ones on the right). rows: (H_i, W_i, 3) each."""
    width = max(r.shape[1] for r in rows)
    padded = []
    for row in rows:
        pad = np.full((row.shape[0], width - row.shape[1], 3), background, dtype=np.uint8)
        padded.extend([np.concatenate([row, pad], axis=1), np.full((gap, width, 3), background, dtype=np.uint8)])
    return np.concatenate(padded[:-1], axis=0)


def pick_frames(num_frames: int, count: int) -> list[int]:
    """``count`` evenly spaced frame indices from ``range(num_frames)`` (first and last included)."""
    if num_frames <= 0:
        return []
    count = min(count, num_frames)
    return sorted({round(i * (num_frames - 1) / max(count - 1, 1)) for i in range(count)})


def label_mask(mask: np.ndarray) -> np.ndarray:
    """Colour an instance-id mask: (H, W) int, 0 = background, id + 1 = person -> (H, W, 3) uint8."""
    colours = np.zeros((int(mask.max()) + 1, 3), dtype=np.uint8)
    for value in range(1, len(colours)):
        colours[value] = track_color(value - 1)
    return colours[mask]


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.shape[2] == 4:
        image = image[..., :3]
    if image.dtype != np.uint8:
        scale = 255.0 if image.dtype.kind == "f" and image.max() <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def _draw_skeleton(canvas: np.ndarray, joints: np.ndarray, colour, color_by: str, thickness: int) -> None:
    """joints: (K, 3) x, y, v; v == 0 is absent, v == 1 (hidden) drawn grey and thin."""
    present = joints[:, 2] > 0
    points = np.round(joints[:, :2]).astype(np.int32)
    for a, b in LIMBS:
        if present[a] and present[b]:
            hidden = joints[a, 2] == 1 or joints[b, 2] == 1  # synthetic keypoints_all: hidden joints
            limb_colour = (150, 150, 150) if hidden else (colour if color_by == "track" else tuple(int(c) for c in JOINT_COLORS[b]))
            cv2.line(canvas, tuple(points[a]), tuple(points[b]), limb_colour, thickness if not hidden else max(1, thickness // 2), cv2.LINE_AA)
    radius = thickness + 1
    for k in np.flatnonzero(present):
        joint_colour = tuple(int(c) for c in JOINT_COLORS[k]) if color_by == "joint" else colour
        cv2.circle(canvas, tuple(points[k]), radius, joint_colour, -1, cv2.LINE_AA)
        cv2.circle(canvas, tuple(points[k]), radius, (0, 0, 0), 1, cv2.LINE_AA)


def _draw_box(canvas: np.ndarray, box: np.ndarray, colour, thickness: int) -> None:
    x, y, w, h = box
    cv2.rectangle(canvas, (round(x), round(y)), (round(x + w), round(y + h)), colour, thickness, cv2.LINE_AA)


def _label_anchor(person: Person, joints: np.ndarray):
    if person.bbox is not None:
        return person.bbox[0], person.bbox[1] - 2
    present = joints[:, 2] > 0
    if not present.any():
        return None
    return joints[present, 0].min(), joints[present, 1].min() - 4


def _draw_label(canvas: np.ndarray, text: str, anchor, colour, size: int) -> None:
    scale = max(0.3, size / 700)
    x, y = int(anchor[0]), int(max(10, anchor[1]))
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(canvas, (x, y - h - 2), (x + w + 2, y + 1), colour, -1)
    _put_text(canvas, text, (x + 1, y - 1), (0, 0, 0), scale)


def _put_text(canvas: np.ndarray, text: str, origin, colour, scale: float) -> None:
    cv2.putText(canvas, text, (int(origin[0]), int(origin[1])), cv2.FONT_HERSHEY_SIMPLEX, max(0.3, scale), colour, 1, cv2.LINE_AA)
