"""Video and image files: read a video or a folder of frames as RGB arrays, write mp4 / gif / avi or frames.

Glossary: T frames, H x W pixels. Frames are ``(T, H, W, 3)`` (or one ``(H, W, 3)``) ``uint8`` **RGB**;
OpenCV's BGR is converted at this border and nowhere else. Video files are read with OpenCV
(``cv2.VideoCapture``); MP4s are written as H.264 (which browsers and notebook players play) by the ffmpeg
binary that the ``imageio-ffmpeg`` wheel ships, where it is installed, else by OpenCV as MPEG-4 Part 2
(``mp4v``, which many players do not play); :func:`write_video` returns the codec it used. AVIs are written by
OpenCV (MJPG), images and GIFs by Pillow.

Every malformed input raises :class:`~mpat_nb.utils.InputError` naming the file.

The video-read rule: a video file must decode to the number of frames its container declares
(``CAP_PROP_FRAME_COUNT``). When decoding stops early (a truncated file, a zeroed or corrupt stretch), the
iterator raises InputError naming the missing frames after the last readable one, so a consumer that writes
only once the iteration has finished (``track``: an atomic video writer) writes nothing. A container that
declares no count (0) is read to its end; more frames than declared are accepted; for a container without a
frame index (not mp4 / m4v / mov / avi: OpenCV estimates its count from duration x frame rate) a shortfall of
up to 2 % of the count (at least 1 frame) gives a warning naming the missing frames instead of the error.

Every writer is atomic: a video is written to a temporary file renamed into place; frames are written into a
temporary folder that replaces the destination folder only after the last frame is written.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import warnings
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from mpat_nb.data.annotations import Video
from mpat_nb.utils import InputError, atomic_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_FOURCC",
    "h264_encoder",
    "read_video",
    "iter_video",
    "video_info",
    "write_video",
    "write_frames",
    "read_image",
    "iter_frame_images",
]

PathLike = str | os.PathLike

#: File endings read as frames in a folder (case-insensitive) and accepted by :func:`write_frames`.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")
#: OpenCV codec per video ending (``.mp4``: the fallback when no H.264 encoder is found); ``.gif``: Pillow.
VIDEO_FOURCC: dict[str, str] = {".mp4": "mp4v", ".avi": "MJPG"}
#: Containers whose header counts the frames exactly (a frame index); for others (mkv, webm, ts, ...) OpenCV
#: estimates the count from duration x frame rate, and a shortfall of up to 2 % (at least 1 frame) only warns.
EXACT_COUNT_ENDINGS: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".avi")
#: The codecs :func:`write_video` can be asked for, per ending (the first: the default where available).
VIDEO_CODECS: dict[str, tuple[str, ...]] = {".mp4": ("h264", "mp4v"), ".avi": ("MJPG",), ".gif": ("gif",)}


# ==============================================================================================
# Reading
# ==============================================================================================
def read_video(path: PathLike) -> np.ndarray:
    """Read a whole video file or folder of images: -> frames (T, H, W, 3) uint8 RGB."""
    return np.stack(list(iter_video(path)))


def iter_video(path: PathLike) -> Iterator[np.ndarray]:
    """Yield the frames of a video file or of a folder of images (sorted by name), each (H, W, 3) RGB.

    Problems found without decoding (missing path, empty folder, a file OpenCV cannot open) are raised
    here, at the call; a frame that fails to decode raises when it is reached.
    """
    path = Path(path)
    if path.is_dir():
        return _iter_images(_image_files(path), f"{path}")
    return _iter_capture(_open_capture(path), path)


def video_info(path: PathLike) -> dict:
    """``{"num_frames", "fps", "width", "height"}`` of a video file (from its header; ``num_frames`` can
    be approximate for some containers) or of a folder of images (``fps`` is None: frames have no rate)."""
    path = Path(path)
    if path.is_dir():
        files = _image_files(path)
        width, height = _image_size(files[0])
        return {"num_frames": len(files), "fps": None, "width": width, "height": height}
    capture = _open_capture(path)
    try:
        return {
            "num_frames": int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
            "fps": float(capture.get(cv2.CAP_PROP_FPS)),
            "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        }
    finally:
        capture.release()


def read_image(path: PathLike) -> np.ndarray:
    """Read one image: -> (H, W, 3) uint8 RGB. Grayscale, palette and RGBA images are converted (alpha
    dropped); 16-bit images (PNG) are scaled to 8 bits (value / 257, rounded), not clipped. Pixels are taken
    as stored (no EXIF rotation), the frame annotations refer to."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image file not found" if not path.exists() else f"{path}: not a file")
    try:
        with Image.open(path) as image:
            return _rgb8(image, path)
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path}: cannot read the image ({error}); expected a JPEG, PNG or BMP file") from error


def _rgb8(image: Image.Image, path: Path) -> np.ndarray:
    """A Pillow image as (H, W, 3) uint8 RGB. Pillow keeps 16-bit grayscale as mode ``I;16`` (or ``I``), which
    ``convert("RGB")`` clips to white; those are scaled from [0, 65535] to [0, 255] here. (16-bit RGB PNGs
    Pillow already opens as 8-bit RGB.)"""
    if image.mode.startswith("I"):
        values = np.asarray(image, dtype=np.float64)                    # (H, W)
        if values.min() < 0 or values.max() > 65535:
            raise InputError(f"{path}: {image.mode} image with values outside [0, 65535]; save it as 8- or 16-bit "
                             "PNG or JPEG")
        gray = np.round(values / 257.0).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        raise InputError(f"{path}: floating-point image (mode F); save it as 8- or 16-bit PNG or JPEG")
    return np.array(image.convert("RGB"))


def iter_frame_images(video: Video, image_root: PathLike = ".") -> Iterator[np.ndarray]:
    """Yield the image of every frame of ``video``, (H, W, 3) RGB, read from ``image_root / file_name``.

    All files are checked before the first is read, so a missing one is reported at the call.
    """
    root = Path(image_root)
    paths = [root / frame.file_name for frame in video.frames]
    for t, path in enumerate(paths):
        if not path.is_file():
            raise InputError(
                f"{path}: image of frame {t} of video {video.name!r} not found (file_name "
                f"{video.frames[t].file_name!r} under image_root {str(root)!r}); pass as image_root the "
                "folder that the file names are relative to")
    return (read_image(path) for path in paths)


# ==============================================================================================
# Writing
# ==============================================================================================
def write_video(frames: Iterable[np.ndarray], path: PathLike, fps: float = 10, codec: str | None = None) -> str:
    """Write frames (T, H, W, 3) uint8 RGB as ``.mp4``, ``.avi`` (MJPG) or ``.gif`` (Pillow, loops); returns the
    codec used: ``"h264"``, ``"mp4v"``, ``"MJPG"`` or ``"gif"``.

    codec (``.mp4`` only): None = H.264 where an encoder is found (:func:`h264_encoder`), else OpenCV's mp4v;
    ``"h264"`` (InputError without an encoder) or ``"mp4v"`` to choose. mp4 / avi codecs need even sizes: an
    odd height or width is padded by repeating the last row or column. Pillow merges identical consecutive GIF
    frames (keeping the timing), so a GIF of a still scene reads back with fewer frames.
    """
    path = Path(path)
    ending = path.suffix.lower()
    if ending not in VIDEO_CODECS:
        raise InputError(f"{path}: unknown video ending {ending!r}; use one of {tuple(VIDEO_CODECS)}")
    if codec is not None and codec not in VIDEO_CODECS[ending]:
        raise InputError(f"{path}: codec {codec!r} does not fit {ending}; use one of {VIDEO_CODECS[ending]} or None")
    if not fps > 0:
        raise InputError(f"{path}: fps must be positive, got {fps}")
    if ending == ".mp4":
        encoder = h264_encoder()
        if codec == "h264" and encoder is None:
            raise InputError(f"{path}: no H.264 encoder found: pip install imageio-ffmpeg (its ffmpeg has libx264), "
                             "or write with codec='mp4v'")
        codec = codec or ("h264" if encoder is not None else "mp4v")
    else:
        codec = VIDEO_CODECS[ending][0]
    checked = _checked_frames(frames, path)
    with atomic_path(path) as tmp:
        if codec == "gif":
            _write_gif(checked, tmp, fps)
        elif codec == "h264":
            _write_ffmpeg_h264(checked, tmp, fps, h264_encoder(), path)
        else:
            _write_opencv(checked, tmp, fps, codec, path)
    return codec


@functools.lru_cache(maxsize=1)
def h264_encoder() -> str | None:
    """Path of an ffmpeg binary with the libx264 encoder, or None: the one ``imageio-ffmpeg`` ships (or the one
    its ``IMAGEIO_FFMPEG_EXE`` variable names). Looked up once per process."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
        encoders = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=60,
                                  check=False).stdout
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return None
    return exe if " libx264 " in encoders else None


def write_frames(frames: Iterable[np.ndarray], folder: PathLike, ext: str = ".jpg", quality: int = 95) -> None:
    """Write frames (T, H, W, 3) uint8 RGB as ``folder/000000.jpg, 000001.jpg, ...``.

    ``ext``: ``.jpg`` / ``.jpeg`` (with JPEG ``quality``), ``.png`` (lossless) or ``.bmp``. An existing
    ``folder`` is replaced as a whole, and only once every frame has been written.
    """
    folder = Path(folder)
    ext = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
    if ext not in IMAGE_EXTENSIONS:
        raise InputError(f"{folder}: unknown image ending {ext!r}; use one of {IMAGE_EXTENSIONS}")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    options = {"quality": int(quality)} if ext in (".jpg", ".jpeg") else {}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        for t, frame in enumerate(_checked_frames(frames, folder)):
            Image.fromarray(frame).save(tmp / f"{t:06d}{ext}", **options)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ==============================================================================================
# Helpers
# ==============================================================================================
def _open_capture(path: Path) -> cv2.VideoCapture:
    if not path.exists():
        raise InputError(f"{path}: video file or folder of frames not found")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise InputError(f"{path}: OpenCV cannot open this video (not a video, damaged, or a codec this "
                         "OpenCV build lacks); try converting it to mp4 or to a folder of frames")
    return capture


def _iter_capture(capture: cv2.VideoCapture, path: Path) -> Iterator[np.ndarray]:
    """The frames of an opened capture; the video-read rule (module docstring): fewer frames decoded than the
    container declares -> InputError naming the missing frames, once the last readable frame has been yielded."""
    try:
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))     # <= 0 when the container does not say
        count = 0
        while True:
            ok, frame_bgr = capture.read()
            if not ok:
                break
            count += 1
            yield cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        if count == 0:
            raise InputError(f"{path}: OpenCV opened the video but could not decode a single frame (damaged, or a "
                             "codec this OpenCV build lacks); try converting it to mp4 or to a folder of frames")
        if count < declared:
            missing = f"frame {count}" if declared - count == 1 else f"frames {count} to {declared - 1}"
            if path.suffix.lower() not in EXACT_COUNT_ENDINGS and declared - count <= max(1, declared // 50):
                warnings.warn(f"{path}: decoded {count} of the about {declared} frames its duration x frame rate "
                              f"gives ({missing} not found); a {path.suffix} file has no frame index, so the count "
                              "is an estimate: kept as complete", stacklevel=2)
                return
            raise InputError(f"{path}: damaged or truncated video: decoded {count} of the {declared} frames its "
                             f"container declares ({missing} missing); repair or re-encode it (e.g. ffmpeg -i IN "
                             f"OUT.mp4), or use only its first {count} frames (track --max-frames {count})")
    finally:
        capture.release()


def _image_files(folder: Path) -> list[Path]:
    """The images of a folder sorted by name (hidden files skipped); raises if there is none."""
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    if not files:
        raise InputError(f"{folder}: empty folder of frames: no {'/'.join(IMAGE_EXTENSIONS)} files in it")
    return files


def _iter_images(files: list[Path], where: str) -> Iterator[np.ndarray]:
    first_shape = None
    for path in files:
        image = read_image(path)
        if first_shape is None:
            first_shape = image.shape
        elif image.shape != first_shape:
            raise InputError(f"{path}: is {image.shape[1]}x{image.shape[0]} but the first frame of {where} is "
                             f"{first_shape[1]}x{first_shape[0]}; all frames of a folder must have one size")
        yield image


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path}: cannot read the image ({error})") from error


def _checked_frames(frames: Iterable[np.ndarray], path: Path) -> Iterator[np.ndarray]:
    """Yield frames after checking each is (H, W, 3) uint8 and of the first frame's size; none -> error."""
    first_shape = None
    for t, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(f"{path}: frame {t} is {frame.dtype} {frame.shape}, expected uint8 (H, W, 3) RGB; "
                             "convert floats in [0, 1] with (frame * 255).round().clip(0, 255).astype(np.uint8)")
        if first_shape is None:
            first_shape = frame.shape
        elif frame.shape != first_shape:
            raise InputError(f"{path}: frame {t} has shape {frame.shape} but frame 0 has {first_shape}; "
                             "a video needs one frame size")
        yield frame
    if first_shape is None:
        raise InputError(f"{path}: no frames to write")


def _write_opencv(frames: Iterator[np.ndarray], tmp: Path, fps: float, fourcc: str, path: Path) -> None:
    writer = None
    try:
        for frame in frames:
            height, width = frame.shape[:2]
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")  # codecs want even sizes
            if writer is None:
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps),
                                         (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise RuntimeError(f"{path}: this OpenCV build cannot write {fourcc!r} video; "
                                       "write a .gif or a folder of frames instead")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()


def _write_ffmpeg_h264(frames: Iterator[np.ndarray], tmp: Path, fps: float, exe: str, path: Path) -> None:
    """Pipe raw RGB frames into ffmpeg: H.264 (libx264, yuv420p: what browsers play), index at the front
    (``+faststart``: plays while it downloads). ffmpeg is killed if anything (a signal included) interrupts."""
    padded = (np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
              for frame in frames)                                          # (H', W', 3) even sizes
    first = next(padded)
    height, width = first.shape[:2]
    command = [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", f"{float(fps)}", "-i", "-", "-an", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", "-crf", "18", "-threads", "1",          # one thread: the same bytes anywhere
               "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        try:
            try:
                for frame in chain([first], padded):
                    process.stdin.write(np.ascontiguousarray(frame).tobytes())
                process.stdin.close()
            except BrokenPipeError:
                pass                                                        # ffmpeg stopped: its log says why
            code = process.wait()
        except BaseException:
            process.kill()
            with contextlib.suppress(OSError):
                process.stdin.close()
            process.wait()
            raise
        if code != 0:
            log.seek(0)
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
            reason = lines[-1] if lines else "no message"
            raise RuntimeError(f"{path}: ffmpeg could not write H.264 (exit {code}: {reason}); write with "
                               "codec='mp4v' instead")


def _write_gif(frames: Iterator[np.ndarray], tmp: Path, fps: float) -> None:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(1, round(1000 / fps)), loop=0)  # loop=0: forever


def _replace_folder(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is removed only after the move succeeded."""
    if not target.exists():
        os.replace(new, target)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(backup)  # only the unique name is wanted
    os.replace(target, backup)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)
