"""SpatialNet forward per frame: the inference fast paths of ``mpat_nb.inference`` against plain eager.

    python benchmarks/bench_inference.py [--presets tiny small] [--batch 1] [--repeats 5] [--device cpu]

Variants (each a copy of one seeded model, timed interleaved in the same run):

* ``eager``: ``model.eval()`` under ``torch.no_grad()``, the reference;
* ``inference_mode``: the same under ``torch.inference_mode()`` (what ``inference_context`` does);
* ``+channels_last``, ``+fused_bn``, ``+fused_bn+channels_last`` (= ``InferenceOptions()``, the defaults):
  ``prepare_for_inference`` with those switches;
* on CUDA also ``+autocast_bf16``, ``+autocast_fp16``, ``+cudnn_benchmark``, ``+compile`` (``--no-compile``
  skips it; compiling takes a while).

Printed: best time per frame, eager / variant (> 1 = faster than eager) and the largest heatmap difference to
eager (fusion and channels-last change float rounding only; autocast changes more). Nothing here is a test.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
from _timing import best_times, machine_line, sync  # benchmarks/_timing.py (this script's folder)

from mpat_nb.inference import InferenceOptions, inference_context, prepare_for_inference
from mpat_nb.models.spatialnet import SpatialNet


def variants(device: torch.device, compile_model: bool) -> dict[str, InferenceOptions | None]:
    """Name -> options (None: the eager no_grad reference). Each CUDA switch is measured on its own."""
    plain = InferenceOptions(channels_last=False, fuse_batchnorm=False)
    table: dict[str, InferenceOptions | None] = {
        "eager": None,
        "inference_mode": plain,
        "+channels_last": replace(plain, channels_last=True),
        "+fused_bn": replace(plain, fuse_batchnorm=True),
        "+fused_bn+channels_last": InferenceOptions(),            # the defaults
    }
    if device.type == "cuda":
        table.update({"+autocast_bf16": replace(plain, autocast="bf16"),
                      "+autocast_fp16": replace(plain, autocast="fp16"),
                      "+cudnn_benchmark": replace(plain, cudnn_benchmark=True)})
        if compile_model:
            table["+compile"] = replace(plain, compile=True)
    return table


def runner(model: SpatialNet, options: InferenceOptions | None, images: torch.Tensor):
    """A closure running one forward pass of ``model`` prepared with ``options``; returns (closure, heatmaps)."""
    device = images.device
    prepared = model.eval() if options is None else prepare_for_inference(model, options)

    def forward() -> torch.Tensor:
        if options is None:
            with torch.no_grad():
                heatmaps = prepared(images).heatmaps_final
        else:
            torch.backends.cudnn.benchmark = options.cudnn_benchmark    # process-wide: on for its variant only
            with inference_context(options, device):
                heatmaps = prepared(images).heatmaps_final
            torch.backends.cudnn.benchmark = False
        sync(device)
        return heatmaps

    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--batch", type=int, default=1, help="frames per forward pass (default 1: tracking)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="keep timing each variant this long")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: process CPU time (steadier on a shared machine with --threads 1)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (CUDA)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(machine_line(device))
    print(f"SpatialNet forward, batch {args.batch}, {args.clock} clock; eager = eval + no_grad; ratio = eager / variant (> 1 faster)")
    print(f"{'preset':7s} {'variant':26s} {'ms/frame':>9s} {'eager/var':>10s} {'max |dH|':>9s}")
    for preset in args.presets:
        torch.manual_seed(0)
        model = SpatialNet(preset).to(device)
        size = model.config.input_size
        images = torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
        runs = {name: runner(model, options, images) for name, options in variants(device, not args.no_compile).items()}
        reference = runs["eager"]().float()
        differences = {name: (run().float() - reference).abs().max().item() for name, run in runs.items()}
        times = best_times(runs, args.repeats, args.min_seconds, clock=args.clock)
        for name, seconds in times.items():
            print(f"{preset:7s} {name:26s} {seconds / args.batch * 1e3:9.2f} {times['eager'] / seconds:9.2f}x "
                  f"{differences[name]:9.1e}")


if __name__ == "__main__":
    main()
