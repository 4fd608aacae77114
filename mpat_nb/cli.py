"""The mpat-nb command line: generate synthetic clips, train, track a video, evaluate predictions, run the demo.

Every sub-command prints a single-line error and exits with status 2 on bad input (missing file,
malformed JSON, unknown preset, bad size), leaving no partial output behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mpat_nb.utils import InputError, TrainingError

#: ``mpat-nb track --tracker`` choices (mirrors :data:`mpat_nb.tracking.config.VARIANTS`; kept here so that
#: ``--help`` does not import torch).
VARIANTS_FOR_CLI = ("HE+TIE", "HE only", "TIE only", "HE+TIE+memory", "greedy OKS", "Hungarian IoU")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mpat-nb`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except (InputError, TrainingError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"mpat-nb {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        print(f"mpat-nb {args.command}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpat-nb", description=__doc__.splitlines()[0])
    from mpat_nb import __version__

    parser.add_argument("--version", action="version", version=f"mpat_nb {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    generate = commands.add_parser("generate", help="write a synthetic multi-person clip (frames + PoseTrack18 JSON)",
                                   description="Write a synthetic multi-person articulated clip: frames as JPEG and "
                                               "annotations as PoseTrack18 JSON under OUT/images and OUT/annotations.")
    generate.add_argument("--preset", default="mixed", help="scene preset (see --list-presets); default: mixed")
    generate.add_argument("--seed", type=int, default=0, help="random seed (same seed, same clip); default: 0")
    generate.add_argument("--frames", type=int, default=30, help="number of frames; default: 30")
    generate.add_argument("--size", type=parse_size, default=(256, 256), help="frame size WxH; default: 256x256")
    generate.add_argument("--out", type=Path, default=Path("synthetic"), help="output folder; default: ./synthetic")
    generate.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    generate.set_defaults(handler=_cmd_generate)

    evaluate = commands.add_parser("evaluate", help="PoseTrack mAP and MOTA of predictions against ground truth",
                                   description="Evaluate PoseTrack predictions (per-joint AP / mAP and MOTA) like the "
                                               "official tool. GT and PRED are PoseTrack17/18 JSON files or folders of "
                                               "them (one per video, matched by file name).")
    evaluate.add_argument("--gt", type=Path, required=True, help="ground-truth JSON file or folder")
    evaluate.add_argument("--pred", type=Path, required=True, help="prediction JSON file or folder")
    evaluate.add_argument("--json", type=Path, default=None, help="also write the totals to this JSON file")
    evaluate.add_argument("--strict", action="store_true",
                          help="strict CLEAR-MOT instead of the official tool's rules (no phantom rule, last frame kept)")
    evaluate.set_defaults(handler=_cmd_evaluate)

    train = commands.add_parser("train", help="train a model (spatial: SpatialNet; pgg: its PGG fine-tuning "
                                              "stage; temporal: TemporalNet on a frozen SpatialNet)",
                                description="Train SpatialNet on synthetic data generated on the fly, or on real "
                                            "PoseTrack / COCO annotations; 'pgg' fine-tunes a trained SpatialNet "
                                            "(--init) with L_PGG (lr 1e-5 unless --lr is given); 'temporal' trains "
                                            "TemporalNet (HE + TIE) on synthetic frame pairs with the SpatialNet of "
                                            "--spatial-checkpoint frozen. Checkpoints (OUT/last.pt) resume exactly "
                                            "with --resume.")
    train.add_argument("stage", choices=["spatial", "pgg", "temporal"], help="what to train")
    train.add_argument("--preset", default="tiny",
                       help="model preset: tiny, small or paper (temporal: the TemporalNet preset, tiny or paper); "
                            "default: tiny")
    train.add_argument("--steps", type=int, default=3000, help="optimiser steps; default: 3000")
    train.add_argument("--batch-size", type=int, default=16,
                       help="images (temporal: frame pairs) per step; default: 16")
    train.add_argument("--lr", type=float, default=None,
                       help="initial learning rate (Adam); default: 2e-4 (spatial, temporal), 1e-5 (pgg)")
    train.add_argument("--init", default=None, help="start from the weights of this checkpoint (required for pgg)")
    train.add_argument("--pgg-iterations", type=int, default=1, help="pgg stage: mean-shift iterations R; default: 1")
    train.add_argument("--det-foreground-weight", type=float, default=0.0,
                       help="weight 1 + ALPHA x target on heatmap pixels (0: the paper's plain MSE); default: 0")
    train.add_argument("--decode-embedding", default="ke", choices=["ke", "sie", "ke+sie"],
                       help="what validation groups by (spatial stage); default: ke (associative embedding)")
    train.add_argument("--data", default="synthetic", choices=["synthetic", "posetrack", "coco"], help="training data")
    train.add_argument("--synth-preset", default="mixed", help="generator preset for synthetic data and validation")
    train.add_argument("--annotations", default=None, help="real data: annotation file or folder")
    train.add_argument("--image-root", default=None, help="real data: folder the image file names are relative to")
    train.add_argument("--val-every", type=int, default=500,
                       help="steps between validations (mAP; temporal: HE rank-1 and TVF error); default: 500")
    train.add_argument("--max-minutes", type=float, default=None,
                       help="wall-clock budget: stop (validate and save) when spent; the lr drop moves with it")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--workers", type=int, default=0, help="DataLoader worker processes; default: 0")
    train.add_argument("--device", default=None, help="cuda, mps or cpu; default: the best available")
    train.add_argument("--out", type=Path, default=None,
                       help="output folder; default: runs/spatialnet (temporal: runs/temporalnet)")
    train.add_argument("--resume", type=Path, default=None, help="checkpoint to resume from (e.g. OUT/last.pt)")
    train.add_argument("--spatial-checkpoint", default=None,
                       help="temporal: the frozen SpatialNet; default: the shipped spatialnet_<preset>.pt")
    train.add_argument("--resnet50-weights", default=None,
                       help="temporal: a torchvision ResNet-50 state dict initialising the HE branch (paper preset); "
                            "default: train it from scratch")
    train.set_defaults(handler=_cmd_train)

    demo = commands.add_parser("demo", help="run the end-to-end demo and write its outputs",
                               description="Generate a synthetic clip, track it with the shipped tiny models (ours "
                                           "and the greedy-OKS baseline), evaluate both (PoseTrack mAP / MOTA) and "
                                           "write the tracked video (MP4, GIF), a PNG strip and the metric tables.")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder; default: ./demo_output")
    demo.add_argument("--preset", default="mixed", help="scene preset; default: mixed")
    demo.add_argument("--seed", type=int, default=7, help="random seed; default: 7")
    demo.add_argument("--frames", type=int, default=40, help="number of frames; default: 40")
    demo.add_argument("--size", type=parse_size, default=(256, 256), help="frame size WxH; default: 256x256")
    demo.add_argument("--device", default=None, help="cuda, mps or cpu; default: the best available")
    demo.set_defaults(handler=_cmd_demo)

    track = commands.add_parser(
        "track", help="track the people of a video file or a folder of frames",
        description="Detect poses (SpatialNet), embed them (TemporalNet: HE and TIE) and track them online. Writes "
                    "OUT/<name>_tracked.mp4 (skeletons coloured by track id), OUT/<name>.json (PoseTrack18 with "
                    "track ids) and OUT/<name>_summary.json. Default models: the shipped tiny checkpoints.")
    track.add_argument("video", type=Path, help="a video file (.mp4, .avi, ...) or a folder of frames (.jpg/.png)")
    track.add_argument("--out", type=Path, default=Path("tracking_output"), help="output folder; default: ./tracking_output")
    track.add_argument("--temporal-checkpoint", default=None, help="TemporalNet checkpoint; default: the shipped tiny one")
    track.add_argument("--spatial-checkpoint", default=None,
                       help="SpatialNet checkpoint; default: the one the TemporalNet checkpoint was trained on")
    track.add_argument("--tracker", default="HE+TIE", choices=VARIANTS_FOR_CLI,
                       help="association: ours (HE+TIE), an ablation or a baseline; default: HE+TIE")
    track.add_argument("--pgg", action="store_true", help="decode poses with Pose-Guided Grouping (KE + SIE)")
    track.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    track.add_argument("--fps", type=float, default=10.0, help="frame rate of the written MP4; default: 10")
    track.add_argument("--device", default=None, help="cuda, mps or cpu; default: the best available")
    track.set_defaults(handler=_cmd_track)
    return parser


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``320x240``) into (width, height)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like WIDTHxHEIGHT (e.g. 256x256), got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def _cmd_generate(args: argparse.Namespace) -> int:
    from mpat_nb.data.synth import PRESETS, generate_clip

    if args.list_presets:
        for name, config in PRESETS.items():
            print(f"{name:14s} {config.description if hasattr(config, 'description') else ''}")
        return 0
    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    clip = generate_clip(preset=args.preset, seed=args.seed, num_frames=args.frames, size=args.size)
    clip.save(args.out)
    name = clip.video.name
    print(f"wrote {args.frames} frames to {args.out / 'images' / name}")
    print(f"wrote annotations to {args.out / 'annotations' / (name + '.json')}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mpat_nb.evaluate import evaluate_paths
    from mpat_nb.utils import atomic_write_text

    for label, path in (("--gt", args.gt), ("--pred", args.pred)):
        if not path.exists():
            raise InputError(f"{label} {path} does not exist: give a PoseTrack JSON file or a folder of them")
    result = evaluate_paths(args.gt, args.pred, poseval_compat=not args.strict)
    print(result.table())
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result.to_dict(), indent=2))
        print(f"wrote totals to {args.json}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mpat_nb.train import SpatialTrainConfig, train_spatialnet

    if args.steps < 1 or args.batch_size < 1:
        raise InputError("--steps and --batch-size must be at least 1")
    if args.stage == "temporal":
        return _cmd_train_temporal(args)
    if args.spatial_checkpoint or args.resnet50_weights:
        raise InputError("--spatial-checkpoint and --resnet50-weights belong to train temporal")
    args.out = args.out if args.out is not None else Path("runs/spatialnet")
    if args.stage == "pgg" and not args.init and not args.resume:
        raise InputError("train pgg fine-tunes a trained SpatialNet: give its checkpoint with --init")
    pgg_stage = args.stage == "pgg"
    lr = args.lr if args.lr is not None else (1e-5 if pgg_stage else 2e-4)
    config = SpatialTrainConfig(preset=args.preset, steps=args.steps, batch_size=args.batch_size, lr=lr, data=args.data,
                                synth_preset=args.synth_preset, annotations=args.annotations, image_root=args.image_root,
                                val_every=args.val_every, seed=args.seed, max_minutes=args.max_minutes,
                                num_workers=args.workers, device=args.device, init_checkpoint=args.init,
                                pgg_iterations=args.pgg_iterations if pgg_stage else 0,
                                det_foreground_weight=args.det_foreground_weight,
                                decode_embedding=args.decode_embedding)
    result = train_spatialnet(config, args.out, resume=args.resume)
    print(f"final validation mAP {result['val_map']:.1f}; checkpoint {result['checkpoint']}")
    return 0


def _cmd_train_temporal(args: argparse.Namespace) -> int:
    from mpat_nb.train_temporal import TemporalTrainConfig, train_temporalnet

    if args.data != "synthetic" or args.init:
        raise InputError("train temporal trains on synthetic frame pairs from scratch: drop --data / --init "
                         "(the frozen SpatialNet is --spatial-checkpoint)")
    config = TemporalTrainConfig(preset=args.preset, spatial_checkpoint=args.spatial_checkpoint,
                                 resnet50_weights=args.resnet50_weights, steps=args.steps, batch_size=args.batch_size,
                                 lr=args.lr if args.lr is not None else 2e-4, synth_preset=args.synth_preset,
                                 val_every=args.val_every, seed=args.seed, max_minutes=args.max_minutes,
                                 num_workers=args.workers, device=args.device)
    out = args.out if args.out is not None else Path("runs/temporalnet")
    result = train_temporalnet(config, out, resume=args.resume)
    metrics = {"rank1": float("nan"), "epe_forward": float("nan"), "epe_backward": float("nan"),
               "epe_zero_motion": float("nan"), **result["metrics"]}
    print(f"final validation HE rank-1 {100 * metrics['rank1']:.1f} %, TVF EPE forward "
          f"{metrics['epe_forward']:.2f} / backward {metrics['epe_backward']:.2f} px (zero motion {metrics['epe_zero_motion']:.2f}); "
          f"checkpoint {result['checkpoint']}")
    return 0


def _cmd_track(args: argparse.Namespace) -> int:
    from mpat_nb.tracking.video import track_video

    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    if not args.video.exists():
        raise InputError(f"{args.video} does not exist: give a video file or a folder of frames")
    summary = track_video(args.video, args.out, temporal_checkpoint=args.temporal_checkpoint,
                          spatial_checkpoint=args.spatial_checkpoint, variant=args.tracker, pgg=args.pgg,
                          device=args.device, fps=args.fps, max_frames=args.max_frames)
    print(f"{summary['frames']} frames, {summary['tracks']} tracks, {summary['people_per_frame']['mean']:.1f} people "
          f"per frame; {summary['ms_per_frame']['network']:.0f} ms/frame networks, "
          f"{summary['ms_per_frame']['association']:.2f} ms/frame association ({summary['device']})")
    for key, path in summary["outputs"].items():
        print(f"  {key:12s} {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mpat_nb.demo import run_demo

    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    run_demo(args.out, preset=args.preset, seed=args.seed, num_frames=args.frames, size=args.size, device=args.device)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
