"""The end-to-end demo behind ``mpat-nb demo`` (README command 1).

Generate a synthetic clip, run the shipped tiny SpatialNet + TemporalNet once per frame, track the people
online with our HE + TIE tracker and with the greedy-OKS baseline on the same detections, evaluate both with
the PoseTrack metrics, and write the tracked video (MP4 and GIF), a PNG strip (ground truth above, ours below),
the PoseTrack18 JSON files and the metric tables.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mpat_nb.utils import atomic_write_text

#: The tracker compared with ours in the demo (same detections, same evaluator).
DEMO_BASELINE = "greedy OKS"


def run_demo(out_dir: str | Path = "demo_output", *, preset: str = "mixed", seed: int = 7, num_frames: int = 40,
             size: tuple[int, int] = (256, 256), device: str | None = None, precision: str = "fp32",
             verbose: bool = True) -> dict:
    """Run the demo; return a dict of output paths and metric totals.

    precision: ``fp32`` (plain eager float32), ``bf16`` or ``auto`` (:func:`mpat_nb.inference.inference_options`).
    """
    import numpy as np
    from tqdm.auto import tqdm

    from mpat_nb.data.formats import save_posetrack18, write_video
    from mpat_nb.data.synth import generate_clip
    from mpat_nb.evaluate import evaluate
    from mpat_nb.inference import inference_options
    from mpat_nb.tracking.pipeline import observe_video, run_tracker
    from mpat_nb.tracking.trackers import make_tracker
    from mpat_nb.tracking.video import load_tracking_models
    from mpat_nb.viz import draw_video, frame_strip, pick_frames

    say = print if verbose else (lambda *a, **k: None)
    out = Path(out_dir)
    started = time.perf_counter()

    say(f"[1/5] generating a '{preset}' clip: {num_frames} frames at {size[0]}x{size[1]}, seed {seed}")
    clip = generate_clip(preset=preset, seed=seed, num_frames=num_frames, size=size)
    clip.save(out / "clip")

    say("[2/5] loading the shipped tiny SpatialNet and TemporalNet; running them once per frame")
    spatial, temporal = load_tracking_models(device=device)
    frames = tqdm(clip.frames, desc="networks", unit="frame", disable=not verbose, leave=False)
    inference = inference_options(precision, next(spatial.parameters()).device)
    observations = observe_video(frames, spatial, temporal, gt_video=None, inference=inference)
    for observation, frame in zip(observations, clip.video.frames):
        observation.file_name = frame.file_name                    # the GT's names: the evaluator pairs frames

    say(f"[3/5] tracking: ours (HE + TIE) and the {DEMO_BASELINE} baseline on the same detections")
    runs = {name: run_tracker(observations, make_tracker(name), name=clip.video.name)
            for name in ("HE+TIE", DEMO_BASELINE)}
    results = {name: evaluate(clip.video, run.video) for name, run in runs.items()}
    pred_paths = {}
    for name, run in runs.items():
        pred_paths[name] = out / "predictions" / _slug(name) / f"{clip.video.name}.json"
        save_posetrack18(run.video, pred_paths[name])

    say("[4/5] drawing the tracks (MP4, GIF, PNG strip)")
    drawn = draw_video(clip.frames, runs["HE+TIE"].video)
    mp4_path, gif_path, strip_path = out / "tracked.mp4", out / "tracked.gif", out / "strip.png"
    write_video(drawn, mp4_path, fps=10)
    write_video(drawn, gif_path, fps=10)
    picks = pick_frames(len(drawn), 6)
    truth = draw_video(clip.frames[picks], _subset(clip.video, picks))
    strip = np.concatenate([frame_strip([truth[i] for i in range(len(picks))], labels=[f"GT t={t}" for t in picks]),
                            frame_strip([drawn[t] for t in picks], labels=[f"ours t={t}" for t in picks])])
    _write_png(strip, strip_path)

    say("[5/5] PoseTrack mAP and MOTA against the ground truth")
    network_ms = 1000 * float(np.mean(runs["HE+TIE"].network_seconds))
    association_ms = {name: 1000 * float(np.mean(run.association_seconds)) for name, run in runs.items()}
    text = "\n\n".join(f"{name}:\n{result.table()}" for name, result in results.items())
    text += (f"\n\nper frame: networks + decoding {network_ms:.0f} ms; association "
             + ", ".join(f"{name} {ms:.2f} ms" for name, ms in association_ms.items()))
    metrics_path = out / "metrics.json"
    atomic_write_text(metrics_path, json.dumps({name: r.to_dict() for name, r in results.items()}, indent=2))
    atomic_write_text(out / "metrics.txt", text + "\n")
    say(text)

    outputs = {
        "frames": str(out / "clip" / "images" / clip.video.name),
        "ground_truth": str(out / "clip" / "annotations" / f"{clip.video.name}.json"),
        "predictions": str(pred_paths["HE+TIE"]),
        "mp4": str(mp4_path), "gif": str(gif_path), "strip": str(strip_path), "metrics": str(metrics_path),
        "total_map": results["HE+TIE"].total_map, "total_mota": results["HE+TIE"].total_mota,
        "baseline_mota": results[DEMO_BASELINE].total_mota,
    }
    say(f"\ndone in {time.perf_counter() - started:.1f} s. Outputs:")
    for key in ("frames", "ground_truth", "predictions", "mp4", "gif", "strip", "metrics"):
        say(f"  {key:13s} {outputs[key]}")
    return outputs


def _slug(name: str) -> str:
    return name.lower().replace("+", "_").replace(" ", "_")


def _subset(video, indices):
    from mpat_nb.data.annotations import Video

    return Video(video.name, [video.frames[t] for t in indices])


def _write_png(image, path: Path) -> None:
    import cv2

    from mpat_nb.utils import atomic_path

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
