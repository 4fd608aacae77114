"""Measuring TemporalNet: Human Embedding re-identification and temporal vector field end-point error.

Shared by ``scripts/measure_temporalnet.py``, the validation of :func:`mpat_nb.train_temporal.train_temporalnet`
and notebook 04. Glossary: Q queries, G gallery entries, D embedding size, N people of a frame, T frames,
H x W output grid. Proposals are always the **ground-truth** person boxes (:func:`mpat_nb.codec_temporal.
boxes_from_joints`), so the numbers measure the embeddings, not a detector.

* HE: rank-1 re-identification of the people of frame t among the people of frame t - d of the same
  clip (d = 1, 5, 20 within a shot, and across a shot change), against a colour-histogram appearance baseline
  computed on the same boxes. Chance is the mean of 1 / (gallery size).
* TVF: mean end-point error ``EPE = Z ||T(p) - T*(p)||`` in output pixels over the labelled pixels of frame pairs,
  against the zero-motion baseline (every person stays put: T0(p) = c_n^(t-1) - p, whose EPE is the motion of the
  person's centre, ||c_n^(t) - c_n^(t-1)||) given the ground-truth centre, and the same baseline with SpatialNet's
  own SVF (its predicted centre of the person in the same frame).

Validation clips come from ``split_seeds("val", n)`` (disjoint from the training seeds); frames are letterboxed
into the network input without augmentation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mpat_nb.codec_temporal import encode_tvf_targets
from mpat_nb.config import SVF_NORMALISER
from mpat_nb.data.augment import NO_AUGMENTATION
from mpat_nb.data.pairs import FramePeople, PairBatch, augment_frame
from mpat_nb.losses import temporal_loss
from mpat_nb.models.temporalnet import frozen_spatial_outputs
from mpat_nb.tracking.cuts import colour_bins

#: Frame gaps of the re-identification table: 1, 5 and 20 frames apart (neighbours, the training window's
#: largest gap, and a gap well beyond it) [I].
REID_GAPS: tuple[int, ...] = (1, 5, 20)
#: Bins per RGB channel of the colour-histogram baseline [I: a joint 8 x 8 x 8 histogram, the classic coarse
#: colour descriptor; finer bins split the few hundred pixels of a small person too thinly].
HISTOGRAM_BINS = 8
#: Presets of the TVF table [I]: large displacements and a moving camera, where geometry is hardest.
TVF_PRESETS: tuple[str, ...] = ("fast_motion", "camera_motion")


# ----------------------------------------------------------------------------------------------
# Measurement primitives (hand-checkable)
# ----------------------------------------------------------------------------------------------
def rank1_accuracy(query: torch.Tensor, query_ids, gallery: torch.Tensor, gallery_ids,
                   *, normalize: bool = True) -> tuple[int, int]:
    """Rank-1 re-identification: how many queries have their own identity as nearest gallery entry.

    query: (Q, D), query_ids: (Q,); gallery: (G, D), gallery_ids: (G,). Only queries whose identity is in the
    gallery are counted (a person who left cannot be found). Distance: L2 between L2-normalised vectors
    (``normalize``), as the tracker compares HE (docs/method.md 3.3). Returns (correct, counted).
    """
    query_ids = torch.as_tensor(query_ids).reshape(-1).cpu()
    gallery_ids = torch.as_tensor(gallery_ids).reshape(-1).cpu()
    if query.shape[:1] != query_ids.shape or gallery.shape[:1] != gallery_ids.shape:
        raise ValueError(f"rank1_accuracy: query {tuple(query.shape)} / ids {tuple(query_ids.shape)} and gallery "
                         f"{tuple(gallery.shape)} / ids {tuple(gallery_ids.shape)} must agree in their first axis")
    if len(query_ids) == 0 or len(gallery_ids) == 0:
        return 0, 0
    query, gallery = query.detach().float().cpu(), gallery.detach().float().cpu()
    if normalize:
        query, gallery = F.normalize(query, dim=1), F.normalize(gallery, dim=1)
    counted = (query_ids[:, None] == gallery_ids[None, :]).any(dim=1)                  # (Q,)
    nearest = torch.cdist(query, gallery).argmin(dim=1)                                # (Q,) rank-1 entry
    correct = (gallery_ids[nearest] == query_ids) & counted
    return int(correct.sum()), int(counted.sum())


def colour_histograms(image: torch.Tensor, boxes: torch.Tensor, *, stride: float,
                      bins: int = HISTOGRAM_BINS) -> torch.Tensor:
    """The appearance baseline: a joint RGB histogram of each box, (N, bins**3).

    image: (3, S, S) float in [0, 1] (the network input); boxes: (N, 4) x1, y1, x2, y2 on the output grid
    (pixel-centre convention), mapped to input pixels with ``stride`` = S / output side. Returned as the square
    root of the L1-normalised histogram: unit L2 norm, so the L2 distance of two of them is the Hellinger
    distance of the histograms (a standard histogram distance) and :func:`rank1_accuracy` applies unchanged.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, S, S), got {tuple(image.shape)}")
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    height, width = image.shape[1:]
    rgb = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)   # (S, S, 3)
    codes = torch.from_numpy(colour_bins(rgb.numpy(), bins))                                   # (S, S) joint bin
    histograms = torch.zeros(len(boxes), bins ** 3)
    # output-grid edge e maps to input edge (e + 0.5) * stride - 0.5 (pixel edges to pixel edges)
    edges = (boxes.cpu() + 0.5) * stride - 0.5
    for n, (x1, y1, x2, y2) in enumerate(edges.tolist()):
        left, right = max(0, int(np.ceil(x1))), min(width - 1, int(np.floor(x2)))
        top, bottom = max(0, int(np.ceil(y1))), min(height - 1, int(np.floor(y2)))
        right, bottom = max(right, left), max(bottom, top)                    # at least one pixel
        region = codes[top:bottom + 1, left:right + 1].reshape(-1)
        histograms[n] = torch.bincount(region, minlength=bins ** 3).float()
    return (histograms / histograms.sum(dim=1, keepdim=True).clamp(min=1)).sqrt()


def end_point_error(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[float, int]:
    """Summed end-point error over the labelled pixels, in output pixels, and how many pixels.

    prediction, target: (B, 2, H, W) or (2, H, W) vector fields in units of ``SVF_NORMALISER`` output pixels
    (as TVF, SVF); mask: (B, H, W) or (H, W), > 0 where labelled. EPE(p) = Z ||T(p) - T*(p)||; the mean EPE is
    the first value over the second. Returns (sum, count).
    """
    if prediction.ndim == 3:
        prediction, target, mask = prediction[None], target[None], mask[None]
    mask_shape = target.shape[:1] + target.shape[2:]
    if prediction.shape != target.shape or prediction.shape[1] != 2 or mask.shape != mask_shape:
        raise ValueError(f"end_point_error: prediction and target must be (B, 2, H, W) and mask (B, H, W), got "
                         f"{tuple(prediction.shape)}, {tuple(target.shape)}, {tuple(mask.shape)}")
    error = (prediction.detach().float() - target.float()).norm(dim=1) * SVF_NORMALISER       # (B, H, W)
    labelled = mask > 0
    return float(error[labelled].sum()), int(labelled.sum())


def zero_motion_fields(previous: FramePeople, current: FramePeople,
                       output_size: tuple[int, int] | int) -> tuple[torch.Tensor, torch.Tensor]:
    """The zero-motion baseline of both fields: every person stays where it is.

    previous, current: the people of frames t-1 and t. Returns (forward, backward), each (2, H, W):
    T0(p) = (c_n^(t-1) - p) / Z on frame t-1's pixels and T0'(q) = (c_n^(t) - q) / Z on frame t's, i.e. each
    pixel points to its person's centre in its *own* frame. Against the TVF targets its end-point error at a
    pixel of person n is ||c_n^(t) - c_n^(t-1)||, the motion of the centre.
    """
    own_previous = encode_tvf_targets(previous.joints, previous.centres, previous.track_ids,
                                      previous.joints, previous.centres, previous.track_ids, output_size)
    own_current = encode_tvf_targets(current.joints, current.centres, current.track_ids,
                                     current.joints, current.centres, current.track_ids, output_size)
    return own_previous.forward, own_current.backward


# ----------------------------------------------------------------------------------------------
# Validation on frame pairs (used while training)
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def pair_metrics(spatial: torch.nn.Module, temporal: torch.nn.Module, batches: Iterable[PairBatch]) -> dict[str, float]:
    """Validation of TemporalNet on batches of frame pairs (both models in eval mode afterwards).

    Returns the mean losses (``he``, ``tvf``, ``total``, per pair), ``rank1`` (people of frame t re-identified
    among those of frame t - d of the same pair), ``epe_forward`` / ``epe_backward`` (TVF, output pixels) and
    ``epe_zero_motion`` (the zero-motion baseline, both directions).
    """
    device = next(temporal.parameters()).device
    spatial.eval()
    temporal.eval()
    sums: dict[str, float] = defaultdict(float)
    for batch in batches:
        batch = batch.to(device)
        previous, current = frozen_spatial_outputs(spatial, batch.images_previous, batch.images_current)
        output = temporal(previous, current, batch.boxes_previous, batch.boxes_current, batch.images_previous,
                          batch.images_current)
        ids_previous, ids_current = batch.identities("previous"), batch.identities("current")
        losses = temporal_loss(output, ids_previous, ids_current, batch.tvf)
        size = len(batch.frame_gap)
        sums["pairs"] += size
        for name in ("he", "tvf", "total"):
            sums[name] += float(losses[name]) * size
        output_size = tuple(output.tvf_forward.shape[-2:])
        for b in range(size):
            correct, counted = rank1_accuracy(output.human_embedding_current[b], ids_current[b],
                                              output.human_embedding_previous[b], ids_previous[b])
            sums["rank1_correct"] += correct
            sums["rank1_counted"] += counted
            zero_forward, zero_backward = zero_motion_fields(batch.previous[b].to("cpu"), batch.current[b].to("cpu"),
                                                             output_size)
            for direction, prediction, zero in (("forward", output.tvf_forward[b], zero_forward),
                                                ("backward", output.tvf_backward[b], zero_backward)):
                target = getattr(batch.tvf, direction)[b].cpu()
                mask = getattr(batch.tvf, f"{direction}_mask")[b].cpu()
                error, pixels = end_point_error(prediction.cpu(), target, mask)
                sums[f"epe_{direction}"] += error
                sums[f"pixels_{direction}"] += pixels
                sums["epe_zero_motion"] += end_point_error(zero, target, mask)[0]
    pairs = max(sums["pairs"], 1)
    pixels = sums["pixels_forward"] + sums["pixels_backward"]
    return {"he": sums["he"] / pairs, "tvf": sums["tvf"] / pairs, "total": sums["total"] / pairs,
            "rank1": _ratio(sums["rank1_correct"], sums["rank1_counted"]),
            "epe_forward": _ratio(sums["epe_forward"], sums["pixels_forward"]),
            "epe_backward": _ratio(sums["epe_backward"], sums["pixels_backward"]),
            "epe_zero_motion": _ratio(sums["epe_zero_motion"], pixels)}


# ----------------------------------------------------------------------------------------------
# The two tables of scripts/measure_temporalnet.py: HE re-identification and TVF end-point error on validation clips
# ----------------------------------------------------------------------------------------------
@dataclass
class ReidResult:
    """One row of the re-identification table: queries of frame t against the gallery of frame t - d."""

    name: str
    frame_pairs: int = 0
    queries: int = 0                 # people of frame t whose identity is in frame t - d
    correct_he: int = 0
    correct_histogram: int = 0
    chance_sum: float = 0.0          # sum over the queries of 1 / gallery size

    @property
    def rank1_he(self) -> float:
        return _ratio(self.correct_he, self.queries)

    @property
    def rank1_histogram(self) -> float:
        return _ratio(self.correct_histogram, self.queries)

    @property
    def chance(self) -> float:
        return _ratio(self.chance_sum, self.queries)


@dataclass
class TVFResult:
    """One row of the TVF table: one preset, one direction (forward t-1 -> t, backward t -> t-1)."""

    preset: str
    direction: str
    frame_pairs: int = 0
    pixels: int = 0
    error_tvf: float = 0.0           # summed end-point errors, output pixels
    error_zero_motion: float = 0.0
    error_svf: float = 0.0

    @property
    def epe_tvf(self) -> float:
        return _ratio(self.error_tvf, self.pixels)

    @property
    def epe_zero_motion(self) -> float:
        return _ratio(self.error_zero_motion, self.pixels)

    @property
    def epe_svf(self) -> float:
        return _ratio(self.error_svf, self.pixels)


@dataclass
class _FrameData:
    """What the measurements need of one frame: network input, people, SpatialNet maps (all on the CPU)."""

    image: torch.Tensor                        # (3, S, S)
    people: FramePeople
    features: torch.Tensor | None = None       # (C, H, W)
    heatmaps: torch.Tensor | None = None       # (K, H, W)
    svf: torch.Tensor | None = None            # (2, H, W)
    human_embedding: torch.Tensor | None = None  # (N, D)
    histogram: torch.Tensor | None = None      # (N, bins**3)


@torch.no_grad()
def measure_reid(spatial: torch.nn.Module, temporal: torch.nn.Module, *, num_clips: int = 8, num_frames: int = 30,
                 gaps: Sequence[int] = REID_GAPS, preset: str = "mixed", shot_preset: str = "shot_change",
                 render_size: int = 256, batch_size: int = 8, progress: bool = False) -> list[ReidResult]:
    """HE rank-1 re-identification across ``gaps`` (within a shot, ``preset`` clips) and across shot changes.

    spatial, temporal: trained SpatialNet and TemporalNet (same device; put in eval mode). Clips:
    ``split_seeds("val", num_clips)`` of ``num_frames`` frames at ``render_size`` pixels. For every frame t and
    gap d with t - d in the same shot, the people of t are queries and those of t - d the gallery; the shot-change
    row pairs the last frame before each cut (``events["shot_cuts"]``) with the first one after it, on
    ``shot_preset`` clips. Returns one :class:`ReidResult` per gap, then the shot-change row.
    """
    from mpat_nb.data.synth import SyntheticVideoSource, generate_clip, split_seeds

    if max(gaps, default=0) >= num_frames:
        raise ValueError(f"a gap of {max(gaps)} frames needs clips of more than {max(gaps)} frames, got "
                         f"num_frames={num_frames}")
    spatial.eval()
    temporal.eval()
    size = (render_size, render_size)
    rows = [ReidResult(f"{gap} frame{'s' if gap > 1 else ''} apart ({preset})") for gap in gaps]
    seeds = [int(s) for s in split_seeds("val", num_clips)]
    for seed in _progress(seeds, progress, f"re-id {preset}"):
        clip = generate_clip(preset, seed, num_frames, size)
        frames = [_prepare(image, frame.people, spatial) for image, frame in zip(clip.frames, clip.video.frames)]
        _embed(spatial, temporal, frames, batch_size)
        shot = _shot_index(clip.events.get("shot_cuts", []), len(frames))
        for row, gap in zip(rows, gaps):
            for t in range(gap, len(frames)):
                if shot[t] == shot[t - gap]:
                    _add_reid(row, frames[t], frames[t - gap])
    cut_row = ReidResult(f"across a shot change ({shot_preset})")
    for seed in _progress(seeds, progress, f"re-id {shot_preset}"):
        source = SyntheticVideoSource(shot_preset, seed, num_frames, size)   # renders only the frames asked for
        for cut in source.events.get("shot_cuts", []):
            if cut < 1:
                continue
            before, after = source[cut - 1], source[cut]
            frames = [_prepare(f.image, f.frame.people, spatial) for f in (before, after)]
            _embed(spatial, temporal, frames, batch_size)
            _add_reid(cut_row, frames[1], frames[0])
    return [*rows, cut_row]


@torch.no_grad()
def measure_tvf(spatial: torch.nn.Module, temporal: torch.nn.Module, *, presets: Sequence[str] = TVF_PRESETS,
                num_clips: int = 8, num_frames: int = 10, frame_gap: int = 1, render_size: int = 256,
                batch_size: int = 8, progress: bool = False) -> list[TVFResult]:
    """TVF end-point error on pairs (t - frame_gap, t) of the same shot, against the zero-motion baselines.

    spatial, temporal: as :func:`measure_reid`. Per preset, ``split_seeds("val", num_clips)`` clips; every pair
    of the clip is measured on the labelled pixels of its TVF targets (people present in both frames). Returns
    one :class:`TVFResult` per preset and direction (forward, backward), errors in output pixels.
    """
    from mpat_nb.data.synth import SyntheticVideoSource, split_seeds

    if not 1 <= frame_gap < num_frames:
        raise ValueError(f"need 1 <= frame_gap < num_frames, got {frame_gap} and {num_frames}")
    spatial.eval()
    temporal.eval()
    device = next(temporal.parameters()).device
    results = []
    for preset in presets:
        rows = {d: TVFResult(preset, d) for d in ("forward", "backward")}
        for seed in _progress([int(s) for s in split_seeds("val", num_clips)], progress, f"tvf {preset}"):
            source = SyntheticVideoSource(preset, seed, num_frames, (render_size, render_size))
            frames = [_prepare(f.image, f.frame.people, spatial) for f in source]
            _spatial_maps(spatial, frames, batch_size)
            shot = _shot_index(source.events.get("shot_cuts", []), len(frames))
            pairs = [(t - frame_gap, t) for t in range(frame_gap, len(frames)) if shot[t] == shot[t - frame_gap]]
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start:start + batch_size]
                stacked = {name: [torch.stack([getattr(frames[i], name) for i, _ in chunk]).to(device),
                                  torch.stack([getattr(frames[j], name) for _, j in chunk]).to(device)]
                           for name in ("features", "heatmaps", "svf")}
                tvf_forward, tvf_backward = temporal.temporal_instance(
                    stacked["features"][0], stacked["heatmaps"][0], stacked["svf"][0],
                    stacked["features"][1], stacked["heatmaps"][1], stacked["svf"][1])
                for k, (i, j) in enumerate(chunk):
                    _add_tvf(rows, frames[i], frames[j], tvf_forward[k].cpu(), tvf_backward[k].cpu())
        results += [rows["forward"], rows["backward"]]
    return results


def format_reid_table(results: Sequence[ReidResult]) -> str:
    """A Markdown table of :func:`measure_reid` results (rank-1 in %)."""
    lines = ["| frames compared | frame pairs | queries | HE rank-1 | colour histogram rank-1 | chance |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.frame_pairs} | {r.queries} | {100 * r.rank1_he:.1f} % | "
              f"{100 * r.rank1_histogram:.1f} % | {100 * r.chance:.1f} % |" for r in results]
    return "\n".join(lines)


def format_tvf_table(results: Sequence[TVFResult], output_size: int | None = None) -> str:
    """A Markdown table of :func:`measure_tvf` results (mean end-point errors in output pixels)."""
    unit = f"output px of {output_size} x {output_size}" if output_size else "output px"
    lines = [f"| clips | field | frame pairs | labelled pixels | TVF EPE ({unit}) | zero motion, GT centre | "
             "zero motion, SpatialNet SVF |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.preset} | {r.direction} | {r.frame_pairs} | {r.pixels} | {r.epe_tvf:.2f} | "
              f"{r.epe_zero_motion:.2f} | {r.epe_svf:.2f} |" for r in results]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _prepare(image: np.ndarray, people, spatial: torch.nn.Module) -> _FrameData:
    """Letterbox one frame into SpatialNet's input (no augmentation) and put its people on the output grid."""
    config = spatial.config
    tensor, frame_people = augment_frame(image, people, NO_AUGMENTATION, config.input_size, config.output_size)
    return _FrameData(tensor, frame_people)


def _spatial_maps(spatial: torch.nn.Module, frames: list[_FrameData], batch_size: int) -> None:
    """Fill features, heatmaps and SVF (last stack) of every frame, batch by batch."""
    device = next(spatial.parameters()).device
    for start in range(0, len(frames), batch_size):
        chunk = frames[start:start + batch_size]
        output = spatial(torch.stack([f.image for f in chunk]).to(device))
        for k, frame in enumerate(chunk):
            frame.features = output.features[k].float().cpu()
            frame.heatmaps = output.heatmaps_final[k].float().cpu()
            frame.svf = output.svf_final[k].float().cpu()


def _embed(spatial: torch.nn.Module, temporal: torch.nn.Module, frames: list[_FrameData], batch_size: int) -> None:
    """Fill the Human Embedding and the colour histogram of every person of every frame (GT boxes)."""
    _spatial_maps(spatial, frames, batch_size)
    device = next(temporal.parameters()).device
    stride = spatial.config.input_size / spatial.config.output_size
    for start in range(0, len(frames), batch_size):
        chunk = frames[start:start + batch_size]
        embeddings = temporal.human_embedding(torch.stack([f.features for f in chunk]).to(device),
                                              [f.people.boxes.to(device) for f in chunk],
                                              torch.stack([f.image for f in chunk]).to(device))
        for frame, embedding in zip(chunk, embeddings):
            frame.human_embedding = embedding.float().cpu()
            frame.histogram = colour_histograms(frame.image, frame.people.boxes, stride=stride)
            frame.features = frame.heatmaps = frame.svf = None                   # free the maps: T x C x H x W


def _add_reid(row: ReidResult, query: _FrameData, gallery: _FrameData) -> None:
    ids_query, ids_gallery = query.people.track_ids, gallery.people.track_ids
    correct, counted = rank1_accuracy(query.human_embedding, ids_query, gallery.human_embedding, ids_gallery)
    correct_histogram, _ = rank1_accuracy(query.histogram, ids_query, gallery.histogram, ids_gallery)
    row.frame_pairs += 1
    row.queries += counted
    row.correct_he += correct
    row.correct_histogram += correct_histogram
    row.chance_sum += counted / max(len(ids_gallery), 1)


def _add_tvf(rows: dict[str, TVFResult], previous: _FrameData, current: _FrameData, tvf_forward: torch.Tensor,
             tvf_backward: torch.Tensor) -> None:
    output_size = tuple(tvf_forward.shape[-2:])
    targets = encode_tvf_targets(previous.people.joints, previous.people.centres, previous.people.track_ids,
                                 current.people.joints, current.people.centres, current.people.track_ids, output_size)
    zero_forward, zero_backward = zero_motion_fields(previous.people, current.people, output_size)
    for direction, prediction, zero, svf in (("forward", tvf_forward, zero_forward, previous.svf),
                                             ("backward", tvf_backward, zero_backward, current.svf)):
        target, mask = getattr(targets, direction), getattr(targets, f"{direction}_mask")
        row = rows[direction]
        row.frame_pairs += 1
        error, pixels = end_point_error(prediction, target, mask)
        row.error_tvf += error
        row.pixels += pixels
        row.error_zero_motion += end_point_error(zero, target, mask)[0]
        row.error_svf += end_point_error(svf, target, mask)[0]


def _shot_index(cuts: Sequence[int], num_frames: int) -> np.ndarray:
    """(T,) index of the shot of every frame, from the first frames of the new shots."""
    return np.searchsorted(np.asarray(sorted(cuts), dtype=np.int64), np.arange(num_frames), side="right")


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / denominator if denominator else float("nan")


def _progress(items, enabled: bool, description: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description)


__all__ = ["rank1_accuracy", "colour_histograms", "end_point_error", "zero_motion_fields", "pair_metrics",
           "measure_reid", "measure_tvf", "format_reid_table", "format_tvf_table", "ReidResult", "TVFResult",
           "REID_GAPS", "HISTOGRAM_BINS", "TVF_PRESETS"]
