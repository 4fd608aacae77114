"""End-to-end tracking evaluation of the shipped tiny models: our tracker against its variants and two baselines.

Runs SpatialNet + TemporalNet once per frame on the validation clips of every generator preset, tracks the
same observations with every variant (ours HE+TIE, HE only, TIE only, ours + memory, greedy OKS, Hungarian
IoU) and prints PoseTrack-style tables (total MOTA, id switches, mAP per preset; per-joint AP and MOTA on
``mixed``) for predicted poses and for ground-truth poses (tracking only).

    python scripts/evaluate_tracking.py                        # the README / note tables (~10 min on 2 CPU cores)
    python scripts/evaluate_tracking.py --calibrate            # re-measure tau_HE, tau_TIE, the cut threshold
                                                               # and each tracker's knobs on training seeds
    python scripts/evaluate_tracking.py --clips 1 --frames 10 --presets mixed   # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
from _results import fenced, write_results

from mpat_nb.checkpoints import load_spatialnet, load_temporalnet, shipped_checkpoint
from mpat_nb.data.synth import PRESETS
from mpat_nb.tracking.calibrate import calibrate_cut_threshold, calibrate_taus, grid_search
from mpat_nb.tracking.config import VARIANTS, TrackerConfig
from mpat_nb.tracking.evaluation import SOURCES, evaluate_variants, observe_clips, results_table
from mpat_nb.utils import atomic_write_text, get_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="clips per preset (validation seeds)")
    parser.add_argument("--frames", type=int, default=30, help="frames per clip")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--spatial", default=None, help="SpatialNet checkpoint (default: shipped tiny)")
    parser.add_argument("--temporal", default=None, help="TemporalNet checkpoint (default: shipped tiny)")
    parser.add_argument("--calibrate", action="store_true",
                        help="on training-seed clips: measure tau_HE / tau_TIE, then tune each variant's threshold")
    parser.add_argument("--cut-threshold", default=None,
                        help="TrackerConfig.cut_threshold for this run: a number, or 'none' to never detect shot "
                             "cuts (TIE then stays in the cost across cuts); default: the library's")
    parser.add_argument("--json", default=None, help="also write the totals to this JSON file (with --calibrate: "
                        "the calibration, every search and the tuned values, e.g. results/tracker_calibration.json)")
    parser.add_argument("--save", action="store_true",
                        help="write results/tracking.json and .md (with --calibrate: results/tracker_calibration.*), "
                             "the README's tables and the TrackerConfig defaults' source; the shipped models")
    args = parser.parse_args()

    device = get_device()
    spatial = load_spatialnet(args.spatial or shipped_checkpoint("spatialnet_tiny.pt"), device=device)
    temporal = load_temporalnet(args.temporal or shipped_checkpoint("temporalnet_tiny.pt"), device=device)
    started = time.perf_counter()
    if args.calibrate:
        clips = observe_clips(spatial, temporal, args.presets, num_clips=args.clips, num_frames=args.frames,
                              split="train", progress=True)
        taus = calibrate_taus([c.observations["ground truth"] for c in clips])
        print("calibration on training seeds (ground-truth poses, consecutive frames):")
        print(json.dumps(taus, indent=2))
        cut = calibrate_cut_threshold(clips)
        print(f"frame_change within shots: at most {cut['within_max']:.3f}; at the {cut['cuts']:.0f} cuts: at least "
              f"{cut['cut_min']:.3f} -> cut_threshold {cut['threshold']:.3f}")
        base = dataclasses.replace(TrackerConfig(), tau_he=taus["tau_he"], tau_tie=taus["tau_tie"],
                                   tau_pose=taus["tau_pose"])
        # Association knobs on ground-truth poses (tracking isolated from detection errors), then the output
        # joint threshold on predicted poses (it trades AP for MOTA: a detection knob).
        grids = [("HE+TIE", "weight_tie", (0.0, 0.1, 0.25, 0.5, 1.0), "ground truth"),
                 ("HE+TIE", "weight_pose", (0.0, 0.1, 0.25, 0.5, 1.0), "ground truth"),
                 ("HE+TIE", "max_cost", (1.5, 2.0, 2.5, 3.0, 4.0, 6.0), "ground truth"),
                 ("HE+TIE+memory", "memory_max_cost", (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0), "ground truth"),
                 ("greedy OKS", "oks_threshold", (0.05, 0.1, 0.2, 0.3, 0.5), "ground truth"),
                 ("Hungarian IoU", "iou_threshold", (0.05, 0.1, 0.2, 0.3, 0.5), "ground truth"),
                 ("HE+TIE", "min_joint_score", (0.2, 0.3, 0.4, 0.5, 0.6, 0.7), "predicted")]
        print("\ntotal MOTA on the training-seed clips, one knob at a time (each baseline tuned the same way):")
        searches = []
        for variant, knob, values, source in grids:
            scores = grid_search(clips, variant, knob, values, base, source=source)
            best = max(scores, key=lambda pair: pair[1])[0]
            base = dataclasses.replace(base, **{knob: best})
            searches.append({"variant": variant, "knob": knob, "source": source, "best": best,
                             "total_mota": {f"{v:g}": m for v, m in scores}})
            print(f"  {variant:14s} {knob:16s} ({source} poses) "
                  + "  ".join(f"{v:g}: {m:5.1f}" for v, m in scores) + f"  -> {best:g}")
        tuned = {"tau_he": round(taus["tau_he"], 3), "tau_tie": round(taus["tau_tie"], 3),
                 "tau_pose": round(taus["tau_pose"], 3), **{s["knob"]: s["best"] for s in searches}}
        print("\nTrackerConfig defaults to set (mpat_nb/tracking/config.py): "
              + ", ".join(f"{k}={v:g}" for k, v in tuned.items()))
        record = {"clips_per_preset": args.clips, "frames": args.frames, "presets": list(args.presets),
                  "split": "train", "taus": taus, "cut_threshold": cut, "searches": searches, "tuned": tuned}
        if args.json:
            atomic_write_text(args.json, json.dumps(record, indent=2) + "\n")
            print(f"wrote {args.json}")
        if args.save:
            lines = ["| tracker | knob | poses | " + " | ".join(["MOTA at each value"]) + " | chosen |",
                     "|---|---|---|---|---:|"]
            lines += [f"| {s['variant']} | {s['knob']} | {s['source']} | "
                      + ", ".join(f"{v}: {m:.1f}" for v, m in s["total_mota"].items()) + f" | {s['best']:g} |"
                      for s in searches]
            write_results("tracker_calibration", record,
                          f"Training seeds, {args.clips} clips x {args.frames} frames of each preset. Scales (median "
                          f"distance of true consecutive pairs, ground-truth poses): tau_HE {taus['tau_he']:.3f}, "
                          f"tau_TIE {taus['tau_tie']:.3f}, tau_pose {taus['tau_pose']:.3f}. Shot cuts: frame change "
                          f"at most {cut['within_max']:.3f} within shots, at least {cut['cut_min']:.3f} at the "
                          f"{cut['cuts']:.0f} cuts. One knob at a time, total MOTA:\n\n" + "\n".join(lines))
        return
    clips = observe_clips(spatial, temporal, args.presets, num_clips=args.clips, num_frames=args.frames,
                          progress=True)
    config = TrackerConfig()
    if args.cut_threshold is not None:
        threshold = None if args.cut_threshold.lower() == "none" else float(args.cut_threshold)
        config = dataclasses.replace(config, cut_threshold=threshold)
    results = evaluate_variants(clips, VARIANTS, config)
    caption = (f"cut_threshold {config.cut_threshold}; {args.clips} validation clips x {args.frames} frames per "
               f"preset")
    tables = [results_table(results, source, metric) for source in SOURCES for metric in ("mota", "switches", "map")]
    print(f"{caption}, device {device}, {time.perf_counter() - started:.0f} s\n")
    print("\n\n".join(tables) + "\n")
    for source in SOURCES:
        for result in results:
            if result.preset == "mixed" and result.source == source and result.variant in ("HE+TIE", "greedy OKS"):
                print(f"mixed, {source} poses, {result.variant}:\n{result.result.table()}\n")
    ours = [r for r in results if r.variant == "HE+TIE" and r.source == "predicted"]
    timing = (f"per frame (predicted poses, HE+TIE) on {device}: network + decoding "
              f"{sum(r.network_ms for r in ours) / len(ours):.1f} ms, association "
              f"{sum(r.association_ms for r in ours) / len(ours):.2f} ms")
    print(timing)
    totals = [{"preset": r.preset, "variant": r.variant, "source": r.source, "mota": r.result.total_mota,
               "map": r.result.total_map, "id_switches": r.id_switches, "association_ms": r.association_ms,
               "network_ms": r.network_ms} for r in results]
    if args.json:
        atomic_write_text(args.json, json.dumps(totals, indent=2) + "\n")
    if args.save:
        write_results("tracking", totals, f"{caption}; {timing}.\n\n" + "\n\n".join(fenced(t) for t in tables))

if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
