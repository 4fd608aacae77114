"""Shot cuts: how much the picture changes from frame t-1 to frame t.

The TIE fields are trained on frame pairs of one shot; across a cut (new background, camera and layout) their
votes compare two unrelated pictures, so the tracker leaves the TIE term out of its cost there and trusts
appearance (HE) alone (:class:`mpat_nb.tracking.config.TrackerConfig`, ``cut_threshold``). The paper does not
treat cuts [I].

The test is the classic colour-histogram cut detector: the total-variation distance between the joint RGB
histograms of the two frames,

    change(t) = 1/2 sum_b |h_{t-1}(b) - h_t(b)|   in [0, 1]

(0: the same colours in the same amounts; 1: no colour in common). It ignores where colours are, so people
walking, camera pans and motion blur change it little, while a new background changes most of the picture.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Levels per colour channel (8 x 8 x 8 = 512 bins) [I] and the side of the square thumbnail the histogram is
#: taken on (averages away noise and blur, and makes the cost independent of the frame size) [I].
HISTOGRAM_LEVELS = 8
THUMBNAIL_SIDE = 64


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (HISTOGRAM_LEVELS**3,) joint colour histogram of its thumbnail, summing to 1."""
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape[:2]:
        raise ValueError(f"colour_histogram needs an (H, W, 3) uint8 RGB frame with pixels, got {image.dtype} "
                         f"{image.shape}: convert it first (mpat_nb.data.datasets.to_rgb)")
    thumbnail = cv2.resize(image, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA)
    bins = colour_bins(thumbnail, HISTOGRAM_LEVELS)                                      # (S, S)
    counts = np.bincount(bins.ravel(), minlength=HISTOGRAM_LEVELS**3).astype(np.float64)
    return counts / counts.sum()


def colour_bins(rgb: np.ndarray, levels: int) -> np.ndarray:
    """The joint colour bin of every pixel: (..., 3) uint8 RGB -> (...) int64 in 0 .. levels**3 - 1.

    Each channel is cut into ``levels`` equal ranges, l_c = floor(v_c levels / 256), and the bin is
    (l_r levels + l_g) levels + l_b. The one binning of the project's colour histograms (shot cuts here, the
    appearance baseline of :func:`mpat_nb.temporal_metrics.colour_histograms`).
    """
    quantised = np.asarray(rgb).astype(np.int64) * levels // 256                        # (..., 3) in 0..L-1
    return (quantised[..., 0] * levels + quantised[..., 1]) * levels + quantised[..., 2]


def histogram_change(previous: np.ndarray, current: np.ndarray) -> float:
    """Total-variation distance in [0, 1] between two histograms of :func:`colour_histogram`."""
    return float(0.5 * np.abs(np.asarray(previous) - np.asarray(current)).sum())


def frame_change(previous_rgb: np.ndarray, current_rgb: np.ndarray) -> float:
    """change(t) of two (H, W, 3) uint8 RGB frames (see the module docstring)."""
    return histogram_change(colour_histogram(previous_rgb), colour_histogram(current_rgb))
