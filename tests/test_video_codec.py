"""MP4s are H.264 where an encoder is installed (imageio-ffmpeg), OpenCV's mp4v otherwise, and say which."""

import json

import cv2
import numpy as np
import pytest

import mpat_nb.data.video_io as video_io
from mpat_nb.data.video_io import h264_encoder, read_video, write_video
from mpat_nb.utils import InputError


def _fourcc(path) -> str:
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace").lower()
    finally:
        capture.release()


def _frames():
    y, x = np.mgrid[0:48, 0:64]
    return np.stack([np.stack([(x * 4 + t * 8) % 256, y * 5, np.full_like(x, 128)], -1) for t in range(5)]).astype(np.uint8)


@pytest.mark.skipif(h264_encoder() is None, reason="no H.264 encoder (pip install imageio-ffmpeg)")
def test_mp4_is_h264_where_an_encoder_is_installed(tmp_path):
    assert write_video(_frames(), tmp_path / "clip.mp4") == "h264"
    assert _fourcc(tmp_path / "clip.mp4") in ("h264", "avc1")
    back = read_video(tmp_path / "clip.mp4")
    assert back.shape == (5, 48, 64, 3) and np.abs(back.astype(int) - _frames()).mean() < 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_mp4_falls_back_to_opencv_mp4v(tmp_path, monkeypatch):
    monkeypatch.setattr(video_io, "h264_encoder", lambda: None)
    assert write_video(_frames(), tmp_path / "clip.mp4") == "mp4v"
    assert _fourcc(tmp_path / "clip.mp4") in ("mp4v", "fmp4")          # OpenCV reads mp4v back as FMP4
    with pytest.raises(InputError, match="pip install imageio-ffmpeg"):
        write_video(_frames(), tmp_path / "other.mp4", codec="h264")
    with pytest.raises(InputError, match="does not fit .avi"):
        write_video(_frames(), tmp_path / "clip.avi", codec="h264")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_track_summary_names_the_codec(tmp_path):
    from mpat_nb.cli import main

    folder = tmp_path / "frames"
    video_io.write_frames(_frames()[:2], folder, ext=".png")
    assert main(["track", str(folder), "--out", str(tmp_path / "out"), "--tracker", "greedy OKS"]) == 0
    summary = json.loads((tmp_path / "out" / "frames_summary.json").read_text())
    assert summary["video_codec"] == ("h264" if h264_encoder() else "mp4v")
