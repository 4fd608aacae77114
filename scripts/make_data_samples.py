"""Regenerate ``data_samples/``: a few short synthetic clips with their PoseTrack18 JSON.

    python scripts/make_data_samples.py            # writes data_samples/{images,annotations}

Deterministic: running it again gives byte-identical files (the generator is seeded).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from mpat_nb.data.synth import generate_clip

#: (preset, seed): seeds from the validation range would also do; these are fixed sample seeds.
SAMPLES = (("mixed", 113), ("crowd", 102), ("shot_change", 103))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data_samples")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"))
    args = parser.parse_args()
    for sub in ("images", "annotations"):
        shutil.rmtree(args.out / sub, ignore_errors=True)
    for preset, seed in SAMPLES:
        clip = generate_clip(preset=preset, seed=seed, num_frames=args.frames, size=tuple(args.size))
        clip.save(args.out)
        print(f"{clip.video.name}: {len(clip.video)} frames, {len(clip.video.track_ids)} tracks")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"data_samples: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
