"""Track the people of a user's video: ``mpat-nb track VIDEO`` (a video file or a folder of frames).

Frames are read, observed by the networks, associated and drawn one at a time (online: memory does not grow
with the video's length). Outputs, written only when the whole video went through (no partial files):
``OUT/<name>_tracked.mp4`` (skeletons coloured by track id), ``OUT/<name>.json`` (PoseTrack18 with track ids, in
the video's pixels) and ``OUT/<name>_summary.json`` (counts, track lengths, per-frame timings, models).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mpat_nb.data.annotations import Video
from mpat_nb.tracking.config import TrackerConfig


def load_tracking_models(temporal_checkpoint: str | Path | None = None, spatial_checkpoint: str | Path | None = None,
                         device=None):
    """(SpatialNet, TemporalNet) in eval mode: the shipped tiny pair by default, or user checkpoints.

    temporal_checkpoint: a TemporalNet checkpoint (default: shipped ``temporalnet_tiny.pt``); spatial_checkpoint:
    default the SpatialNet that TemporalNet was trained on (as recorded in its checkpoint).
    """
    from mpat_nb.checkpoints import load_temporal_pair, shipped_checkpoint
    from mpat_nb.utils import get_device

    device = get_device(device) if device is None or isinstance(device, str) else device
    path = temporal_checkpoint or shipped_checkpoint("temporalnet_tiny.pt")
    return load_temporal_pair(path, spatial_checkpoint=spatial_checkpoint, device=device)


def track_video(source: str | Path, out_dir: str | Path, *, temporal_checkpoint: str | Path | None = None,
                spatial_checkpoint: str | Path | None = None, variant: str = "HE+TIE",
                config: TrackerConfig = TrackerConfig(), pgg: bool = False, device: str | None = None,
                fps: float = 10.0, max_frames: int | None = None, precision: str = "fp32",
                progress: bool = True) -> dict:
    """Track ``source`` and write the three outputs to ``out_dir``; returns the summary (also written).

    variant: one of :data:`mpat_nb.tracking.config.VARIANTS` (the baselines need no TemporalNet but use it if
    loaded). pgg: decode with Pose-Guided Grouping (KE + SIE, one iteration) instead of associative embedding.
    max_frames: stop after this many frames (None: the whole video). precision: ``fp32`` (plain eager float32),
    ``bf16`` or ``auto`` (:func:`mpat_nb.inference.inference_options`).
    """
    from tqdm.auto import tqdm

    from mpat_nb.data.formats import save_posetrack18
    from mpat_nb.data.video_io import iter_video, write_video
    from mpat_nb.decode import tuned_decode_config
    from mpat_nb.inference import inference_options
    from mpat_nb.tracking.pipeline import NetworkObserver, track_step
    from mpat_nb.tracking.trackers import make_tracker
    from mpat_nb.utils import atomic_write_text
    from mpat_nb.viz import draw_frame

    source, out = Path(source), Path(out_dir)
    frames = iter_video(source)                                     # raises now on a missing / unreadable source
    name = source.stem if source.is_file() else source.name
    spatial, temporal = load_tracking_models(temporal_checkpoint, spatial_checkpoint, device)
    inference = inference_options(precision, next(spatial.parameters()).device)
    decode_config = (tuned_decode_config(spatial, embedding="ke+sie", pgg_iterations=1) if pgg
                     else tuned_decode_config(spatial))
    observer = NetworkObserver(spatial, temporal, decode_config, min_pose_score=config.min_pose_score,
                               inference=inference)
    tracker = make_tracker(variant, config)
    video = Video(name)
    timings = {"network": [], "association": []}

    def tracked_images():
        for t, image in enumerate(tqdm(frames, desc=f"tracking {name}", disable=not progress, unit="frame")):
            if max_frames is not None and t >= max_frames:
                break
            observation = observer.observe(image, file_name=f"images/{name}/{t:06d}.jpg")
            frame, _, seconds = track_step(tracker, observation, config.min_joint_score)
            timings["association"].append(seconds)
            timings["network"].append(observation.network_seconds)
            video.frames.append(frame)
            yield draw_frame(image, frame)

    out.mkdir(parents=True, exist_ok=True)
    video_path, json_path, summary_path = out / f"{name}_tracked.mp4", out / f"{name}.json", out / f"{name}_summary.json"
    codec = write_video(tracked_images(), video_path, fps=fps)     # atomic: nothing left if a frame fails
    save_posetrack18(video, json_path, check_poseval=False)
    summary = _summary(video, timings, source, variant, pgg, spatial, temporal)
    summary["video_codec"] = codec                                  # "h264" (imageio-ffmpeg) or "mp4v" (OpenCV)
    summary["outputs"] = {"video": str(video_path), "posetrack18": str(json_path), "summary": str(summary_path)}
    atomic_write_text(summary_path, json.dumps(summary, indent=2))
    return summary


def _summary(video: Video, timings: dict, source: Path, variant: str, pgg: bool, spatial, temporal) -> dict:
    lengths: dict[int, int] = {}
    for frame in video.frames:
        for person in frame.people:
            lengths[person.track_id] = lengths.get(person.track_id, 0) + 1
    people = [len(f.people) for f in video.frames]
    return {
        "source": str(source), "frames": len(video.frames), "variant": variant, "pgg": pgg,
        "device": str(next(spatial.parameters()).device),
        "models": {"spatialnet": spatial.config.name, "temporalnet": temporal.config.name},
        "people_per_frame": {"mean": float(np.mean(people)) if people else 0.0, "max": max(people, default=0)},
        "tracks": len(lengths),
        "track_length_frames": {"mean": float(np.mean(list(lengths.values()))) if lengths else 0.0,
                                "max": max(lengths.values(), default=0)},
        "ms_per_frame": {"network": 1000 * float(np.mean(timings["network"])) if timings["network"] else 0.0,
                         "association": 1000 * float(np.mean(timings["association"])) if timings["association"] else 0.0},
    }
