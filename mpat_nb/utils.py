"""Small shared helpers: seeding, device choice, fast mode, atomic file writes, input errors, cleanup on signals.

Two rules keep a failed or interrupted command from leaving anything behind:

* every file is written through :func:`atomic_path` (a hidden ``.tmp`` file renamed into place), whose temporary
  file is removed when the body raises, including on SIGINT (KeyboardInterrupt) and, inside
  :func:`signals_raise` (the ``mpat-nb`` command line), SIGTERM (:class:`Terminated`);
* :func:`removes_created_folders` (the command line, around every sub-command) removes, when the command fails,
  the folders of its output path that it created and that are still empty, so that a refused, failed or
  interrupted run leaves no empty output folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

FAST_ENV_VAR = "MPAT_NB_FAST"


class InputError(ValueError):
    """Bad user input (file, JSON, video, arguments). The message names the thing and the fix."""


class TrainingError(RuntimeError):
    """Training cannot go on (for example the loss became NaN); the message names the step."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an exception inside :func:`signals_raise` so that cleanup code runs as for Ctrl-C."""


def is_fast_mode() -> bool:
    """True when ``MPAT_NB_FAST=1``: notebooks and demos shrink sizes and steps (CI uses this)."""
    return os.environ.get(FAST_ENV_VAR, "0").strip() == "1"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if installed) torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, kept optional for light tools
        return
    torch.manual_seed(seed)


#: The device names :func:`get_device` accepts
_DEVICE_PATTERN = re.compile(r"cpu|mps|cuda(:\d+)?")


def get_device(prefer: str | None = None):
    """Pick ``cuda`` -> ``mps`` -> ``cpu`` (or the one asked for, with a clear error if absent)."""
    import torch

    if prefer is not None:
        if not _DEVICE_PATTERN.fullmatch(prefer):
            raise InputError(f"unknown device {prefer!r}: use cpu, cuda (or cuda:N) or mps, or leave --device out "
                             "for the best available")
        if prefer.startswith("cuda") and not torch.cuda.is_available():
            raise InputError("CUDA was asked for but no CUDA device is available: use --device cpu")
        if prefer == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise InputError("MPS was asked for but is not available: use --device cpu")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    Nothing is half-written: if the body raises (SIGINT, and SIGTERM inside :func:`signals_raise`, included),
    the temporary file and the folders created for it are removed and ``path`` is untouched.
    The temporary name keeps the suffix so that writers that choose a codec by extension still work.
    """
    target = Path(path)
    with removes_created_folders(target.parent):                       # a failed write leaves no new empty folder
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            # mkstemp creates the file as 0600; give it the permissions a plain open() would (0666 minus umask)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` (as SIGINT raises KeyboardInterrupt), so that ``finally``
    blocks and :func:`atomic_path` remove their temporary files before the process ends. Outside the main thread
    (where Python cannot set signal handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def removes_created_folders(*paths: str | os.PathLike | None) -> Iterator[None]:
    """On an exception in the body (any, SIGINT and SIGTERM included), remove the folders that did not exist on
    entry on the way to each of ``paths``, with the folders made inside them, as far as they are empty (a file
    written before the failure keeps its folders); on success leave everything as it is."""
    tops = set()                                                         # the outermost missing folder of each path
    for path in paths:
        if path is None:
            continue
        missing = [folder for folder in (Path(path), *Path(path).parents) if not folder.exists()]
        if missing:
            tops.add(missing[-1])
    try:
        yield
    except BaseException:
        for top in tops:
            if not top.is_dir():
                continue
            for folder, _, _ in sorted(os.walk(top), key=lambda entry: -len(Path(entry[0]).parts)):  # deepest first
                with contextlib.suppress(OSError):
                    os.rmdir(folder)                                     # fails (and is kept) when not empty
        raise


def check_output_folder(out: str | Path, flag: str = "--out") -> None:
    """InputError unless ``out`` is a folder or can be created as one (no file in its place or above it)."""
    out = Path(out)
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"{flag} {out}: {folder} is a file, not a folder; give a folder (it is created "
                                 "when there is something to write in it)")
            return


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


class DeviceMovable:
    """Mixin for dataclasses of tensors: ``.to(device)`` returns a copy with every field on ``device``.

    A field may be a tensor, anything with its own ``.to`` (another such dataclass), or a list of those.
    """

    def to(self, device, non_blocking: bool = False):
        def moved(value):
            if isinstance(value, list):
                return [moved(item) for item in value]
            return value.to(device, non_blocking=non_blocking)

        return dataclasses.replace(self, **{f.name: moved(getattr(self, f.name)) for f in dataclasses.fields(self)})
