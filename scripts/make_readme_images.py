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


def tracked_figure(preset: str = "interaction", seed: int = 900_002, num_frames: int = 30, columns: int = 6,
                   size: tuple[int, int] = (256, 256)):
    """Ground-truth tracks (top) and our tracker on the shipped tiny models' poses (bottom), same frames."""
    from mpat_nb.tracking.pipeline import observe_video, run_tracker
    from mpat_nb.tracking.trackers import make_tracker
    from mpat_nb.tracking.video import load_tracking_models

    clip = generate_clip(preset=preset, seed=seed, num_frames=num_frames, size=size)
    spatial, temporal = load_tracking_models(device="cpu")
    run = run_tracker(observe_video(clip.frames, spatial, temporal), make_tracker("HE+TIE"), name=clip.video.name)
    picks = pick_frames(num_frames, columns)
    truth, ours = draw_video(clip.frames, clip.video), draw_video(clip.frames, run.video)
    return frame_grid([frame_strip([truth[t] for t in picks], labels=[f"ground truth t={t}" for t in picks]),
                       frame_strip([ours[t] for t in picks], labels=[f"ours t={t}" for t in picks])])


def write_jpeg(figure, name: str) -> None:
    path = OUT / name  # JPEG: the noisy synthetic frames make a PNG ten times larger
    cv2.imwrite(str(path), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {path} ({figure.shape[1]}x{figure.shape[0]}, {path.stat().st_size / 1e3:.0f} kB)")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_jpeg(hard_cases_figure(), "hard_cases.jpg")
    write_jpeg(tracked_figure(), "tracked.jpg")


if __name__ == "__main__":
    main()
