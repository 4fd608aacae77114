"""Drawing for the synthetic generator: clothed people, occluders, cluttered backgrounds, sensor effects.

:mod:`mpat_nb.data.synth` decides *what* is where; this module turns it into pixels with OpenCV.
Everything draws into caller-owned buffers (an RGB frame and an instance-id mask) and only inside a
region of interest (ROI) around the thing drawn, so a person costs a few dozen small OpenCV calls.

How a person is drawn (:func:`draw_person`):

1. Body parts (torso, pelvis, neck, head, upper arms, forearms, hands, thighs, shins, feet) become a
   small *label image* over the person's ROI: each pixel says which clothing *source* covers it (skin,
   hair, top, bottom, shoes, eyes) and a *shade* (normal, far side, outline). Parts are drawn far to
   near, so an arm in front of the torso covers it, and each part first draws a dark outline.
2. Two binary pattern tiles (stripes, checks, dots, ...), one for the top and one for the bottom, are
   laid over the ROI at the person's scale and anchored at the pelvis, so the pattern moves and
   shrinks with the person.
3. ``index = label * 4 + top_pattern + 2 * bottom_pattern`` looks up the person's palette: one
   ``np.take`` gives the RGB pixels, and ``cv2.copyTo`` pastes them (and the track id into the
   instance mask) where the label is non-zero. People are drawn far to near, so nearer people occlude.

Glossary: H x W image, P body points (:data:`mpat_nb.data.body.BODY_POINT_NAMES`), colours RGB uint8.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from mpat_nb.data.body import CROTCH_CORNERS, POINT, SHOULDER_CORNERS, WAIST_CORNERS, BodyShape
from mpat_nb.skeleton import JOINT_TO_SLOT17

# ----------------------------------------------------------------------------------------------
# Labels: source x shade
# ----------------------------------------------------------------------------------------------
SKIN, HAIR, TOP, BOTTOM, SHOES, EYES = 1, 2, 3, 4, 5, 6
NORMAL, FAR, OUTLINE = 0, 1, 2
SHADE = {NORMAL: 1.0, FAR: 0.78, OUTLINE: 0.45}   # far-side limbs darker, outlines darkest
NUM_LABELS = 7 * 3                                 # label = source * 3 + shade; 0 = empty
PATTERNS: tuple[str, ...] = ("solid", "horizontal_stripes", "vertical_stripes", "diagonal_stripes", "checks", "dots")
TILE = 16   # pattern tile side in pixels = one pattern period


def label(source: int, shade: int = NORMAL) -> int:
    """The label-image value of a clothing source drawn with a shade."""
    return source * 3 + shade


# ----------------------------------------------------------------------------------------------
# Appearance
# ----------------------------------------------------------------------------------------------
@dataclass
class Appearance:
    """What one identity wears; fixed for the whole clip (across shot changes too).

    colours are RGB uint8 triples; ``*_pattern`` names one of :data:`PATTERNS`, drawn in the second
    colour over the first with a period of ``*_period`` metres.
    """

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    top: tuple[int, int, int]
    top_second: tuple[int, int, int]
    top_pattern: str
    top_period: float
    bottom: tuple[int, int, int]
    bottom_second: tuple[int, int, int]
    bottom_pattern: str
    bottom_period: float
    shoes: tuple[int, int, int]
    long_sleeves: bool
    shorts: bool
    hair_style: str        # "short", "long" or "bald"

    def palette(self) -> np.ndarray:
        """(NUM_LABELS * 4, 3) uint8: the colour of ``label * 4 + top_bit + 2 * bottom_bit``."""
        table = np.zeros((7, 4, 3), dtype=np.float64)               # unshaded colour per source and bits
        table[SKIN], table[HAIR], table[SHOES], table[EYES] = self.skin, self.hair, self.shoes, (25, 20, 20)
        table[TOP] = [self.top, self.top_second, self.top, self.top_second]              # bit 0 = top pattern
        table[BOTTOM] = [self.bottom, self.bottom, self.bottom_second, self.bottom_second]  # bit 1 = bottom pattern
        shades = np.array([SHADE[NORMAL], SHADE[FAR], SHADE[OUTLINE]])
        shaded = table[:, None] * shades[None, :, None, None]          # (source, shade, bits, rgb)
        return np.clip(np.round(shaded), 0, 255).astype(np.uint8).reshape(-1, 3)


# Natural skin and hair tones (RGB); clothing colours are drawn in HSV.
_SKIN_TONES = np.array([(255, 219, 190), (241, 194, 160), (224, 172, 130), (198, 134, 92), (161, 102, 64),
                        (120, 75, 45), (90, 56, 36)], dtype=np.float64)
_HAIR_TONES = np.array([(20, 16, 14), (60, 40, 25), (110, 75, 40), (200, 160, 90), (150, 60, 30),
                        (170, 170, 170)], dtype=np.float64)
_TROUSER_TONES = np.array([(40, 60, 110), (30, 30, 35), (150, 130, 95), (80, 85, 90), (60, 80, 50)], dtype=np.float64)


def sample_appearances(rng: np.random.Generator, count: int) -> list[Appearance]:
    """``count`` clothing sets whose top colours are pairwise well apart (so identity is learnable
    from appearance): each top colour is the best of 12 random candidates by distance to the others."""
    appearances: list[Appearance] = []
    chosen_tops: list[np.ndarray] = []
    for _ in range(count):
        candidates = np.array([_random_clothing_colour(rng) for _ in range(12)])
        if chosen_tops:
            distances = np.linalg.norm(candidates[:, None] - np.array(chosen_tops)[None], axis=2).min(axis=1)
            top = candidates[int(np.argmax(distances))]
        else:
            top = candidates[0]
        chosen_tops.append(top)
        skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.92, 1.05)
        bottom = (_TROUSER_TONES[rng.integers(len(_TROUSER_TONES))] * rng.uniform(0.8, 1.2)
                  if rng.random() < 0.6 else _random_clothing_colour(rng))
        top_pattern = PATTERNS[rng.integers(len(PATTERNS))] if rng.random() < 0.75 else "solid"
        bottom_pattern = "solid"
        if rng.random() < 0.2:
            bottom_pattern = rng.choice(["checks", "vertical_stripes", "horizontal_stripes"])
        appearances.append(Appearance(
            skin=_rgb(skin),
            hair=_rgb(_HAIR_TONES[rng.integers(len(_HAIR_TONES))] * rng.uniform(0.85, 1.15)),
            top=_rgb(top),
            top_second=_rgb(_contrasting(rng, top)),
            top_pattern=str(top_pattern),
            top_period=float(rng.uniform(0.06, 0.16)),
            bottom=_rgb(bottom),
            bottom_second=_rgb(_contrasting(rng, bottom)),
            bottom_pattern=str(bottom_pattern),
            bottom_period=float(rng.uniform(0.08, 0.2)),
            shoes=_rgb(rng.uniform(10, 240, 3) if rng.random() < 0.3 else np.full(3, rng.uniform(15, 90))),
            long_sleeves=bool(rng.random() < 0.5),
            shorts=bool(rng.random() < 0.25),
            hair_style=str(rng.choice(["short", "long", "bald"], p=[0.6, 0.3, 0.1])),
        ))
    return appearances


def _random_clothing_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour: saturated in 2 of 3 draws, otherwise muted or near grey."""
    hue, saturation_draw, saturation_range, value = rng.random(4)
    saturation = 0.55 + 0.45 * saturation_range if saturation_draw < 0.67 else 0.35 * saturation_range
    return np.array(colorsys.hsv_to_rgb(hue, saturation, 0.27 + 0.71 * value)) * 255


def _contrasting(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """A second pattern colour: much lighter or darker than ``colour``, or white / black."""
    if rng.random() < 0.4:
        return np.full(3, 245.0) if colour.mean() < 128 else np.full(3, 20.0)
    factor = rng.uniform(0.35, 0.6) if colour.mean() > 110 else rng.uniform(1.8, 2.6)
    return np.clip(colour * factor + (0 if factor < 1 else 30), 0, 255)


def _rgb(values) -> tuple[int, int, int]:
    """Three numbers -> an RGB tuple of ints in 0..255 (plain Python: called often)."""
    r, g, b = (min(255, max(0, int(round(float(v))))) for v in values)
    return r, g, b


def _pattern_bits(pattern: str, shape: tuple[int, int], anchor: np.ndarray, period_pixels: float) -> np.ndarray:
    """(h, w) uint8 0/1: the pattern over an ROI, one tile period = ``period_pixels``, tile origin at
    ``anchor`` (ROI x, y). Patterns are axis-aligned, so a tile row and column index per ROI row and
    column suffice: two small lookups instead of a per-pixel warp."""
    scale = TILE / max(period_pixels, 1e-6)
    rows = np.floor((np.arange(shape[0]) - anchor[1]) * scale).astype(np.intp) % TILE
    columns = np.floor((np.arange(shape[1]) - anchor[0]) * scale).astype(np.intp) % TILE
    return np.take(np.take(pattern_tile(pattern), rows, axis=0), columns, axis=1)


@lru_cache(maxsize=None)
def pattern_tile(pattern: str) -> np.ndarray:
    """(TILE, TILE) uint8 0/1: one period of a clothing pattern, seamless when tiled."""
    y, x = np.mgrid[0:TILE, 0:TILE]
    half = TILE // 2
    tiles = {
        "solid": np.zeros((TILE, TILE), bool),
        "horizontal_stripes": y < half,
        "vertical_stripes": x < half,
        "diagonal_stripes": (x + y) % TILE < half,
        "checks": (x < half) ^ (y < half),
        "dots": (x - half + 0.5) ** 2 + (y - half + 0.5) ** 2 < (0.3 * TILE) ** 2,
    }
    if pattern not in tiles:
        raise ValueError(f"unknown pattern {pattern!r}; use one of {PATTERNS}")
    tile = tiles[pattern].astype(np.uint8)
    tile.setflags(write=False)
    return tile


# ----------------------------------------------------------------------------------------------
# People
# ----------------------------------------------------------------------------------------------
# Capsule parts: (start point, end point, width field of BodyShape, tie-break). The torso, pelvis and
# head are drawn separately. Lower segments break ties after upper ones (a hand over its forearm).
_LIMB_PARTS = tuple(
    (f"{side}_{start}", f"{side}_{end}", width, tie)
    for side in ("left", "right")
    for start, end, width, tie in (
        ("shoulder", "elbow", "upper_arm_width", 0), ("elbow", "wrist", "forearm_width", 1),
        ("wrist", "hand_tip", "hand_width", 2), ("hip", "knee", "thigh_width", 0),
        ("knee", "ankle", "shin_width", 1), ("ankle", "toe", "foot_width", 2),
    )
)
_TORSO_ROWS = np.concatenate([SHOULDER_CORNERS, WAIST_CORNERS])
_PELVIS_ROWS = np.concatenate([WAIST_CORNERS, CROTCH_CORNERS])
_LIMB_BIAS = 0.04   # m: a limb level with the torso is drawn in front of it; further back it is behind


@dataclass
class PersonStyle:
    """What drawing one identity needs, computed once per clip by :func:`person_style`.

    capsule_*: (C,) arrays over the capsule parts (neck, optional long hair, 12 limb segments):
    point rows, clothing source, width (m), whether it is a limb (shaded when behind the torso), and
    the tie-break order for equal depths.
    """

    shape: BodyShape
    appearance: Appearance
    palette: np.ndarray
    capsule_starts: np.ndarray
    capsule_ends: np.ndarray
    capsule_sources: list[int]
    capsule_widths: np.ndarray
    capsule_is_limb: np.ndarray
    capsule_ties: np.ndarray


def person_style(shape: BodyShape, appearance: Appearance) -> PersonStyle:
    """Precompute the part table and palette of one identity."""
    parts = [("neck_base", "head_bottom", SKIN, shape.neck_width, False, 2)]
    if appearance.hair_style == "long":   # hair falling behind the neck
        parts.append(("head_centre", "neck_base", HAIR, 1.6 * shape.head_half_width, False, 0))
    for start, end, width_field, tie in _LIMB_PARTS:
        if width_field in ("upper_arm_width", "thigh_width"):
            source = TOP if width_field == "upper_arm_width" else BOTTOM
        elif width_field == "forearm_width":
            source = TOP if appearance.long_sleeves else SKIN
        elif width_field == "shin_width":
            source = SKIN if appearance.shorts else BOTTOM
        else:
            source = SKIN if width_field == "hand_width" else SHOES
        parts.append((start, end, source, getattr(shape, width_field), True, 3 + tie))
    return PersonStyle(
        shape=shape, appearance=appearance, palette=appearance.palette(),
        capsule_starts=np.array([POINT[p[0]] for p in parts]), capsule_ends=np.array([POINT[p[1]] for p in parts]),
        capsule_sources=[p[2] for p in parts], capsule_widths=np.array([p[3] for p in parts]),
        capsule_is_limb=np.array([p[4] for p in parts]), capsule_ties=np.array([p[5] for p in parts]),
    )


@dataclass
class PersonDrawing:
    """What :func:`draw_person` reports about one drawn person (image pixels).

    bbox: (4,) x, y, w, h of the whole (unoccluded) silhouette, clipped to the image.
    head_box: (4,) x, y, w, h around the drawn head (hair included) and head_bottom; not clipped.
    """

    bbox: np.ndarray
    head_box: np.ndarray


def draw_person(frame: np.ndarray, instance_mask: np.ndarray, points: np.ndarray, depths: np.ndarray,
                pixels_per_metre: float, style: PersonStyle, instance_id: int,
                blur: tuple[float, float] = (0.0, 0.0)) -> PersonDrawing | None:
    """Draw one person over ``frame`` (H, W, 3) uint8 and write ``instance_id`` into ``instance_mask``
    (H, W) where the person is drawn.

    points: (P, 2) image x, y of every body point; depths: (P,) their camera depth (m), used to order
    the parts; pixels_per_metre: the person's image scale; style: :func:`person_style` of the identity.
    blur: (dx, dy) pixels of motion during the exposure: the colours are smeared along it (the
    instance mask stays sharp, at the mid-exposure pose). Returns None if nothing lands in the image.
    """
    height, width = instance_mask.shape
    shape, look = style.shape, style.appearance
    s = float(pixels_per_metre)
    blur_pad = int(np.ceil(max(abs(blur[0]), abs(blur[1])) / 2)) + 1
    margin = int(np.ceil(s * max(shape.thigh_width, 2.3 * shape.head_half_height) / 2)) + 3 + blur_pad
    low, high = points.min(axis=0), points.max(axis=0)
    x0, y0 = max(int(low[0]) - margin, 0), max(int(low[1]) - margin, 0)
    x1, y1 = min(int(high[0]) + margin + 1, width), min(int(high[1]) + margin + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    local = points - (x0, y0)
    labels = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    head_box = _draw_body_parts(labels, local, depths, s, style)
    _cover_joints(labels, local)
    bx, by, bw, bh = cv2.boundingRect(labels)
    if bw == 0:
        return None

    # Clothing patterns in person coordinates, anchored at the pelvis, one period = period metres.
    anchor = local[POINT["pelvis"]]
    index = labels << 2
    patterns = ((look.top_pattern, look.top_period, 0), (look.bottom_pattern, look.bottom_period, 1))
    for pattern, period, shift in patterns:
        if pattern != "solid":
            index |= _pattern_bits(pattern, labels.shape, anchor, s * period) << shift
    colours = np.take(style.palette, index, axis=0)

    frame_roi, mask_roi = frame[y0:y1, x0:x1], instance_mask[y0:y1, x0:x1]
    if abs(blur[0]) + abs(blur[1]) >= 1.0:
        _paste_blurred(frame_roi, colours, labels, blur)
    else:
        cv2.copyTo(colours, labels, frame_roi)
    mask_roi[labels > 0] = instance_id
    head_box[0] += x0
    head_box[1] += y0
    return PersonDrawing(bbox=np.array([bx + x0, by + y0, bw, bh], dtype=np.float64), head_box=head_box)


def _cover_joints(labels: np.ndarray, local: np.ndarray) -> None:
    """Make sure the pixel under every annotated joint belongs to the person.

    Tiny people are drawn with 1-pixel limbs, and rasterisation can leave a joint's own pixel empty;
    it then takes the label of its 3 x 3 neighbourhood, so that an unoccluded joint is always visible.
    """
    height, width = labels.shape
    columns = np.floor(local[JOINT_TO_SLOT17, 0] + 0.5).astype(np.intp)
    rows = np.floor(local[JOINT_TO_SLOT17, 1] + 0.5).astype(np.intp)
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    empty = np.flatnonzero(inside)[labels[rows[inside], columns[inside]] == 0]
    for j in empty.tolist():
        row, column = rows[j], columns[j]
        neighbours = labels[max(row - 1, 0):row + 2, max(column - 1, 0):column + 2]
        labels[row, column] = neighbours.max() if neighbours.any() else label(SKIN, OUTLINE)


def _draw_body_parts(labels: np.ndarray, p: np.ndarray, depths: np.ndarray, s: float, style: PersonStyle) -> np.ndarray:
    """Draw all parts far to near into the label image; return the head box (x, y, w, h) in ROI pixels."""
    shape = style.shape
    fixed = np.round(p * 16).astype(np.int32)             # OpenCV fixed point, shift = 4
    pts = [tuple(xy) for xy in fixed.tolist()]
    torso_depth = float(depths[_TORSO_ROWS].mean())
    capsule_depth = 0.5 * (depths[style.capsule_starts] + depths[style.capsule_ends])
    behind = style.capsule_is_limb & (capsule_depth > torso_depth + _LIMB_BIAS)
    keys = np.where(style.capsule_is_limb, capsule_depth - _LIMB_BIAS, capsule_depth + 0.05)
    keys[0] = torso_depth - 2e-3                          # the neck, right after the torso
    # Part list: 0 torso, 1 pelvis, 2 head, 3.. capsules; far (large key) first, ties by order.
    all_keys = np.concatenate([[torso_depth, torso_depth - 1e-3, depths[POINT["head_centre"]] - 0.06], keys])
    ties = np.concatenate([[0, 1, 9], style.capsule_ties])
    order = np.lexsort((ties, -all_keys)).tolist()
    thickness = np.maximum(1, np.round(style.capsule_widths * s)).astype(int).tolist()
    outline = 1 if s * shape.forearm_width >= 5 else 0
    starts, ends, sources = style.capsule_starts.tolist(), style.capsule_ends.tolist(), style.capsule_sources
    behind = behind.tolist()
    head_box = np.zeros(4)
    for part in order:
        if part >= 3:
            c = part - 3
            a, b, source = pts[starts[c]], pts[ends[c]], sources[c]
            if outline:
                cv2.line(labels, a, b, source * 3 + OUTLINE, thickness[c] + 2, cv2.LINE_8, 4)
            cv2.line(labels, a, b, source * 3 + (FAR if behind[c] else NORMAL), thickness[c], cv2.LINE_8, 4)
        elif part == 2:
            head_box = _draw_head(labels, p.tolist(), depths.tolist(), s, style, outline)
        else:
            source = TOP if part == 0 else BOTTOM
            hull = cv2.convexHull(fixed[_TORSO_ROWS if part == 0 else _PELVIS_ROWS])
            if outline:   # a 3-pixel ring, whose inner part the fill then covers
                cv2.polylines(labels, [hull], True, source * 3 + OUTLINE, 3, cv2.LINE_8, 4)
            cv2.fillConvexPoly(labels, hull, source * 3 + NORMAL, cv2.LINE_8, 4)
    return head_box


def _draw_head(labels: np.ndarray, p: list, depths: list, s: float, style: PersonStyle, outline: int) -> np.ndarray:
    """Head = hair ellipse + face ellipse shifted towards the nose (+ eyes when facing the camera).

    p: [x, y] per body point (ROI pixels), depths: per body point (m); plain lists, as this runs per
    person per frame and Python floats are faster than tiny numpy arrays.
    """
    shape, look = style.shape, style.appearance
    (cx, cy), (bx, by), (tx, ty), (nx, ny) = (p[POINT[n]] for n in ("head_centre", "head_bottom", "head_top", "nose"))
    radians = math.atan2(ty - by, tx - bx)          # the first ellipse axis runs along the head
    angle = math.degrees(radians)
    half_height, half_width = shape.head_half_height * s, shape.head_half_width * s
    nose_depth, centre_depth = depths[POINT["nose"]], depths[POINT["head_centre"]]
    hair_axes = (1.04 * half_height, 1.06 * half_width)
    _ellipse(labels, (cx, cy), hair_axes, angle, HAIR if look.hair_style != "bald" else SKIN, outline)
    if nose_depth <= centre_depth:   # not a back view
        # The face sits lower and towards where the nose points; the hair stays as a cap and back.
        face = (cx + 0.3 * (nx - cx) + 0.05 * (bx - tx), cy + 0.3 * (ny - cy) + 0.05 * (by - ty))
        _ellipse(labels, face, (0.84 * half_height, 0.86 * half_width), angle, SKIN, 0)
        if nose_depth < centre_depth - 0.7 * shape.head_half_width and half_width >= 5:   # facing the camera
            radius = max(1, round(0.012 * s)) << 4
            for eye in ("left_eye_point", "right_eye_point"):
                ex, ey = p[POINT[eye]]
                cv2.circle(labels, (round(ex * 16), round(ey * 16)), radius, label(EYES), -1, cv2.LINE_8, 4)
    # Head box: the hair ellipse's axis-aligned extent, stretched to include head_bottom.
    cos, sin = math.cos(radians), math.sin(radians)
    extent_x = math.hypot(hair_axes[0] * cos, hair_axes[1] * sin)
    extent_y = math.hypot(hair_axes[0] * sin, hair_axes[1] * cos)
    x0, y0 = min(cx - extent_x, bx), min(cy - extent_y, by)
    x1, y1 = max(cx + extent_x, bx), max(cy + extent_y, by)
    return np.array([x0, y0, x1 - x0, y1 - y0])


def _ellipse(labels: np.ndarray, centre: tuple[float, float], axes: tuple[float, float], angle: float, source: int,
             outline: int) -> None:
    c = (round(centre[0] * 16), round(centre[1] * 16))
    if outline:
        outer = (round((axes[0] + outline) * 16), round((axes[1] + outline) * 16))
        cv2.ellipse(labels, c, outer, angle, 0, 360, source * 3 + OUTLINE, -1, cv2.LINE_8, 4)
    inner = (max(1, round(axes[0] * 16)), max(1, round(axes[1] * 16)))
    cv2.ellipse(labels, c, inner, angle, 0, 360, source * 3 + NORMAL, -1, cv2.LINE_8, 4)


def _fixed(points: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> int32 fixed point with 4 fractional bits (OpenCV's ``shift=4``)."""
    return np.round(np.asarray(points) * 16).astype(np.int32)


def _paste_blurred(frame_roi: np.ndarray, colours: np.ndarray, labels: np.ndarray, blur: tuple[float, float]) -> None:
    """Alpha-composite the person smeared along ``blur``: out = frame (1 - k*A) + k*(C A).

    The layer (C A, A) is exact in uint8 because A is 0 or 1 before the blur, so one 4-channel uint8
    ``filter2D`` smears colour and coverage together.
    """
    premultiplied = np.zeros_like(colours)
    cv2.copyTo(colours, labels, premultiplied)
    coverage = np.where(labels > 0, np.uint8(255), np.uint8(0))
    smeared = cv2.filter2D(cv2.merge([premultiplied, coverage]), -1, line_kernel(*blur), borderType=cv2.BORDER_CONSTANT)
    uncovered = 255 - smeared[..., 3]
    background = cv2.multiply(frame_roi, cv2.merge([uncovered, uncovered, uncovered]), scale=1.0 / 255)
    frame_roi[...] = cv2.add(background, smeared[..., :3])


MAX_BLUR = 24.0   # pixels; longer smears are clipped (and cost more than they teach)


@lru_cache(maxsize=256)
def _line_kernel_cached(dx: int, dy: int) -> np.ndarray:
    length = max(abs(dx), abs(dy))
    size = 2 * ((length + 15) // 32) + 1 + 2   # odd, covers the line (dx, dy are in 1/16 px)
    kernel = np.zeros((size, size), dtype=np.float32)
    centre = (size // 2) * 16
    cv2.line(kernel, (centre - dx // 2, centre - dy // 2), (centre + dx // 2, centre + dy // 2), 1.0, 1,
             cv2.LINE_AA, 4)
    if kernel.sum() <= 0:
        kernel[size // 2, size // 2] = 1.0
    kernel /= kernel.sum()
    kernel.setflags(write=False)
    return kernel


def line_kernel(dx: float, dy: float) -> np.ndarray:
    """(k, k) float32 kernel that averages along a segment of (dx, dy) pixels centred on the pixel
    (at most MAX_BLUR pixels long)."""
    length = float(np.hypot(dx, dy))
    if length > MAX_BLUR:
        dx, dy = dx * MAX_BLUR / length, dy * MAX_BLUR / length
    return _line_kernel_cached(int(round(dx * 16)), int(round(dy * 16)))


def blur_along(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Motion-blur a whole image along (dx, dy) pixels (camera motion during the exposure)."""
    if abs(dx) + abs(dy) < 1.0:
        return image
    return cv2.filter2D(image, -1, line_kernel(dx, dy), borderType=cv2.BORDER_REFLECT)


# ----------------------------------------------------------------------------------------------
# Occluders
# ----------------------------------------------------------------------------------------------
@dataclass
class OccluderLook:
    """How an occluder is painted: a two-colour pattern (stripes or bricks) with a dark edge."""

    colour: tuple[int, int, int]
    second: tuple[int, int, int]
    pattern: str


def sample_occluder_look(rng: np.random.Generator) -> OccluderLook:
    colour = rng.uniform(30, 230, 3)
    return OccluderLook(colour=_rgb(colour), second=_rgb(colour * rng.uniform(0.55, 0.85)),
                        pattern=str(rng.choice(["solid", "vertical_stripes", "horizontal_stripes", "checks"])))


def draw_occluder(frame: np.ndarray, instance_mask: np.ndarray, polygon: np.ndarray, look: OccluderLook,
                  pixels_per_metre: float) -> None:
    """Fill a convex polygon (M, 2) image pixels with the occluder's look; the instance mask becomes
    0 there (an occluder is background for the ground truth, but it hides whoever is behind it)."""
    height, width = instance_mask.shape
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return
    origin = np.array([x0, y0], dtype=np.float64)
    local = _fixed(polygon - origin)
    region = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillConvexPoly(region, local, 2, cv2.LINE_8, 4)
    cv2.polylines(region, [local], True, 1, 1, cv2.LINE_8, 4)
    palette = np.array([(0, 0, 0), np.multiply(look.colour, 0.4), look.colour, look.second, look.second],
                       dtype=np.float64).clip(0, 255).astype(np.uint8)
    index = region.copy()
    if look.pattern != "solid":   # a 30 cm pattern period, anchored at the occluder's corner
        bits = _pattern_bits(look.pattern, region.shape, polygon.min(axis=0) - origin, 0.3 * pixels_per_metre)
        index += bits * (region == 2).astype(np.uint8)
    cv2.copyTo(np.take(palette, index, axis=0), region, frame[y0:y1, x0:x1])
    cv2.copyTo(np.zeros(region.shape, dtype=instance_mask.dtype), region, instance_mask[y0:y1, x0:x1])


# ----------------------------------------------------------------------------------------------
# Backgrounds
# ----------------------------------------------------------------------------------------------
_CLUTTER_KINDS = ("building", "post", "disc", "polygon", "panel", "line")
_CLUTTER_CUMULATIVE = np.cumsum([0.18, 0.14, 0.18, 0.2, 0.15, 0.15])


def make_background(rng: np.random.Generator, width: int, height: int, horizon: float, clutter: int,
                    distractors: int, scale: float) -> np.ndarray:
    """A cluttered, textured scene canvas: (height, width, 3) uint8 RGB.

    horizon: y (canvas pixels) where the wall / sky meets the ground. clutter: random shapes
    (buildings with windows, posts, discs, polygons, striped panels). distractors: skin- and
    clothing-coloured limb-like capsules and head-like discs that bait a keypoint detector.
    scale: pixels per metre at the nearest depth, to size things.
    """
    # Smooth base: wall / sky and ground gradients plus blotches (lighting, stains), computed on a
    # grid 8x coarser and enlarged, because it has no detail worth the full resolution.
    small_height, small_width = max(2, height // 8), max(2, width // 8)
    horizon_small = int(np.clip(horizon / 8, 1, small_height - 1))
    rows = np.empty((small_height, 1, 3), dtype=np.float32)
    rows[:horizon_small, 0] = np.linspace(_muted(rng, 60, 230), _muted(rng, 40, 220), horizon_small)
    rows[horizon_small:, 0] = np.linspace(_muted(rng, 40, 200), _muted(rng, 30, 180), small_height - horizon_small)
    blotches = cv2.resize(rng.normal(0.0, 22.0, (6, 8, 3)).astype(np.float32), (small_width, small_height),
                          interpolation=cv2.INTER_CUBIC)
    base = np.clip(rows + blotches, 0, 255).astype(np.uint8)
    canvas = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
    horizon_row = int(np.clip(horizon, 1, height - 1))

    def colour() -> tuple[int, int, int]:
        # Mostly muted colours (mixed towards grey), like walls, streets and foliage.
        return _rgb(_muted(rng, 0, 255, 0.2, 1.0))

    for _ in range(clutter):
        kind = _CLUTTER_KINDS[int(np.searchsorted(_CLUTTER_CUMULATIVE, rng.random() * _CLUTTER_CUMULATIVE[-1]))]
        x, y, size = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.15, 1.2) * scale
        if kind == "building":
            w, h = size * rng.uniform(0.8, 2.5), size * rng.uniform(1.0, 3.0)
            x0, y1 = int(x - w / 2), horizon_row + int(rng.uniform(0, 0.1) * height)
            x1, y0 = int(x0 + w), int(y1 - h)
            cv2.rectangle(canvas, (x0, y0), (x1, y1), colour(), -1)
            # Windows: a grid of squares, painted in one go through a boolean mask.
            window, gap = max(2, int(size * 0.12)), max(3, int(size * 0.25))
            ys, xs = slice(max(y0, 0), max(min(y1, height), 0)), slice(max(x0, 0), max(min(x1, width), 0))
            grid_y = (np.arange(ys.start, ys.stop) - y0) % gap < window
            grid_x = (np.arange(xs.start, xs.stop) - x0) % gap < window
            canvas[ys, xs][grid_y[:, None] & grid_x[None, :]] = colour()
        elif kind == "post":
            w = max(2, int(size * 0.1))
            foot = horizon_row + int(0.05 * height)
            cv2.rectangle(canvas, (int(x), int(y - size * 1.5)), (int(x) + w, foot), colour(), -1)
        elif kind == "disc":
            cv2.circle(canvas, (int(x), int(y)), max(2, int(size * 0.4)), colour(), -1, cv2.LINE_AA)
        elif kind == "polygon":
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))
            radius = size * rng.uniform(0.3, 0.8, angles.shape)
            pts = np.stack([x + radius * np.cos(angles), y + radius * np.sin(angles)], 1).astype(np.int32)
            cv2.fillPoly(canvas, [pts], colour(), cv2.LINE_AA)
        elif kind == "panel":
            w, h = size * rng.uniform(0.5, 1.5), size * rng.uniform(0.3, 1.0)
            x0, y0, x1, y1 = int(x - w / 2), int(y - h / 2), int(x + w / 2), int(y + h / 2)
            cv2.rectangle(canvas, (x0, y0), (x1, y1), colour(), -1)
            step = max(2, int(rng.uniform(0.05, 0.2) * scale))
            ys, xs = slice(max(y0, 0), max(min(y1, height), 0)), slice(max(x0, 0), max(min(x1, width), 0))
            stripes = (np.arange(xs.start, xs.stop) - x0) % (2 * step) < step
            canvas[ys, xs][:, stripes] = colour()
        else:
            x2, y2 = x + rng.uniform(-2, 2) * size, y + rng.uniform(-1, 1) * size
            cv2.line(canvas, (int(x), int(y)), (int(x2), int(y2)), colour(), max(1, int(size * 0.05)), cv2.LINE_AA)

    for _ in range(distractors):
        x, y = rng.uniform(0, width), rng.uniform(0.2 * height, height)
        length, angle = rng.uniform(0.2, 0.45) * scale, rng.uniform(0, 2 * np.pi)
        tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] if rng.random() < 0.6 else _random_clothing_colour(rng)
        end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
        cv2.line(canvas, (int(x), int(y)), end, _rgb(tone), max(2, int(0.09 * scale)), cv2.LINE_AA)
        if rng.random() < 0.3:   # a head-sized disc
            cv2.circle(canvas, end, max(2, int(0.09 * scale)), _rgb(_HAIR_TONES[rng.integers(len(_HAIR_TONES))]), -1,
                       cv2.LINE_AA)

    # Fine texture (grain, fabric, asphalt) and a slight defocus: the background sits behind the people.
    positive, negative = _noise_pair(_GRAIN_SIZE, _GRAIN_SIZE, float(2 * rng.integers(1, 5)))   # std 2, 4, 6 or 8
    repeats = (height // positive.shape[0] + 1, width // positive.shape[1] + 1, 1)
    canvas = cv2.add(canvas, np.tile(positive, repeats)[:height, :width])
    canvas = cv2.subtract(canvas, np.tile(negative, repeats)[:height, :width])
    return cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(0.3, 1.2)))


_GRAIN_SIZE = 192   # the grain tile is this plus NOISE_MARGIN pixels square


def _muted(rng: np.random.Generator, low: float, high: float, keep_low: float = 0.1,
           keep_high: float = 0.7) -> np.ndarray:
    """A random colour pulled towards its grey: keeps a fraction in [keep_low, keep_high] of its saturation."""
    rgb = rng.uniform(low, high, 3)
    return rgb.mean() + (rgb - rgb.mean()) * rng.uniform(keep_low, keep_high)


# ----------------------------------------------------------------------------------------------
# Sensor effects
# ----------------------------------------------------------------------------------------------
NOISE_STD_STEP = 0.5   # grey levels: noise strengths are rounded to this so their banks can be cached


def add_sensor_noise(image: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """image (H, W, 3) uint8 plus zero-mean Gaussian noise of ``std`` grey levels (saturating).

    The noise is a randomly placed window of a fixed bank a little larger than the image (drawn once
    per size and strength, from a fixed seed): much faster than fresh noise per frame, and it never
    touches global random state. ``std`` is rounded to NOISE_STD_STEP.
    """
    level = round(std / NOISE_STD_STEP) * NOISE_STD_STEP
    if level <= 0:
        return image
    height, width = image.shape[:2]
    positive, negative = _noise_pair(height, width, level)
    y, x = int(rng.integers(0, NOISE_MARGIN + 1)), int(rng.integers(0, NOISE_MARGIN + 1))
    noisy = cv2.add(image, positive[y:y + height, x:x + width])
    return cv2.subtract(noisy, negative[y:y + height, x:x + width])


NOISE_MARGIN = 64   # the bank is this much larger than the image: 65 x 65 placements of the window


@lru_cache(maxsize=32)
def _noise_pair(height: int, width: int, std: float) -> tuple[np.ndarray, np.ndarray]:
    """(height + NOISE_MARGIN, width + NOISE_MARGIN, 3) uint8 positive and negative parts of Gaussian
    noise with ``std``: adding one and subtracting the other is a saturating signed addition in two
    fast uint8 passes."""
    noise = np.round(_unit_noise(height, width) * std)
    positive = np.clip(noise, 0, 255).astype(np.uint8)
    negative = np.clip(-noise, 0, 255).astype(np.uint8)
    positive.setflags(write=False)
    negative.setflags(write=False)
    return positive, negative


@lru_cache(maxsize=4)
def _unit_noise(height: int, width: int) -> np.ndarray:
    """Standard normal float32 noise of the bank's shape, from a fixed seed (shared by all strengths)."""
    shape = (height + NOISE_MARGIN, width + NOISE_MARGIN, 3)
    noise = np.random.default_rng(20190321).standard_normal(shape, dtype=np.float32)
    noise.setflags(write=False)
    return noise


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode RGB ``image`` as JPEG at ``quality`` (1-100) and decode it: blocking and ringing."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:   # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
