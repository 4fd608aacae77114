"""Small shared helpers: seeding, device choice, fast mode, atomic file writes, input errors."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

FAST_ENV_VAR = "MPAT_NB_FAST"


class InputError(ValueError):
    """Bad user input (file, JSON, video, arguments). The message names the thing and the fix."""


class TrainingError(RuntimeError):
    """Training cannot go on (for example the loss became NaN); the message names the step."""


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


def get_device(prefer: str | None = None):
    """Pick ``cuda`` -> ``mps`` -> ``cpu`` (or the one asked for, with a clear error if absent)."""
    import torch

    if prefer is not None:
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

    Nothing is half-written: if the body raises, the temporary file is removed and ``path`` is untouched.
    The temporary name keeps the suffix so that writers that choose a codec by extension still work.
    """
    target = Path(path)
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
