"""Checkpoints: one format for every model, saved atomically, loaded with ``weights_only=True``.

A checkpoint is a plain dict of tensors and Python primitives (so the safe unpickler accepts it):
``kind`` (e.g. "spatialnet"), ``preset`` and ``model_config`` (the architecture), ``model`` (state dict),
optionally ``optimizer``, ``scheduler``, ``step``, ``rng`` (torch RNG state), ``train_config``,
``metrics``, ``decode`` (SpatialNet: the decoding bandwidths tuned for these weights, :func:`decode_tuning`),
and ``versions`` (mpat_nb, torch) for the record.

Every checkpoint is read through :func:`load_checkpoint`, which also refuses weights that are not finite (a NaN
or inf in any floating tensor of ``model``): ``track``, ``demo``, ``train --init / --resume`` and the notebooks'
loaders all get the same one-line error instead of silently wrong poses or tracks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Any

import torch

from mpat_nb.config import TemporalNetConfig, get_spatial_config, get_temporal_config
from mpat_nb.models.spatialnet import SpatialNet
from mpat_nb.models.temporalnet import TemporalNet
from mpat_nb.utils import InputError, atomic_path

#: Shipped checkpoints live inside the package so that ``pip install`` brings them along.
PACKAGE_CHECKPOINTS = Path(__file__).resolve().parent / "weights"


def save_checkpoint(path: str | Path, *, kind: str, model: torch.nn.Module, model_config: Any, **extra: Any) -> Path:
    """Write a checkpoint atomically (temp file + rename). ``model_config`` is a dataclass."""
    import mpat_nb

    payload = {
        "kind": kind,
        "preset": getattr(model_config, "name", None),
        "model_config": dataclasses.asdict(model_config),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "versions": {"mpat_nb": mpat_nb.__version__, "torch": str(torch.__version__)},  # TorchVersion: not weights_only-safe
        **extra,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path, *, kind: str | None = None, preset: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely and check that it is what the caller expects.

    Raises InputError naming the file for a missing or corrupt file, a checkpoint of another model
    kind, or one of another preset.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a corrupt / foreign file
        raise InputError(f"checkpoint {path} cannot be read (corrupt or not an mpat_nb checkpoint): {type(error).__name__}") from None
    if not isinstance(payload, dict) or "model" not in payload or "kind" not in payload:
        raise InputError(f"checkpoint {path} is not an mpat_nb checkpoint (no 'kind'/'model' entries)")
    if kind is not None and payload["kind"] != kind:
        raise InputError(f"checkpoint {path} holds a {payload['kind']!r} model, expected {kind!r}")
    if preset is not None and payload.get("preset") != preset:
        raise InputError(f"checkpoint {path} is of preset {payload.get('preset')!r}, expected {preset!r}: "
                         f"pass --preset {payload.get('preset')} or a checkpoint of preset {preset!r}")
    check_finite_weights(payload["model"], path)
    return payload


def check_finite_weights(state_dict: Any, path: str | Path) -> None:
    """InputError naming ``path`` and the first tensor of ``state_dict`` with a NaN or inf value.

    Only floating tensors are checked (integer buffers such as BatchNorm's ``num_batches_tracked`` cannot be
    NaN). A state dict that is not a mapping of names to tensors is refused as not an mpat_nb checkpoint.
    """
    if not isinstance(state_dict, dict):
        raise InputError(f"checkpoint {path} is not an mpat_nb checkpoint ('model' holds a "
                         f"{type(state_dict).__name__}, not a state dict)")
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            nan, inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
            raise InputError(f"checkpoint {path} has non-finite weights: tensor {name!r} holds {nan} NaN and {inf} "
                             f"inf values of {tensor.numel()}; use another checkpoint or retrain (training stops "
                             "at a NaN loss and keeps the last good checkpoint)")


def load_weights(model: torch.nn.Module, state_dict: dict, path: str | Path, architecture: str) -> torch.nn.Module:
    """``model.load_state_dict(state_dict)``, with an error that names the checkpoint file and the architecture."""
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise InputError(f"checkpoint {path} does not fit {architecture}: {str(error).splitlines()[0]}") from None
    return model


def shipped_checkpoint(name: str) -> Path:
    """Path of a checkpoint shipped in the package (e.g. ``"spatialnet_tiny.pt"``), with a clear error."""
    path = PACKAGE_CHECKPOINTS / name
    if not path.is_file():
        available = sorted(p.name for p in PACKAGE_CHECKPOINTS.glob("*.pt")) if PACKAGE_CHECKPOINTS.is_dir() else []
        raise InputError(f"no shipped checkpoint {name!r}; available: {available or 'none'}")
    return path


def export_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a training checkpoint without its optimiser / scheduler / RNG state (for shipping).

    Keeps the architecture, weights, training configuration, history, metrics and decoding tuning, so a reader
    can see how the weights were made; ``--resume`` needs the full training checkpoint instead.
    """
    payload = load_checkpoint(source)
    kept = {k: v for k, v in payload.items() if k not in ("optimizer", "scheduler", "rng")}
    # weights trained channels-last are stored in the standard (contiguous) layout, as a reader expects them
    kept["model"] = {k: v.contiguous() for k, v in kept["model"].items()}
    target = Path(target)
    with atomic_path(target) as tmp:
        torch.save(kept, tmp)
    return target


#: Decoding settings a SpatialNet checkpoint may carry in its "decode" entry (mpat_nb.decode.DecodeConfig fields).
TUNABLE_DECODING = ("ke_bandwidth", "sie_bandwidth")


def decode_tuning(payload: dict, path: str | Path) -> dict[str, float]:
    """The decoding bandwidths tuned for a SpatialNet checkpoint's weights (``payload["decode"]``; {} if none).

    InputError naming the file for unknown keys or values that are not positive finite numbers.
    """
    tuning = payload.get("decode") or {}
    unknown = sorted(set(tuning) - set(TUNABLE_DECODING)) if isinstance(tuning, dict) else ["(not a dict)"]
    if unknown:
        raise InputError(f"checkpoint {path}: unknown decoding settings {unknown} (known: {', '.join(TUNABLE_DECODING)})")
    for key, value in tuning.items():
        if not (isinstance(value, (int, float)) and 0 < float(value) < float("inf")):
            raise InputError(f"checkpoint {path}: decoding setting {key} must be a positive number, got {value!r}")
    return {key: float(value) for key, value in tuning.items()}


def store_decode_tuning(path: str | Path, tuning: dict[str, float]) -> Path:
    """Write ``tuning`` (e.g. ``{"sie_bandwidth": 0.1875}``) into a SpatialNet checkpoint's "decode" entry (atomically)."""
    payload = load_checkpoint(path, kind="spatialnet")
    payload["decode"] = decode_tuning({"decode": dict(tuning)}, path)
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)
    return Path(path)


# ----------------------------------------------------------------------------------------------
# Loading the models of a checkpoint (inference and training both read them from here)
# ----------------------------------------------------------------------------------------------
def load_spatialnet(path: str | Path, *, preset: str | None = None, device: str | torch.device = "cpu") -> SpatialNet:
    """A SpatialNet with the weights of a checkpoint (any preset unless ``preset`` is given), in eval mode."""
    state = load_checkpoint(path, kind="spatialnet", preset=preset, map_location="cpu")
    model = load_weights(SpatialNet(get_spatial_config(state["preset"])), state["model"], path,
                         f"the {state['preset']!r} architecture")
    model.decode_tuning = decode_tuning(state, path)
    return model.to(device).eval()


def spatial_checkpoint_path(path: str | Path | None, model_config: TemporalNetConfig | str) -> Path:
    """The frozen SpatialNet's checkpoint: ``path``, or the shipped ``spatialnet_<spatial_preset>.pt``."""
    if path is not None:
        return Path(path)
    return shipped_checkpoint(f"spatialnet_{get_temporal_config(model_config).spatial_preset}.pt")


def load_frozen_spatialnet(path: str | Path, model_config: TemporalNetConfig | str,
                           device: str | torch.device = "cpu") -> SpatialNet:
    """A SpatialNet from a checkpoint, in eval mode with ``requires_grad`` off, checked to fit the TemporalNet.

    Unlike :func:`load_spatialnet` (which rebuilds the preset's *current* definition), the network is
    built from the checkpoint's recorded ``model_config``: the weights define the architecture, and a checkpoint
    of an older definition of a preset is then reported by what it is (e.g. its feature width) rather than by a
    state-dict mismatch.
    """
    model_config = get_temporal_config(model_config)
    state = load_checkpoint(path, kind="spatialnet", map_location="cpu")
    spatial = load_weights(SpatialNet(get_spatial_config(state["model_config"])), state["model"], path,
                           "its recorded SpatialNet architecture")
    spatial.decode_tuning = decode_tuning(state, path)
    try:
        model_config.check_spatial(spatial.config)
    except InputError as error:
        raise InputError(f"SpatialNet checkpoint {path} does not fit: {error} (or give --spatial-checkpoint a "
                         f"SpatialNet with {model_config.feature_channels}-channel features)") from None
    multiple = 2 ** model_config.tie_hourglass_depth
    if spatial.config.output_size % multiple:
        raise InputError(f"the TIE hourglass of TemporalNet {model_config.name!r} needs an output grid that is a "
                         f"multiple of {multiple}, SpatialNet {spatial.config.name!r} gives "
                         f"{spatial.config.output_size}")
    return spatial.requires_grad_(False).to(device).eval()


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A short SHA-256 of a model's state dict (names and bytes): tells which SpatialNet a TemporalNet read."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def load_temporalnet(path: str | Path, *, preset: str | None = None,
                     device: str | torch.device = "cpu") -> TemporalNet:
    """A TemporalNet with the weights of a checkpoint (any preset unless ``preset`` is given), in eval mode.

    The architecture is the checkpoint's recorded ``model_config``. Its SpatialNet is not included: use
    :func:`load_temporal_pair` for both.
    """
    state = load_checkpoint(path, kind="temporalnet", preset=preset, map_location="cpu")
    model = load_weights(TemporalNet(get_temporal_config(state["model_config"])), state["model"], path,
                         f"its recorded {state['preset']!r} architecture")
    return model.to(device).eval()


def load_temporal_pair(path: str | Path, *, spatial_checkpoint: str | Path | None = None,
                       device: str | torch.device = "cpu") -> tuple[SpatialNet, TemporalNet]:
    """The frozen SpatialNet and the TemporalNet of a TemporalNet checkpoint, both in eval mode.

    spatial_checkpoint: default the one the run recorded (its explicit path if it still exists, else the
    shipped checkpoint of the preset). Warns when its weights are not the ones TemporalNet was trained on.
    """
    state = load_checkpoint(path, kind="temporalnet", map_location="cpu")
    temporal = load_temporalnet(path, device=device)
    if spatial_checkpoint is None:
        recorded = (state.get("train_config") or {}).get("spatial_checkpoint")
        spatial_checkpoint = recorded if recorded and Path(recorded).is_file() else None
    spatial = load_frozen_spatialnet(spatial_checkpoint_path(spatial_checkpoint, temporal.config), temporal.config,
                                     device)
    expected = (state.get("spatial") or {}).get("fingerprint")
    if expected and expected != weights_fingerprint(spatial):
        warnings.warn(f"TemporalNet {path} was trained on SpatialNet {state['spatial'].get('checkpoint')} "
                      f"(fingerprint {expected}); the SpatialNet loaded now has other weights: its features are "
                      "not what TemporalNet learned from. Pass the original with spatial_checkpoint=...",
                      stacklevel=2)
    return spatial, temporal
