"""data_samples/ is what scripts/make_data_samples.py makes from the current generator."""

from pathlib import Path

import numpy as np
import pytest

from mpat_nb.data.formats import load_posetrack18, read_image
from mpat_nb.data.synth import generate_clip

ROOT = Path(__file__).resolve().parents[1] / "data_samples"
CLIPS = sorted((ROOT / "annotations").glob("*.json"))


def test_there_are_sample_clips_and_they_are_small():
    assert len(CLIPS) >= 3
    total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    assert total < 10e6


@pytest.mark.parametrize("path", CLIPS, ids=[p.stem for p in CLIPS])
def test_sample_matches_the_generator(path):
    video = load_posetrack18(path)
    seed, preset = int(video.name.split("_")[0]), video.name.split("_synth_")[1]
    first = read_image(ROOT / video.frames[0].file_name)
    clip = generate_clip(preset=preset, seed=seed, num_frames=len(video), size=(first.shape[1], first.shape[0]))
    assert clip.video.name == video.name
    for ours, theirs in zip(clip.video.frames, video.frames):
        assert [p.track_id for p in ours.people] == [p.track_id for p in theirs.people]
        for a, b in zip(ours.people, theirs.people):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    # JPEG frames: close to the rendered ones (quality 95)
    assert np.abs(first.astype(int) - clip.frames[0].astype(int)).mean() < 4.0
