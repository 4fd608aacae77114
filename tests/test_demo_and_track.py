"""`mpat-nb demo` and `mpat-nb track`: outputs, summaries, clean one-line errors with nothing left behind."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mpat_nb.cli import main


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def frames_folder(tmp_path):
    assert main(["generate", "--preset", "easy", "--seed", "5", "--frames", "3", "--size", "128x96",
                 "--out", str(tmp_path / "clip")]) == 0
    return next((tmp_path / "clip" / "images").iterdir())


def test_track_a_folder_of_frames(tmp_path, frames_folder, capsys):
    out = tmp_path / "tracked"
    assert main(["track", str(frames_folder), "--out", str(out), "--tracker", "HE+TIE+memory"]) == 0
    name = frames_folder.name
    summary = json.loads((out / f"{name}_summary.json").read_text())
    assert summary["frames"] == 3 and summary["variant"] == "HE+TIE+memory"
    assert summary["ms_per_frame"]["network"] > 0 and summary["ms_per_frame"]["association"] >= 0
    assert (out / f"{name}_tracked.mp4").stat().st_size > 0
    from mpat_nb.data.formats import load_posetrack18

    video = load_posetrack18(out / f"{name}.json")
    assert len(video.frames) == 3
    assert all(len({p.track_id for p in f.people}) == len(f.people) for f in video.frames)
    assert "tracks" in capsys.readouterr().out


def test_track_a_video_file_with_a_baseline_and_max_frames(tmp_path, frames_folder):
    from mpat_nb.data.video_io import read_video, write_video

    movie = tmp_path / "movie.mp4"
    write_video(read_video(frames_folder), movie, fps=5)
    out = tmp_path / "out"
    assert main(["track", str(movie), "--out", str(out), "--tracker", "Hungarian IoU", "--max-frames", "2"]) == 0
    assert json.loads((out / "movie_summary.json").read_text())["frames"] == 2


@pytest.mark.parametrize("case, needle", [("missing", "does not exist"), ("unreadable", "movie.mp4"),
                                          ("empty folder", "empty"), ("cuda", "CUDA")])
def test_track_bad_input_leaves_nothing_behind(tmp_path, capsys, frames_folder, case, needle):
    if case == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    source = {"missing": tmp_path / "nothing.mp4", "unreadable": tmp_path / "movie.mp4",
              "empty folder": tmp_path / "empty", "cuda": frames_folder}[case]
    if case == "unreadable":
        source.write_bytes(b"this is not a video")
    if case == "empty folder":
        source.mkdir()
    out = tmp_path / "out"
    argv = ["track", str(source), "--out", str(out)] + (["--device", "cuda"] if case == "cuda" else [])
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("mpat-nb track: error:") and needle.lower() in error.lower() and "\n" not in error
    assert not out.exists() or not any(out.iterdir())


def test_demo_writes_video_strip_and_tables(tmp_path, capsys):
    from mpat_nb.demo import run_demo

    outputs = run_demo(tmp_path / "demo", preset="easy", seed=1, num_frames=3, size=(128, 128), verbose=False)
    for key in ("mp4", "gif", "strip", "metrics", "predictions", "ground_truth"):
        assert Path(outputs[key]).is_file() and Path(outputs[key]).is_relative_to(tmp_path / "demo")
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert set(metrics) == {"HE+TIE", "greedy OKS"}
    assert np.isfinite(outputs["total_map"]) and outputs["total_mota"] <= 100.0


def test_cli_tracker_choices_are_the_library_variants():
    from mpat_nb.cli import VARIANTS_FOR_CLI
    from mpat_nb.tracking.config import VARIANTS

    assert tuple(VARIANTS_FOR_CLI) == tuple(VARIANTS)
