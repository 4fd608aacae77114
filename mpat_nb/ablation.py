"""The grouping ablation of the paper's Fig. 1, measured on our data: KE only, SIE only, KE + SIE, KE + SIE + PGG.

Every row decodes the *same detections* (the heatmaps of one model, the same candidates and thresholds); only
what the greedy grouping compares changes, and whether Pose-Guided Grouping refines it first. For each
generator preset (validation seeds) a row reports total mAP (PoseTrack evaluator) and the grouping purity and
completeness of :mod:`mpat_nb.grouping_quality`.

    rows = grouping_ablation({"AE-trained": model, "PGG-fine-tuned": tuned}, presets=("crowd", "interaction"))
    print(ablation_table(rows))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from tqdm.auto import tqdm

from mpat_nb.decode import DecodeConfig

#: delta_SIE of the ablation, a fraction of the output width [I: chosen for the shipped tiny checkpoints on
#: *training*-seed crowd and interaction clips, 3 x 6 frames each (redo: python scripts/ablation_pgg.py
#: --split train --offset 500000 --clips 3 --frames 6 --presets crowd interaction --sie-bandwidth B):
#: their SIE is off by several output pixels, so DecodeConfig's default 6/128 (3 px on the 64 grid) splits people
#: (KE+SIE 10.7 mAP there, KE only 24.7); 24/128 gives KE+SIE 23.6 and KE+SIE+PGG 23.9; 48/128 about the same].
ABLATION_SIE_BANDWIDTH = 24.0 / 128

#: The four groupings of the ablation, in the paper's order.
ABLATION_DECODERS: dict[str, DecodeConfig] = {
    "KE only (AE)": DecodeConfig(embedding="ke"),
    "SIE only": DecodeConfig(embedding="sie", sie_bandwidth=ABLATION_SIE_BANDWIDTH),
    "KE+SIE": DecodeConfig(embedding="ke+sie", sie_bandwidth=ABLATION_SIE_BANDWIDTH),
    "KE+SIE+PGG": DecodeConfig(embedding="ke+sie", sie_bandwidth=ABLATION_SIE_BANDWIDTH, pgg_iterations=1),
}


@dataclass
class AblationRow:
    """One (model, grouping, preset) measurement."""

    model: str
    grouping: str
    preset: str
    total_map: float
    purity: float
    completeness: float


def grouping_ablation(models: Mapping[str, object], presets: Sequence[str] = ("crowd", "interaction", "mixed"), *,
                      decoders: Mapping[str, DecodeConfig] = ABLATION_DECODERS, num_clips: int = 4,
                      num_frames: int = 8, size: int = 256, split: str = "val", offset: int = 0,
                      progress: bool = True) -> list[AblationRow]:
    """Decode the clips of every preset with every grouping, for every model.

    models: name -> SpatialNet (eval mode). Clips come from the generator's seeds of ``split`` (default the
    validation seeds, which never overlap the training data; ``"train"`` with a large ``offset`` is for
    choosing decoding parameters without looking at the validation clips).
    """
    from mpat_nb.evaluate import evaluate
    from mpat_nb.grouping_quality import grouping_quality
    from mpat_nb.data.synth import generate_clip, split_seeds
    from mpat_nb.train import predict_videos

    rows = []
    jobs = [(preset, model_name, grouping) for preset in presets for model_name in models for grouping in decoders]
    clips_by_preset = {}
    for preset, model_name, grouping in tqdm(jobs, desc="ablation", disable=not progress):
        if preset not in clips_by_preset:
            clips_by_preset[preset] = [generate_clip(preset=preset, seed=int(seed), num_frames=num_frames, size=(size, size))
                                       for seed in split_seeds(split, num_clips, offset)]
        clips = clips_by_preset[preset]
        gt = [clip.video for clip in clips]
        predicted = predict_videos(models[model_name], clips, decoders[grouping])
        quality = grouping_quality(gt, predicted)
        rows.append(AblationRow(model_name, grouping, preset, float(evaluate(gt, predicted).total_map),
                                quality.purity, quality.completeness))
    return rows


def ablation_table(rows: Sequence[AblationRow]) -> str:
    """A text table: one line per (model, grouping), mAP / purity / completeness (%) per preset."""
    presets = list(dict.fromkeys(row.preset for row in rows))
    keys = list(dict.fromkeys((row.model, row.grouping) for row in rows))
    by_key = {(row.model, row.grouping, row.preset): row for row in rows}
    width = max([len(f"{m} / {g}") for m, g in keys] + [10])
    header = f"{'model / grouping':{width}s}" + "".join(f" | {p:^20s}" for p in presets)
    sub = f"{'':{width}s}" + "".join(f" | {'mAP':>6s} {'pur':>6s} {'comp':>6s}" for _ in presets)
    lines = [header, sub, "-" * len(sub)]
    for model, grouping in keys:
        cells = []
        for preset in presets:
            row = by_key.get((model, grouping, preset))
            cells.append(" | " + (f"{row.total_map:6.1f} {100 * row.purity:6.1f} {100 * row.completeness:6.1f}"
                                  if row else f"{'':20s}"))
        lines.append(f"{f'{model} / {grouping}':{width}s}" + "".join(cells))
    return "\n".join(lines)
