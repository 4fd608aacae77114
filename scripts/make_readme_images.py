"""Draw the pictures the README shows into docs/images/ (run after changing the generator or viz).

    python scripts/make_readme_images.py
"""

from __future__ import annotations

from pathlib import Path

import cv2

from mpat_nb.data.synth import generate_clip
from mpat_nb.viz import draw_video, frame_grid, frame_strip, pick_frames

HARD_CASES = ("crowd", "interaction", "camera_motion", "fast_motion", "shot_change", "occlusion", "motion_blur", "mixed")
OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def hard_cases_figure(num_frames: int = 24, columns: int = 5, size: tuple[int, int] = (192, 192)):
    """One row of frames per hard-case preset, ground-truth tracks drawn, preset name on the left."""
    rows = []
    for index, preset in enumerate(HARD_CASES):
        clip = generate_clip(preset=preset, seed=500 + index, num_frames=num_frames, size=size)
        drawn = draw_video(clip.frames, clip.video)
        picks = pick_frames(num_frames, columns)
        labels = [f"{preset}  t={t}" if i == 0 else f"t={t}" for i, t in enumerate(picks)]
        rows.append(frame_strip([drawn[t] for t in picks], labels=labels))
    return frame_grid(rows)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    figure = hard_cases_figure()
    path = OUT / "hard_cases.jpg"  # JPEG: the noisy synthetic frames make a PNG ten times larger
    cv2.imwrite(str(path), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {path} ({figure.shape[1]}x{figure.shape[0]}, {path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
