"""Bad input, one case at a time, built on the fly: the CLI exits with status 2 and one line naming the problem
and the fix (no traceback), the Python API raises the documented InputError, and nothing is left behind
(no file, no hidden ``.tmp`` file, no empty output folder)."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from mpat_nb.checkpoints import load_checkpoint, save_checkpoint, shipped_checkpoint
from mpat_nb.cli import main
from mpat_nb.config import get_spatial_config
from mpat_nb.data.video_io import h264_encoder, read_image, read_video, write_video
from mpat_nb.models.spatialnet import SpatialNet
from mpat_nb.utils import InputError, Terminated, atomic_path, removes_created_folders, signals_raise


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Run every case from tmp_path so that a stray default output folder (runs/, tracking_output/) is caught."""
    monkeypatch.chdir(tmp_path)


def everything(root: Path) -> set[str]:
    """Every file and folder under root (hidden ones included), relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ----------------------------------------------------------------------------------------------------------
# Inputs made on the fly
# ----------------------------------------------------------------------------------------------------------
def frames(count: int = 6, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """(T, H, W, 3) uint8 noise frames (noise: every frame costs bytes, so cutting the file cuts frames)."""
    width, height = size
    return (np.random.default_rng(0).random((count, height, width, 3)) * 255).astype(np.uint8)


def truncated_avi(tmp: Path) -> Path:
    """An MJPG AVI (header first) cut in half: the header declares 6 frames, fewer decode."""
    path = tmp / "cut.avi"
    write_video(frames(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def zeroed_mp4(tmp: Path, codec: str = "mp4v") -> Path:
    """An MP4 whose middle third is zeroed: the header declares 30 frames, a few decode."""
    path = tmp / f"zeroed_{codec}.mp4"
    write_video(frames(30), path, codec=codec)
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third: 2 * third] = bytes(third)
    path.write_bytes(bytes(data))
    return path


def truncated_h264(tmp: Path) -> Path:
    """An H.264 MP4 with its index at the front (+faststart, the streaming layout) cut in half."""
    path = tmp / "cut_h264.mp4"
    write_video(frames(30), path, codec="h264")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def needs_h264(case):
    return pytest.param(case, marks=pytest.mark.skipif(h264_encoder() is None, reason="no H.264 encoder "
                                                                                     "(pip install imageio-ffmpeg)"))


def frames_folder(tmp: Path, count: int = 2) -> Path:
    folder = tmp / "frames"
    folder.mkdir()
    for t, frame in enumerate(frames(count)):
        Image.fromarray(frame).save(folder / f"{t:06d}.png")
    return folder


def poisoned_checkpoint(tmp: Path, name: str, value: float, every: bool = False) -> Path:
    """A shipped checkpoint with one weight (or all of the first floating tensor) set to NaN or inf."""
    payload = load_checkpoint(shipped_checkpoint(name))
    key = next(k for k, v in payload["model"].items() if v.is_floating_point())
    tensor = payload["model"][key]
    if every:
        tensor.fill_(value)
    else:
        tensor.view(-1)[0] = value
    path = tmp / f"poisoned_{name}"
    torch.save(payload, path)
    return path


def gt_and_pred(tmp: Path, pred_track_id: int | None = None) -> tuple[Path, Path]:
    """A 2-frame synthetic GT file and a prediction file (the GT itself, optionally with one track id changed)."""
    from mpat_nb.data.formats import load_posetrack18, save_posetrack18
    from mpat_nb.data.synth import generate_clip

    clip = generate_clip(preset="easy", seed=1, num_frames=2, size=(64, 64))
    gt, pred = tmp / "gt" / "clip.json", tmp / "pred" / "clip.json"
    save_posetrack18(clip.video, gt, check_poseval=False)
    video = load_posetrack18(gt)
    if pred_track_id is not None:
        video.frames[0].people[0].track_id = pred_track_id
    for frame in video.frames:
        for person in frame.people:
            person.scores = np.ones(len(person.keypoints))
    save_posetrack18(video, pred, check_poseval=False)
    return gt, pred


def training_checkpoint(tmp: Path, step: int) -> Path:
    """A tiny SpatialNet training checkpoint at ``step`` with optimiser, scheduler and RNG state (batch 1)."""
    model = SpatialNet("tiny")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    return save_checkpoint(tmp / "run" / "last.pt", kind="spatialnet", model=model, model_config=get_spatial_config("tiny"),
                           optimizer=optimizer.state_dict(), scheduler={}, step=step, rng=torch.get_rng_state(),
                           train_config={"batch_size": 1, "steps": step})


TRAIN = ["train", "spatial", "--steps", "1", "--batch-size", "1", "--device", "cpu", "--precision", "fp32"]


# ----------------------------------------------------------------------------------------------------------
# The command line: exit 2, one line, nothing left behind
# ----------------------------------------------------------------------------------------------------------
@dataclass
class CliCase:
    name: str
    build: Callable[[Path], list[str]]          # tmp_path -> argv (inputs written into tmp_path)
    needles: tuple[str, ...]                    # what the error line must name (the problem and the fix)


CLI_CASES = [
    CliCase("track truncated video", lambda t: ["track", str(truncated_avi(t)), "--out", str(t / "out")],
            ("cut.avi", "damaged or truncated", "of the 6 frames its container declares", "to 5 missing", "--max-frames")),
    CliCase("track truncated H.264 video", lambda t: ["track", str(truncated_h264(t)), "--out", str(t / "out")],
            ("cut_h264.mp4", "of the 30 frames its container declares", "to 29 missing")),
    CliCase("track NaN SpatialNet", lambda t: ["track", str(frames_folder(t)), "--out", str(t / "out"),
                                              "--spatial-checkpoint", str(poisoned_checkpoint(t, "spatialnet_tiny.pt",
                                                                                               float("nan"), True))],
            ("poisoned_spatialnet_tiny.pt", "non-finite weights", "NaN", "another checkpoint")),
    CliCase("track one-NaN SpatialNet", lambda t: ["track", str(frames_folder(t)), "--out", str(t / "out"),
                                                  "--spatial-checkpoint",
                                                  str(poisoned_checkpoint(t, "spatialnet_tiny.pt", float("nan")))],
            ("poisoned_spatialnet_tiny.pt", "1 NaN")),
    CliCase("track inf TemporalNet", lambda t: ["track", str(frames_folder(t)), "--out", str(t / "out"),
                                               "--temporal-checkpoint",
                                               str(poisoned_checkpoint(t, "temporalnet_tiny.pt", float("inf")))],
            ("poisoned_temporalnet_tiny.pt", "1 inf")),
    CliCase("track --out is a file", lambda t: ["track", str(frames_folder(t)), "--out", str(_file(t / "taken"))],
            ("--out", "taken", "is a file, not a folder")),
    CliCase("track --device tpu", lambda t: ["track", str(frames_folder(t)), "--out", str(t / "out"), "--device", "tpu"],
            ("unknown device 'tpu'", "cpu")),
    CliCase("track --fps 0", lambda t: ["track", str(frames_folder(t)), "--out", str(t / "out"), "--fps", "0"],
            ("--fps must be positive",)),
    CliCase("track /dev/zero", lambda t: ["track", "/dev/zero", "--out", str(t / "out")],
            ("/dev/zero", "not a regular file")),
    CliCase("train --out is a file", lambda t: TRAIN + ["--out", str(_file(t / "taken"))],
            ("--out", "taken", "is a file, not a folder")),
    CliCase("train --out under a file", lambda t: TRAIN + ["--out", str(_file(t / "taken") / "run")],
            ("taken is a file, not a folder",)),
    CliCase("train --device tpu", lambda t: TRAIN + ["--out", str(t / "out"), "--device", "tpu"],
            ("unknown device 'tpu'",)),
    CliCase("train --lr -1", lambda t: TRAIN + ["--out", str(t / "out"), "--lr", "-1"], ("--lr", "positive", "-1")),
    CliCase("train --lr 0", lambda t: TRAIN + ["--out", str(t / "out"), "--lr", "0"], ("--lr", "positive")),
    CliCase("train --lr nan", lambda t: TRAIN + ["--out", str(t / "out"), "--lr", "nan"], ("--lr", "nan")),
    CliCase("train temporal --lr nan", lambda t: ["train", "temporal", "--steps", "1", "--batch-size", "1",
                                                  "--device", "cpu", "--out", str(t / "out"), "--lr", "nan"],
            ("--lr", "nan")),
    CliCase("train --workers -1", lambda t: TRAIN + ["--out", str(t / "out"), "--workers", "-1"],
            ("--workers", "-1")),
    CliCase("train --max-minutes -1", lambda t: TRAIN + ["--out", str(t / "out"), "--max-minutes", "-1"],
            ("--max-minutes", "positive", "-1")),
    CliCase("train --resume exported", lambda t: TRAIN + ["--out", str(t / "out"), "--resume",
                                                          str(shipped_checkpoint("spatialnet_tiny.pt"))],
            ("spatialnet_tiny.pt", "no optimiser state", "--init")),
    CliCase("train --resume past --steps", lambda t: TRAIN[:2] + ["--steps", "3", "--batch-size", "1", "--device", "cpu",
                                                                  "--out", str(t / "out"),
                                                                  "--resume", str(training_checkpoint(t, 5))],
            ("already at step 5", "3 steps", "larger --steps")),
    CliCase("train --init NaN", lambda t: TRAIN + ["--out", str(t / "out"), "--init",
                                                     str(poisoned_checkpoint(t, "spatialnet_tiny.pt", float("nan")))],
            ("non-finite weights",)),
    CliCase("evaluate --json is a folder", lambda t: ["evaluate", *_gt_pred_flags(t), "--json", str(_folder(t / "totals"))],
            ("--json", "is a folder", "totals.json")),
    CliCase("evaluate --pred /dev/zero", lambda t: ["evaluate", "--gt", str(gt_and_pred(t)[0]), "--pred", "/dev/zero"],
            ("--pred /dev/zero", "not a regular file")),
    CliCase("evaluate negative track id", lambda t: ["evaluate", *_gt_pred_flags(t, -3)],
            ("track id -3 < 0", "poseval needs track ids >= 0", "--strict")),
    CliCase("generate --out is a file", lambda t: ["generate", "--frames", "1", "--size", "32x32",
                                                   "--out", str(_file(t / "taken"))],
            ("--out", "is a file")),
    CliCase("demo --out is a file", lambda t: ["demo", "--frames", "1", "--out", str(_file(t / "taken"))],
            ("--out", "is a file")),
]


def _file(path: Path) -> Path:
    path.write_text("already here")
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _gt_pred_flags(tmp: Path, pred_track_id: int | None = None) -> list[str]:
    gt, pred = gt_and_pred(tmp, pred_track_id)
    return ["--gt", str(gt), "--pred", str(pred)]


@pytest.mark.parametrize("case", [needs_h264(case) if "H.264" in case.name else case for case in CLI_CASES],
                         ids=[case.name for case in CLI_CASES])
def test_cli_refuses_with_one_line_and_leaves_nothing(case, tmp_path, capsys):
    argv = case.build(tmp_path)
    before = everything(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    stderr = capsys.readouterr().err.strip()
    *progress, error = stderr.splitlines()                                   # track's progress bar may come first
    assert error.startswith(f"mpat-nb {argv[0]}: error:"), stderr
    assert "Traceback" not in stderr and not any(line.startswith("mpat-nb") for line in progress), stderr
    for needle in case.needles:
        assert needle in error, (needle, error)
    assert everything(tmp_path) == before


@pytest.mark.parametrize("argv, needle", [
    (["generate", "--size", "100000x100000"], "at most 8192 pixels a side"),
    (["demo", "--size", "0x10"], "size must be positive"),
    (["train", "spatial", "--lr", "fast"], "invalid float value"),
])
def test_argument_errors_are_one_line(argv, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and needle in error and "--help" in error, error
    assert everything(tmp_path) == set()


# ----------------------------------------------------------------------------------------------------------
# The Python API: the documented InputError, naming the thing
# ----------------------------------------------------------------------------------------------------------
def _maps(batch=1, joints=15, size=16, **changes):
    maps = {"heatmaps": torch.rand(batch, joints, size, size), "ke": torch.rand(batch, joints, size, size, 1),
            "svf": torch.rand(batch, 2, size, size)}
    maps.update(changes)
    return maps


def _decode(maps):
    from mpat_nb.decode import decode_batch

    return decode_batch(maps)


def _predict(images):
    from mpat_nb.decode import predict_people

    return predict_people(SpatialNet("tiny"), images)


def _write_frames(path):
    from mpat_nb.data.video_io import write_frames

    return write_frames(frames(1), path)


#: name -> (tmp_path -> the failing call, its inputs already written; what the message must name)
API_CASES = {
    "read truncated AVI": (lambda t: partial(read_video, truncated_avi(t)), ("cut.avi", "of the 6 frames", "to 5 missing")),
    "read zeroed mp4v MP4": (lambda t: partial(read_video, zeroed_mp4(t)), ("zeroed_mp4v.mp4", "of the 30 frames",
                                                                            "missing")),
    "read zeroed H.264 MP4": (lambda t: partial(read_video, zeroed_mp4(t, "h264")),
                              ("zeroed_h264.mp4", "of the 30 frames", "missing")),
    "read truncated H.264 MP4": (lambda t: partial(read_video, truncated_h264(t)),
                                 ("cut_h264.mp4", "of the 30 frames", "to 29 missing")),
    "NaN checkpoint": (lambda t: partial(load_checkpoint, poisoned_checkpoint(t, "spatialnet_tiny.pt", float("nan"))),
                       ("poisoned_spatialnet_tiny.pt", "non-finite", "1 NaN")),
    "decode mismatched ke": (lambda t: partial(_decode, _maps(ke=torch.rand(1, 15, 8, 8, 1))),
                             ("ke has shape (1, 15, 8, 8, 1)", "to match heatmaps")),
    "decode mismatched svf": (lambda t: partial(_decode, _maps(svf=torch.rand(1, 2, 16, 8))),
                              ("svf has shape", "(1, 2, 16, 16)")),
    "decode 3-D heatmaps": (lambda t: partial(_decode, _maps(heatmaps=torch.rand(15, 16, 16))),
                            ("(B, K, H, W)", "unsqueeze(0)")),
    "decode missing svf": (lambda t: partial(_decode, {k: v for k, v in _maps().items() if k != "svf"}),
                           ("lacks ['svf']", "model_maps")),
    "decode numpy heatmaps": (lambda t: partial(_decode, _maps(heatmaps=np.zeros((1, 15, 16, 16), np.float32))),
                              ("numpy.ndarray", "torch.from_numpy")),
    "decode integer heatmaps": (lambda t: partial(_decode, _maps(heatmaps=torch.zeros(1, 15, 16, 16, dtype=torch.int64))),
                                ("dtype torch.int64", ".float()")),
    "extract_candidates mismatched": (lambda t: partial(__import__("mpat_nb.decode", fromlist=["x"]).extract_candidates,
                                                        torch.rand(1, 15, 16, 16), torch.rand(2, 15, 16, 16),
                                                        torch.rand(1, 2, 16, 16)), ("ke has shape (2, 15, 16, 16)",)),
    "predict one bare image": (lambda t: partial(_predict, frames(1)[0]), ("one image of shape (48, 64, 3)", "[image]")),
    "predict float image 0..255": (lambda t: partial(_predict, [frames(1)[0].astype(np.float32)]),
                                   ("[0, 1]", "image / 255")),
    "write frames onto a file": (lambda t: partial(_write_frames, _file(t / "taken")), ("taken", "not a folder")),
}


@pytest.mark.parametrize("name", [needs_h264(name) if "H.264" in name else name for name in API_CASES])
def test_api_raises_input_error_naming_the_problem(name, tmp_path):
    build, needles = API_CASES[name]
    call = build(tmp_path)
    before = everything(tmp_path)
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    assert everything(tmp_path) == before


def test_float64_maps_decode_like_float32():
    from mpat_nb.decode import decode_batch

    maps = _maps(size=8)
    as64 = {key: value.double() for key, value in maps.items()}
    assert all(np.array_equal(a, b) for a, b in zip(decode_batch(maps), decode_batch(as64)))


def test_float_images_in_0_1_are_scaled():
    image = frames(1, size=(32, 32))[0]
    model = SpatialNet("tiny").eval()
    from mpat_nb.decode import predict_people

    as_uint8 = predict_people(model, [image])
    as_float = predict_people(model, [image.astype(np.float64) / 255.0])
    assert [len(people) for people in as_uint8] == [len(people) for people in as_float]


def test_16_bit_png_frames_are_scaled_not_white(tmp_path):
    ramp = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 256).astype(np.uint16)    # 0 .. 65280
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and image.shape == (16, 16, 3)
    np.testing.assert_array_equal(image[..., 0], np.round(ramp / 257.0).astype(np.uint8))


# ----------------------------------------------------------------------------------------------------------
# Interrupted writes: SIGINT / SIGTERM remove the temporary file and the folders made for it
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_write_leaves_nothing(signum, tmp_path):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    target = tmp_path / "new" / "deeper" / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt) as info:                    # Terminated is a KeyboardInterrupt
        with signals_raise(), removes_created_folders(tmp_path / "new"):
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"half a checkpoint")
                os.kill(os.getpid(), signum)
    assert isinstance(info.value, Terminated) == (signum == signal.SIGTERM)
    assert everything(tmp_path) == set()
    assert signal.getsignal(signal.SIGTERM) is not None               # the previous handler is back


def test_a_failed_command_keeps_folders_that_hold_something(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError):
        with removes_created_folders(out):
            out.mkdir()
            (out / "kept.txt").write_text("written before the failure")
            raise InputError("late failure")
    assert (out / "kept.txt").is_file()


def test_the_readme_lists_the_rules():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "## What happens on bad input" in readme


def test_sigterm_during_a_real_command_leaves_nothing(tmp_path):
    """``mpat-nb generate`` killed with SIGTERM while its frames are being written: exit 143, no .tmp, no folder."""
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen([sys.executable, "-m", "mpat_nb", "generate", "--frames", "400", "--size", "320x240",
                                "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(".tmp" in p.name for p in out.rglob("*")) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr
    assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    assert everything(tmp_path) == set()


class _FakeCapture:
    """A cv2.VideoCapture stand-in declaring ``declared`` frames and decoding ``decoded``."""

    def __init__(self, declared: int, decoded: int) -> None:
        self.declared, self.left = declared, decoded

    def get(self, prop):
        return float(self.declared)

    def read(self):
        self.left -= 1
        return (self.left >= 0), np.zeros((4, 4, 3), np.uint8)

    def release(self):
        pass


@pytest.mark.parametrize("name, declared, decoded, outcome", [
    ("clip.mp4", 100, 99, "error"),          # an indexed container: exact count, one frame short is damage
    ("clip.mkv", 100, 98, "warning"),        # duration x fps estimate: up to 2 % short only warns
    ("clip.mkv", 100, 97, "error"),
    ("clip.webm", 10, 9, "warning"),         # at least one frame of slack
    ("clip.avi", 10, 12, "ok"),              # more frames than declared: fine
])
def test_video_read_rule(name, declared, decoded, outcome):
    import warnings as warnings_module

    from mpat_nb.data.video_io import _iter_capture

    def read():
        return list(_iter_capture(_FakeCapture(declared, decoded), Path(name)))

    if outcome == "error":
        with pytest.raises(InputError, match=f"decoded {decoded} of the {declared} frames"):
            read()
    elif outcome == "warning":
        with pytest.warns(UserWarning, match=f"decoded {decoded} of the about {declared}"):
            assert len(read()) == decoded
    else:
        with warnings_module.catch_warnings():
            warnings_module.simplefilter("error")
            assert len(read()) == decoded
