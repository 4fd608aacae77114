"""The end-to-end demo behind ``mpat-nb demo`` (README command 1).

For now (foundation stage) it shows the data and the metrics: generate a synthetic clip, draw its
ground-truth tracks to a GIF/MP4 and a PNG strip, corrupt a copy of the annotations in known ways and
evaluate it against the ground truth with the PoseTrack metrics. Later stages replace the corrupted copy
with the trained tracker's output.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from mpat_nb.data.perturb import Perturbation, perturb_video
from mpat_nb.utils import atomic_write_text

#: What the demo corrupts: small jitter, a few missed joints/people, false alarms and one id switch.
DEMO_PERTURBATION = Perturbation(jitter_px=2.5, drop_joint_prob=0.05, miss_person_prob=0.05, false_positive_prob=0.1, id_switches=1)


def run_demo(out_dir: str | Path = "demo_output", *, preset: str = "mixed", seed: int = 7, num_frames: int = 40,
             size: tuple[int, int] = (256, 256), verbose: bool = True) -> dict:
    """Run the demo; return a dict of output paths and metric totals."""
    from mpat_nb.data.formats import save_posetrack18, write_video
    from mpat_nb.data.synth import generate_clip
    from mpat_nb.evaluate import evaluate
    from mpat_nb.viz import draw_video, frame_strip, pick_frames

    say = print if verbose else (lambda *a, **k: None)
    out = Path(out_dir)
    started = time.perf_counter()

    say(f"[1/4] generating a '{preset}' clip: {num_frames} frames at {size[0]}x{size[1]}, seed {seed}")
    clip = generate_clip(preset=preset, seed=seed, num_frames=num_frames, size=size)
    clip.save(out / "clip")

    say("[2/4] drawing the ground-truth tracks")
    drawn = draw_video(clip.frames, clip.video, show_boxes=False)
    gif_path, mp4_path, strip_path = out / "gt_tracks.gif", out / "gt_tracks.mp4", out / "gt_strip.png"
    write_video(drawn, gif_path, fps=10)
    write_video(drawn, mp4_path, fps=10)
    picks = pick_frames(len(drawn), 6)
    _write_png(frame_strip([drawn[t] for t in picks], labels=[f"t={t}" for t in picks]), strip_path)

    say("[3/4] corrupting a copy of the annotations (" + ", ".join(f"{k}={v}" for k, v in asdict(DEMO_PERTURBATION).items()) + ")")
    prediction = perturb_video(clip.video, DEMO_PERTURBATION, seed=seed)
    pred_path = out / "predictions" / f"{clip.video.name}.json"
    save_posetrack18(prediction, pred_path)

    say("[4/4] evaluating it against the ground truth (PoseTrack mAP and MOTA)")
    result = evaluate(clip.video, prediction)
    table = result.table()
    metrics_path = out / "metrics.json"
    atomic_write_text(metrics_path, json.dumps(result.to_dict(), indent=2))
    (out / "metrics.txt").write_text(table + "\n")
    say(table)

    outputs = {
        "frames": str(out / "clip" / "images" / clip.video.name),
        "ground_truth": str(out / "clip" / "annotations" / f"{clip.video.name}.json"),
        "predictions": str(pred_path),
        "gif": str(gif_path),
        "mp4": str(mp4_path),
        "strip": str(strip_path),
        "metrics": str(metrics_path),
        "total_map": result.total_map,
        "total_mota": result.total_mota,
    }
    say(f"\ndone in {time.perf_counter() - started:.1f} s. Outputs:")
    for key in ("frames", "ground_truth", "predictions", "gif", "mp4", "strip", "metrics"):
        say(f"  {key:13s} {outputs[key]}")
    return outputs


def _write_png(image, path: Path) -> None:
    import cv2

    from mpat_nb.utils import atomic_path

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
