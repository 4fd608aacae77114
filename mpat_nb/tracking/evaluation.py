"""End-to-end evaluation of the tracker variants over the generator's presets (PoseTrack mAP and MOTA).

The networks run once per clip (:func:`observe_clips`); every tracker variant then tracks the same
observations (:func:`evaluate_variants`), so the variants differ only in their association. Two sources of
poses: ``"predicted"`` (SpatialNet decoding) and ``"ground truth"`` (the GT poses, so tracking quality shows
apart from detection quality; HE and TIE still come from the networks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mpat_nb.data.annotations import Video
from mpat_nb.decode import DecodeConfig
from mpat_nb.evaluate import PoseTrackResult, evaluate
from mpat_nb.tracking.config import VARIANTS, TrackerConfig
from mpat_nb.tracking.observation import FrameObservation
from mpat_nb.tracking.pipeline import observe_video_sources, run_tracker
from mpat_nb.tracking.trackers import make_tracker

SOURCES = ("predicted", "ground truth")


@dataclass
class ObservedClip:
    """One clip's ground truth and its observations from both pose sources."""

    preset: str
    seed: int
    video: Video
    frames: np.ndarray                                  # (T, H, W, 3) uint8, kept for pictures
    observations: dict[str, list[FrameObservation]]     # source -> one observation per frame
    events: dict = field(default_factory=dict)


@dataclass
class VariantResult:
    """A variant's result on the clips of one preset and one pose source."""

    preset: str
    variant: str
    source: str
    result: PoseTrackResult
    association_ms: float               # mean association time per frame (milliseconds)
    network_ms: float                   # mean network + decoding time per frame (milliseconds)
    videos: list[Video] = field(default_factory=list)

    @property
    def id_switches(self) -> int:
        """Identity switches summed over the joints (the IDSW term of MOTA)."""
        return int(self.result.num_switches.sum())


def observe_clips(spatial, temporal, presets: Sequence[str], *, num_clips: int = 4, num_frames: int = 30,
                  size: int = 256, split: str = "val", decode_config: DecodeConfig = DecodeConfig(),
                  min_pose_score: float = TrackerConfig.min_pose_score, keep_frames: bool = False,
                  progress: bool = False) -> list[ObservedClip]:
    """Render ``num_clips`` clips of every preset (``split_seeds(split, ...)``) and observe both pose sources."""
    from tqdm.auto import tqdm

    from mpat_nb.data.synth import generate_clip, split_seeds

    jobs = [(preset, int(seed)) for preset in presets for seed in split_seeds(split, num_clips)]
    clips = []
    for preset, seed in tqdm(jobs, desc="clips", disable=not progress):
        clip = generate_clip(preset, seed, num_frames, (size, size))
        observations = observe_video_sources(clip.frames, spatial, temporal, clip.video, decode_config,
                                             min_pose_score=min_pose_score)
        frames = clip.frames if keep_frames else np.zeros((0,), np.uint8)
        clips.append(ObservedClip(preset, seed, clip.video, frames, observations, dict(clip.events)))
    return clips


def evaluate_variants(clips: Sequence[ObservedClip], variants: Sequence[str] = VARIANTS,
                      config: TrackerConfig = TrackerConfig(), sources: Sequence[str] = SOURCES,
                      keep_videos: bool = False) -> list[VariantResult]:
    """Track every clip with every variant and evaluate per preset (all clips of a preset pooled)."""
    results = []
    presets = list(dict.fromkeys(c.preset for c in clips))
    for source in sources:
        for preset in presets:
            chosen = [c for c in clips if c.preset == preset]
            for variant in variants:
                runs = [run_tracker(c.observations[source], make_tracker(variant, config), name=c.video.name)
                        for c in chosen]
                result = evaluate([c.video for c in chosen], [r.video for r in runs])
                association = np.concatenate([r.association_seconds for r in runs])
                network = np.concatenate([r.network_seconds for r in runs])
                results.append(VariantResult(preset, variant, source, result, 1000 * float(association.mean()),
                                             1000 * float(network.mean()),
                                             [r.video for r in runs] if keep_videos else []))
    return results


def results_table(results: Sequence[VariantResult], source: str, metric: str = "mota") -> str:
    """Variants (rows) x presets (columns) of total ``metric`` ("mota", "map" or "switches") for one source."""
    chosen = [r for r in results if r.source == source]
    presets = list(dict.fromkeys(r.preset for r in chosen))
    variants = list(dict.fromkeys(r.variant for r in chosen))
    value = {"mota": lambda r: f"{r.result.total_mota:6.1f}", "map": lambda r: f"{r.result.total_map:6.1f}",
             "switches": lambda r: f"{r.id_switches:6d}"}[metric]
    width = max(len(p) for p in presets + ["preset"])
    header = f"{source} poses, {'total ' + metric if metric != 'switches' else 'id switches (all joints)'}"
    lines = [header, f"{'variant':15s} " + " ".join(f"{p[:width]:>{max(6, len(p))}s}" for p in presets)]
    for variant in variants:
        row = {r.preset: r for r in chosen if r.variant == variant}
        lines.append(f"{variant:15s} " + " ".join(f"{value(row[p]):>{max(6, len(p))}s}" for p in presets))
    return "\n".join(lines)

