"""The mpat-nb command line: generate synthetic clips, train, track a video, evaluate predictions, run the demo.

Every sub-command prints a single-line error and exits with status 2 on bad input (missing file,
malformed JSON, unknown preset, bad size, a file where a folder is expected, ...), leaving no partial output
behind: files are written atomically, a failed or interrupted command removes the output folders it created
while they are still empty, and SIGTERM cleans up like Ctrl-C (exit 143; Ctrl-C: 130).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mpat_nb.utils import (
    InputError,
    Terminated,
    TrainingError,
    check_output_folder,
    get_device,
    removes_created_folders,
    signals_raise,
)

#: Largest frame side of ``--size`` (pixels): a 8192 x 8192 RGB frame is 200 MB, beyond that it is a typo.
MAX_FRAME_SIDE = 8192

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
        with signals_raise(), removes_created_folders(*_output_paths(args)):
            if getattr(args, "device", None) is not None:
                get_device(args.device)                                   # an unknown or absent device: now
            return int(args.handler(args) or 0)
    except (InputError, TrainingError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"mpat-nb {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"mpat-nb {args.command}: terminated (SIGTERM); nothing half-written was left", file=sys.stderr)
        return 143
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        print(f"mpat-nb {args.command}: interrupted", file=sys.stderr)
        return 130


def _output_paths(args: argparse.Namespace) -> list[Path]:
    """The output folder (and ``evaluate --json`` file) of a sub-command, for the cleanup of a failed run."""
    if args.command == "train":
        return [_train_out(args, "runs/temporalnet" if args.stage == "temporal" else "runs/spatialnet")]
    return [path for path in (getattr(args, "out", None), getattr(args, "json", None)) if path is not None]


#: --precision of track and demo (mpat_nb.inference.inference_options)
PRECISION_HELP = ("fp32 (default: plain float32, the same poses on every CPU), bf16 (bf16 autocast, faster on a CPU "
                  "with native bf16) or auto (bf16 where the CPU or GPU has it)")


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: a bad flag or value exits with status 2 and one line naming it
    (argparse's default also prints the usage, several lines for train); ``--help`` shows the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="mpat-nb", description=__doc__.splitlines()[0])
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
                                            "with --resume. --config reads the settings from a JSON file of "
                                            "training-config fields (configs/paper_*.json); flags given override it. "
                                            "Under torchrun (torchrun --nproc-per-node N --no-python mpat-nb train "
                                            "...) the N processes train together (DistributedDataParallel).")
    train.add_argument("stage", choices=["spatial", "pgg", "temporal"], help="what to train")
    train.add_argument("--config", type=Path, default=None,
                       help="JSON file of SpatialTrainConfig fields (temporal: TemporalTrainConfig), e.g. "
                            "configs/paper_spatial.json; the flags given on the command line override it")
    train.add_argument("--preset", default=None,
                       help="model preset: tiny, small or paper (temporal: the TemporalNet preset, the same three); "
                            "default: tiny")
    train.add_argument("--steps", type=int, default=None, help="optimiser steps; default: 3000")
    train.add_argument("--epochs", type=float, default=None,
                       help="real data (spatial, pgg), instead of --steps: passes over the labelled frames, "
                            "steps = ceil(epochs x frames / batch size)")
    train.add_argument("--batch-size", type=int, default=None,
                       help="the GLOBAL batch: images (temporal: frame pairs) per optimiser step over all processes; "
                            "under torchrun each of the N processes takes batch / N (N must divide it); default: 16, "
                            "the paper's")
    train.add_argument("--lr", type=float, default=None,
                       help="initial learning rate (Adam); default: 2e-4 (spatial, temporal), 1e-5 (pgg)")
    train.add_argument("--lr-schedule", default=None, choices=["constant", "drop", "cosine", "onecycle"],
                       help="drop (spatial / pgg default: the paper's step to lr_final for the last sixth), cosine "
                            "(half a cosine to lr_final), onecycle (warm-up over a tenth, then the cosine) or "
                            "constant (temporal default: lr throughout)")
    train.add_argument("--heatmap-sigma", type=float, default=None,
                       help="spatial / pgg: Gaussian std of the heatmap targets in output pixels; default: 2 px at "
                            "128 x 128 output, scaled with the output size (1 px for tiny's 64 x 64)")
    train.add_argument("--he-frame-gap", type=int, default=None,
                       help="temporal: half the training pairs are 6 .. N frames apart, for the HE loss only "
                            "(the TVF loss keeps the range-5 window); default: off")
    train.add_argument("--init", default=None, help="start from the weights of this checkpoint (required for pgg; temporal: a TemporalNet's)")
    train.add_argument("--pgg-iterations", type=int, default=None, help="pgg stage: mean-shift iterations R; default: 1")
    train.add_argument("--det-foreground-weight", type=float, default=None,
                       help="weight 1 + ALPHA x target on heatmap pixels (0: the paper's plain MSE); default: 0")
    train.add_argument("--decode-embedding", default=None, choices=["ke", "sie", "ke+sie"],
                       help="what validation groups by (spatial stage); default: ke (associative embedding)")
    train.add_argument("--data", default=None, choices=["synthetic", "posetrack", "coco"],
                       help="training data; default: synthetic")
    train.add_argument("--synth-preset", default=None,
                       help="generator preset for synthetic data and validation; default: mixed")
    train.add_argument("--annotations", default=None, help="real data: annotation file or folder")
    train.add_argument("--image-root", default=None, help="real data: folder the image file names are relative to")
    train.add_argument("--val-every", type=int, default=None,
                       help="steps between validations (mAP; temporal: HE rank-1 and TVF error); default: 500")
    train.add_argument("--max-minutes", type=float, default=None,
                       help="wall-clock budget: stop (validate and save) when spent; the lr drop moves with it")
    train.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                       help="switch off the supplementary's augmentations (rotation, scale, flip, colour); "
                            "temporal: on both frames. Default: on")
    train.add_argument("--seed", type=int, default=None, help="default: 0")
    train.add_argument("--workers", type=int, default=None, help="DataLoader worker processes; default: 0")
    train.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16"],
                       help="auto (default): bf16 autocast + channels-last on a CPU with native bf16 or a GPU, "
                            "else fp32")
    train.add_argument("--frames-per-clip", type=int, default=None,
                       help="spatial / pgg, synthetic data: frames used of each rendered clip; default: 4")
    train.add_argument("--device", default=None,
                       help="cuda, mps or cpu; default: the best available (under torchrun: cuda:LOCAL_RANK)")
    train.add_argument("--sync-batchnorm", action="store_true", default=None,
                       help="under torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm); "
                            "default: off, each GPU normalises with the statistics of its own slice")
    train.add_argument("--out", type=Path, default=None,
                       help="output folder; default: runs/spatialnet (temporal: runs/temporalnet; with --config: "
                            "runs/<config file name>)")
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
    demo.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                      help=PRECISION_HELP)
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
    track.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                       help=PRECISION_HELP)
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
    if max(width, height) > MAX_FRAME_SIDE:
        raise argparse.ArgumentTypeError(f"size {text!r} is too large: at most {MAX_FRAME_SIDE} pixels a side "
                                         "(e.g. 256x256, 640x480)")
    return width, height


def _cmd_generate(args: argparse.Namespace) -> int:
    from mpat_nb.data.synth import PRESETS, generate_clip

    if args.list_presets:
        for name, config in PRESETS.items():
            print(f"{name:14s} {config.description if hasattr(config, 'description') else ''}")
        return 0
    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    check_output_folder(args.out)
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
        if not (path.is_file() or path.is_dir()):
            raise InputError(f"{label} {path} is not a regular file or folder (a device, pipe or socket): give a "
                             "PoseTrack JSON file or a folder of them")
    if args.json is not None:
        if args.json.is_dir():
            raise InputError(f"--json {args.json} is a folder: give the name of the JSON file to write, e.g. "
                             f"{args.json / 'totals.json'}")
        check_output_folder(args.json.parent, "--json")
    result = evaluate_paths(args.gt, args.pred, poseval_compat=not args.strict)
    print(result.table())
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(result.to_dict(), indent=2))
        print(f"wrote totals to {args.json}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mpat_nb import distributed
    from mpat_nb.train import SpatialTrainConfig, train_spatialnet

    if args.stage == "temporal":
        return _cmd_train_temporal(args)
    if args.spatial_checkpoint or args.resnet50_weights:
        raise InputError("--spatial-checkpoint and --resnet50-weights belong to train temporal")
    pgg_stage = args.stage == "pgg"
    if not pgg_stage and args.pgg_iterations is not None:
        raise InputError("--pgg-iterations belongs to train pgg (the PGG fine-tuning stage)")
    stage_defaults = {"val_every": 500, **({"lr": 1e-5, "pgg_iterations": 1} if pgg_stage else {})}
    config = _train_config(args, SpatialTrainConfig, stage_defaults)
    if not pgg_stage and config.pgg_iterations:
        raise InputError(f"{args.config} sets pgg_iterations={config.pgg_iterations}, the PGG fine-tuning stage: run "
                         "mpat-nb train pgg")
    if pgg_stage and config.pgg_iterations < 1:
        raise InputError(f"train pgg needs pgg_iterations >= 1, got {config.pgg_iterations}")
    if pgg_stage and not config.init_checkpoint and not args.resume:
        raise InputError("train pgg fine-tunes a trained SpatialNet: give its checkpoint with --init (or "
                         "init_checkpoint in the config file)")
    result = train_spatialnet(config, _train_out(args, "runs/spatialnet"), resume=args.resume)
    if distributed.launched_as_main():
        print(f"final validation mAP {result['val_map']:.1f}; checkpoint {result['checkpoint']}")
    return 0


def _cmd_train_temporal(args: argparse.Namespace) -> int:
    from mpat_nb import distributed
    from mpat_nb.train_temporal import TemporalTrainConfig, train_temporalnet

    if args.data not in (None, "synthetic"):
        raise InputError("train temporal trains on synthetic frame pairs: drop --data (the frozen SpatialNet is "
                         "--spatial-checkpoint; --init starts from a trained TemporalNet's weights)")
    args.data = None                                          # --data synthetic: what temporal does anyway
    config = _train_config(args, TemporalTrainConfig, {"val_every": 500})
    result = train_temporalnet(config, _train_out(args, "runs/temporalnet"), resume=args.resume)
    metrics = {"rank1": float("nan"), "epe_forward": float("nan"), "epe_backward": float("nan"),
               "epe_zero_motion": float("nan"), **result["metrics"]}
    if distributed.launched_as_main():
        print(f"final validation HE rank-1 {100 * metrics['rank1']:.1f} %, TVF EPE forward "
              f"{metrics['epe_forward']:.2f} / backward {metrics['epe_backward']:.2f} px (zero motion "
              f"{metrics['epe_zero_motion']:.2f}); checkpoint {result['checkpoint']}")
    return 0


#: ``train`` flags (argparse names) that set a training-config field, and the field they set
_TRAIN_FLAG_FIELDS = {
    "preset": "preset", "steps": "steps", "epochs": "epochs", "batch_size": "batch_size", "lr": "lr",
    "lr_schedule": "lr_schedule", "heatmap_sigma": "heatmap_sigma", "he_frame_gap": "he_frame_gap",
    "init": "init_checkpoint", "pgg_iterations": "pgg_iterations", "det_foreground_weight": "det_foreground_weight",
    "decode_embedding": "decode_embedding", "data": "data", "synth_preset": "synth_preset",
    "annotations": "annotations", "image_root": "image_root", "val_every": "val_every", "max_minutes": "max_minutes",
    "seed": "seed", "augment": "augment", "workers": "num_workers", "device": "device",
    "precision": "precision", "frames_per_clip": "frames_per_clip", "sync_batchnorm": "sync_batchnorm",
    "spatial_checkpoint": "spatial_checkpoint", "resnet50_weights": "resnet50_weights",
}


def _train_config(args: argparse.Namespace, config_class: type, stage_defaults: dict):
    """The run's ``config_class``: its defaults, then the stage's, then the ``--config`` file, then the flags given."""
    import dataclasses

    from mpat_nb.train import read_config_file

    given = {field: getattr(args, flag) for flag, field in _TRAIN_FLAG_FIELDS.items() if getattr(args, flag) is not None}
    known = {field.name for field in dataclasses.fields(config_class)}
    foreign = ["--" + flag.replace("_", "-") for flag, field in _TRAIN_FLAG_FIELDS.items()
               if field in given and field not in known]
    if foreign:
        raise InputError(f"{', '.join(foreign)} {'does' if len(foreign) == 1 else 'do'} not apply to train {args.stage}")
    if "steps" in given and "epochs" in given:
        raise InputError("give --steps or --epochs, not both")
    values = {**stage_defaults, **(read_config_file(args.config, config_class) if args.config else {})}
    if "steps" in given:
        values.pop("epochs", None)                            # an explicit --steps wins over the file's epochs
    config = config_class(**{**values, **given})
    if config.steps < 1 or config.batch_size < 1:
        raise InputError(f"steps and batch size must be at least 1 (--steps, --batch-size or the config file), got "
                         f"{config.steps} and {config.batch_size}")
    return config


def _train_out(args: argparse.Namespace, default: str) -> Path:
    """--out, else runs/<config file name> with --config, else ``default``."""
    if args.out is not None:
        return args.out
    return Path("runs") / args.config.stem if args.config is not None else Path(default)


def _cmd_track(args: argparse.Namespace) -> int:
    from mpat_nb.tracking.video import track_video

    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    if not args.video.exists():
        raise InputError(f"{args.video} does not exist: give a video file or a folder of frames")
    if not (args.video.is_file() or args.video.is_dir()):
        raise InputError(f"{args.video} is not a regular file or folder: give a video file or a folder of frames")
    if not args.fps > 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    check_output_folder(args.out)
    summary = track_video(args.video, args.out, temporal_checkpoint=args.temporal_checkpoint,
                          spatial_checkpoint=args.spatial_checkpoint, variant=args.tracker, pgg=args.pgg,
                          device=args.device, fps=args.fps, max_frames=args.max_frames, precision=args.precision)
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
    check_output_folder(args.out)
    run_demo(args.out, preset=args.preset, seed=args.seed, num_frames=args.frames, size=args.size, device=args.device,
             precision=args.precision)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
