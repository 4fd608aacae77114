"""Training precision (mpat_nb.precision) and the synthetic data path's clip reuse (SyntheticSpatialDataset)."""

import dataclasses

import pytest
import torch

from mpat_nb.data.datasets import SyntheticSpatialDataset
from mpat_nb.data.synth import generate_clip
from mpat_nb.models.spatialnet import SpatialNetOutput
from mpat_nb.precision import cpu_has_native_bf16, resolve_precision
from mpat_nb.train import as_float32
from mpat_nb.utils import InputError


def test_fp32_is_plain_and_bf16_is_autocast_with_channels_last():
    plain = resolve_precision("fp32", "cpu")
    assert plain.dtype is None and not plain.channels_last and not plain.scale_gradients
    bf16 = resolve_precision("bf16", "cpu")
    assert bf16.dtype == torch.bfloat16 and bf16.channels_last and not bf16.scale_gradients
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    images = torch.rand(2, 3, 8, 8)
    with bf16.autocast():
        assert conv(bf16.images(images)).dtype == torch.bfloat16
    with plain.autocast():
        assert conv(plain.images(images)).dtype == torch.float32
    assert bf16.images(images).is_contiguous(memory_format=torch.channels_last)
    assert bf16.images(images).shape == images.shape                     # only the strides change


def test_auto_follows_the_cpus_bf16_instructions(monkeypatch):
    import mpat_nb.precision as precision

    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
        assert resolve_precision("auto", "cpu").name == expected
    assert isinstance(cpu_has_native_bf16(), bool)


def test_auto_on_cuda_is_bf16_only_with_bf16_tensor_cores(monkeypatch):
    """A T4 (compute capability 7.5) emulates bf16 (torch.cuda.is_bf16_supported() is True there): auto takes fp16
    with gradient scaling; an A100 (8.0) takes bf16; an explicit bf16 still runs wherever torch can."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    for capability, expected in (((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        chosen = resolve_precision("auto", "cuda")
        assert chosen.name == expected and chosen.scale_gradients == (expected == "fp16") and chosen.channels_last
        assert resolve_precision("bf16", "cuda").name == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(InputError, match="no bf16"):
        resolve_precision("bf16", "cuda")


def test_unknown_precision_names_the_choices():
    with pytest.raises(InputError, match="auto, fp32, bf16"):
        resolve_precision("fp8", "cpu")


def test_losses_see_float32_outputs():
    tensors = [torch.zeros(1, 1, 2, 4, 4, dtype=torch.bfloat16) for _ in range(4)]
    output = SpatialNetOutput(*tensors, features=torch.zeros(1, 3, 4, 4, dtype=torch.bfloat16))
    as_float = as_float32(output)
    assert all(getattr(as_float, f.name).dtype == torch.float32 for f in dataclasses.fields(output))
    assert as_float32(dataclasses.replace(output, ordinal=None)).ordinal is None


def test_bf16_train_step_gives_fp32s_loss_within_bf16_rounding():
    """One tiny SpatialNet forward pass and loss: bf16 + channels-last against fp32 (same weights, same batch)."""
    from mpat_nb.config import get_spatial_config
    from mpat_nb.data.datasets import collate_samples
    from mpat_nb.losses import spatial_loss
    from mpat_nb.models.spatialnet import SpatialNet

    config = dataclasses.replace(get_spatial_config("tiny"), input_size=64, output_size=16)
    torch.manual_seed(0)
    model = SpatialNet(config).train()
    data = SyntheticSpatialDataset(64, 16, length=2, render_size=(64, 64), augment=None)
    images, targets = collate_samples([data[0], data[1]])
    totals = {}
    for name in ("fp32", "bf16"):
        precision = resolve_precision(name, "cpu")
        with torch.no_grad(), precision.autocast():
            output = as_float32(precision.model(model)(precision.images(images)))
        totals[name] = spatial_loss(output, targets)["total"].item()
    assert totals["bf16"] == pytest.approx(totals["fp32"], rel=0.05)


def test_clips_in_flight_give_distinct_clips_per_batch_and_reuse_them_for_later_frames():
    data = SyntheticSpatialDataset(64, 16, length=24, render_size=(64, 64), augment=None, frames_per_clip=3,
                                   clips_in_flight=4, frame_gap=2)
    where = [data.clip_and_frame(i) for i in range(24)]
    assert where[:4] == [(0, 1), (1, 1), (2, 1), (3, 1)]                  # batch 0: four clips, frame 1
    assert where[4:8] == [(0, 3), (1, 3), (2, 3), (3, 3)]                 # batch 1: the same clips, 2 frames on
    assert where[12] == (4, 1)                                             # next block: new clips
    assert data.clip_frames == 7


def test_an_item_is_the_rendered_frame_whatever_the_access_order():
    data = SyntheticSpatialDataset(64, 16, length=8, render_size=(64, 64), augment=None, frames_per_clip=2,
                                   clips_in_flight=2)
    forward = [data[i]["image"] for i in range(8)]
    fresh = SyntheticSpatialDataset(64, 16, length=8, render_size=(64, 64), augment=None, frames_per_clip=2,
                                    clips_in_flight=2)
    for i in (7, 0, 5, 2):                                                  # other order, other cache state
        assert torch.equal(fresh[i]["image"], forward[i])
    clip, t = data.clip_and_frame(5)
    rendered = generate_clip(preset="mixed", seed=int(data._seeds[clip]), num_frames=data.clip_frames,
                             size=(64, 64)).frames[t]
    assert torch.equal((forward[5] * 255).round().to(torch.uint8), torch.from_numpy(rendered).permute(2, 0, 1))


def test_one_frame_per_clip_is_the_last_frame_of_a_two_frame_clip():
    data = SyntheticSpatialDataset(64, 16, length=2, render_size=(64, 64), augment=None)
    rendered = generate_clip(preset="mixed", seed=int(data._seeds[1]), num_frames=2, size=(64, 64)).frames[-1]
    assert torch.equal((data[1]["image"] * 255).round().to(torch.uint8), torch.from_numpy(rendered).permute(2, 0, 1))
