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

from mpat_nb.decode import DecodeConfig, tuned_decode_config
from mpat_nb.grouping_quality import Separation

#: The four groupings of the ablation, in the paper's order (DecodeConfig fields; the bandwidths come from the
#: model's tuning, :func:`ablation_decoders`).
ABLATION_GROUPINGS: dict[str, dict] = {
    "KE only (AE)": {"embedding": "ke"},
    "SIE only": {"embedding": "sie"},
    "KE+SIE": {"embedding": "ke+sie"},
    "KE+SIE+PGG": {"embedding": "ke+sie", "pgg_iterations": 1},
}

#: delta_SIE values (fractions of the output width) that :func:`tune_sie_bandwidth` tries.
SIE_BANDWIDTH_GRID = tuple(b / 128 for b in (6, 12, 18, 24, 32, 48, 64, 96))


def ablation_decoders(model, **changes) -> dict[str, DecodeConfig]:
    """The four groupings of :data:`ABLATION_GROUPINGS` for ``model``, with the bandwidths tuned for its weights
    (``mpat_nb.decode.tuned_decode_config``) unless ``changes`` sets them."""
    return {name: tuned_decode_config(model, **{**fields, **changes}) for name, fields in ABLATION_GROUPINGS.items()}


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
                      decoders: Mapping[str, DecodeConfig] | None = None, num_clips: int = 4,
                      num_frames: int = 8, size: int = 256, split: str = "val", offset: int = 0,
                      progress: bool = True) -> list[AblationRow]:
    """Decode the clips of every preset with every grouping, for every model.

    models: name -> SpatialNet (eval mode). decoders: grouping name -> DecodeConfig, the same for every model;
    None: :func:`ablation_decoders` of each model (its tuned bandwidths). Clips come from the generator's seeds of ``split`` (default the
    validation seeds, which never overlap the training data; ``"train"`` with a large ``offset`` is for
    choosing decoding parameters without looking at the validation clips).
    """
    from mpat_nb.data.synth import generate_clip, split_seeds
    from mpat_nb.decode import predict_videos
    from mpat_nb.evaluate import evaluate
    from mpat_nb.grouping_quality import grouping_quality

    rows = []
    per_model = {name: dict(decoders) if decoders is not None else ablation_decoders(model) for name, model in models.items()}
    jobs = [(preset, model_name, grouping) for preset in presets for model_name in models
            for grouping in per_model[model_name]]
    clips_by_preset = {}
    for preset, model_name, grouping in tqdm(jobs, desc="ablation", disable=not progress):
        if preset not in clips_by_preset:
            clips_by_preset[preset] = [generate_clip(preset=preset, seed=int(seed), num_frames=num_frames, size=(size, size))
                                       for seed in split_seeds(split, num_clips, offset)]
        clips = clips_by_preset[preset]
        gt = [clip.video for clip in clips]
        predicted = predict_videos(models[model_name], clips, per_model[model_name][grouping])
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


def tune_sie_bandwidth(model, grouping: str = "KE+SIE", presets: Sequence[str] = ("crowd", "interaction"), *,
                       grid: Sequence[float] = SIE_BANDWIDTH_GRID, num_clips: int = 3, num_frames: int = 6,
                       offset: int = 500_000, progress: bool = True) -> tuple[float, list[AblationRow]]:
    """(best delta_SIE, the rows measured): the ``grid`` value whose ``grouping`` gives the highest mAP summed over
    ``presets``, on *training* seeds from ``offset`` (never the validation clips the README reports).

    Store the result in the checkpoint with ``mpat_nb.checkpoints.store_decode_tuning(path, {"sie_bandwidth": b})``
    (``scripts/tune_decoding.py --write`` does both).
    """
    fields = ABLATION_GROUPINGS[grouping]
    decoders = {f"{grouping} delta_SIE {b * 128:g}/128": tuned_decode_config(model, **fields, sie_bandwidth=b)
                for b in grid}
    rows = grouping_ablation({"model": model}, presets, decoders=decoders, num_clips=num_clips, num_frames=num_frames,
                             split="train", offset=offset, progress=progress)
    totals = {b: sum(row.total_map for row in rows if row.grouping == name) for b, name in zip(grid, decoders)}
    return max(totals, key=totals.get), rows


def pgg_separation(model, clips, decode_config: DecodeConfig, iterations: Sequence[int] = (0, 1, 3),
                   match_radius: float = 1.5) -> dict[int, Separation]:
    """Between / within-person separation of the detected joints' KE + SIE embeddings after R PGG iterations.

    For every frame of ``clips``: the candidates above the detection threshold (``decode_config``'s bandwidths and
    thresholds), each owned by the GT person whose same joint lies within ``match_radius`` output pixels;
    :func:`mpat_nb.grouping_quality.embedding_separation` of [ke / delta_KE, sie / (delta_SIE W)] (docs/method.md 2.6,
    Eq. (2)) after R = 0, 1, 3 ... iterations, averaged over the frames with two people or more. Returns
    {R: Separation}.
    """
    import numpy as np
    import torch

    from mpat_nb.codec import joints_to_output_coords
    from mpat_nb.data.augment import NO_AUGMENTATION, augment_joints
    from mpat_nb.data.datasets import people_to_arrays
    from mpat_nb.decode import extract_candidates, model_maps, prepare_image
    from mpat_nb.grouping_quality import embedding_separation
    from mpat_nb.models.pgg import PoseGuidedGrouping

    size_in, size_out = model.config.input_size, model.config.output_size
    device = next(model.parameters()).device
    found: dict[int, list] = {r: [] for r in iterations}
    for clip in clips:
        for image, gt_frame in zip(clip.frames, clip.video.frames):
            tensor = prepare_image(image, size_in)[None].to(device)                               # (1, 3, S, S)
            with torch.no_grad():
                maps = model_maps(model.eval(), tensor)
            candidates = extract_candidates(maps["heatmaps"], maps["ke"], maps["svf"], decode_config)[0]
            detected = candidates.scores > decode_config.grouping.detection_threshold             # (K, M)
            gt_joints, _, _ = people_to_arrays(gt_frame.people)                                   # (N, K, 3)
            if len(gt_joints) < 2 or detected.sum() < 4:
                continue
            source = (image.shape[1], image.shape[0])
            gt_out = joints_to_output_coords(augment_joints(gt_joints, NO_AUGMENTATION, source, (size_in, size_in)),
                                             size_in, size_out)                                   # (N, K, 3)
            distance = np.linalg.norm(candidates.xy[None] - gt_out[:, :, None, :2], axis=-1)     # (N, K, M)
            distance = np.where(gt_out[:, :, None, 2] > 0, distance, np.inf)
            owner = np.where(distance.min(axis=0) < match_radius, distance.argmin(axis=0), -1)[detected]   # (M',)
            ke = torch.as_tensor(candidates.ke[detected], dtype=torch.float32)[None]               # (1, M', E)
            sie = torch.as_tensor(candidates.sie[detected], dtype=torch.float32)[None]             # (1, M', 2)
            valid = torch.ones(ke.shape[:2], dtype=torch.bool)
            for r in iterations:
                pgg = PoseGuidedGrouping(iterations=r, ke_bandwidth=decode_config.ke_bandwidth,
                                         sie_bandwidth=decode_config.sie_bandwidth)
                with torch.no_grad():
                    embeddings = pgg(ke, sie, valid, size_out).embeddings[0].numpy()               # (M', E + 2)
                separation = embedding_separation(embeddings, owner)
                if np.isfinite(separation.ratio):
                    found[r].append(separation)
    return {r: Separation(*(float(np.mean([getattr(s, f) for s in values])) if values else float("nan")
                            for f in ("within", "between", "ratio")))
            for r, values in found.items()}
