"""Models: residual block, hourglass, stacked hourglass and SpatialNet (shapes, gradients, merge path, presets)."""

import dataclasses

import pytest
import torch

from mpat_nb.config import LOSS_WEIGHTS, ORDINAL_RELATIONS, SPATIAL_PRESETS, SpatialNetConfig, get_spatial_config
from mpat_nb.models import (
    Hourglass,
    Residual,
    SpatialNet,
    SpatialNetOutput,
    StackedHourglass,
    count_parameters,
    estimate_flops,
    preset_table,
)
from mpat_nb.skeleton import NUM_JOINTS
from mpat_nb.utils import InputError

torch.set_num_threads(2)

#: A tiny config at depth 2 (input multiple 16) keeps the per-test cost to milliseconds where the preset
#: itself is not the point.
MICRO = dataclasses.replace(get_spatial_config("tiny"), name="micro", num_stacks=2, channels=16, increase=8,
                            stem_channels=8, hourglass_depth=2, input_size=64, output_size=16)


def make_model(config=MICRO, seed=0) -> SpatialNet:
    torch.manual_seed(seed)
    return SpatialNet(config).eval()


@pytest.mark.parametrize("in_ch,out_ch", [(8, 8), (8, 16), (16, 6)])
def test_residual_shapes_and_skip(in_ch, out_ch):
    block = Residual(in_ch, out_ch)
    y = block(torch.randn(2, in_ch, 9, 7))
    assert y.shape == (2, out_ch, 9, 7)
    assert isinstance(block.skip, torch.nn.Identity) == (in_ch == out_ch)
    assert {"bn1.weight", "conv1.weight", "conv2.weight", "conv3.weight"} <= set(block.state_dict())


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("hw", [(32, 32), (32, 48)])
def test_hourglass_preserves_shape(depth, hw):
    hourglass = Hourglass(depth, 8, increase=4)
    x = torch.randn(2, 8, *hw)
    assert hourglass(x).shape == x.shape


def test_hourglass_recursion_and_bad_size():
    hourglass = Hourglass(3, 8, increase=4)
    assert isinstance(hourglass.inner, Hourglass) and isinstance(hourglass.inner.inner.inner, Residual)
    assert hourglass.inner.inner.inner.conv1.in_channels == 8 + 3 * 4      # the bottom is the widest
    with pytest.raises(ValueError, match="multiples of 8"):
        hourglass(torch.randn(1, 8, 12, 16))


def test_hourglass_gradients_reach_every_parameter():
    hourglass = Hourglass(3, 8, increase=4)
    hourglass(torch.randn(2, 8, 16, 16)).sum().backward()
    for name, p in hourglass.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_spatialnet_gradients_reach_every_parameter():
    model = make_model().train()
    out = model(torch.rand(2, 3, 64, 64))
    total = sum(t.sum() for t in (out.heatmaps, out.keypoint_embedding, out.svf, out.ordinal, out.features))
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("shape", [(2, 3, 128, 128), (1, 3, 128, 192)])
def test_tiny_output_shapes(shape):
    config = get_spatial_config("tiny")
    model = make_model(config)
    batch, _, height, width = shape
    with torch.no_grad():
        out = model(torch.rand(shape))
    assert isinstance(out, SpatialNetOutput)
    stacks, k, grid = config.num_stacks, NUM_JOINTS, (height // 4, width // 4)
    assert out.heatmaps.shape == (batch, stacks, k, *grid)
    assert out.keypoint_embedding.shape == (batch, stacks, k, *grid)
    assert out.svf.shape == (batch, stacks, 2, *grid)
    assert out.ordinal.shape == (batch, stacks, len(ORDINAL_RELATIONS), *grid)
    assert out.features.shape == (batch, config.channels, *grid)
    assert out.num_stacks == stacks
    torch.testing.assert_close(out.heatmaps_final, out.heatmaps[:, -1])
    torch.testing.assert_close(out.svf_final, out.svf[:, -1])
    # The heatmap head starts near 0 (MSE-friendly); the other heads do not.
    assert out.heatmaps.abs().max() < 0.1
    assert out.keypoint_embedding.std() > 10 * out.heatmaps.std()


def test_sie_is_pixel_plus_svf():
    out = make_model()(torch.rand(1, 3, 64, 64))
    out.svf = torch.zeros_like(out.svf)
    sie = out.spatial_instance_embedding()                              # (B, 2, H, W)
    assert sie[0, 0, 3, 5] == 5 and sie[0, 1, 3, 5] == 3                # x = column, y = row


@pytest.mark.parametrize("bad,fix", [
    (torch.rand(1, 4, 64, 64), "(B, 3, H, W)"),
    (torch.rand(3, 64, 64), "images[None]"),
    (torch.rand(1, 3, 64, 72), "pad or resize the images to e.g. (64, 80)"),
    (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "images.float() / 255"),
])
def test_bad_input_names_the_fix(bad, fix):
    with pytest.raises(ValueError) as error:
        make_model()(bad)
    assert fix in str(error.value)


def test_merge_path_feeds_the_next_stack():
    model = make_model()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.backbone.merge_predictions[0].weight.add_(0.5)         # only stack 1 -> stack 2 changes
        after = model(x)
    torch.testing.assert_close(after.heatmaps[:, 0], before.heatmaps[:, 0])
    assert not torch.allclose(after.heatmaps[:, 1], before.heatmaps[:, 1])
    assert not torch.allclose(after.features, before.features)


def test_deterministic_with_a_fixed_seed():
    x = torch.rand(1, 3, 64, 64)
    first, second, other = make_model(seed=3), make_model(seed=3), make_model(seed=4)
    with torch.no_grad():
        torch.testing.assert_close(first(x).ordinal, second(x).ordinal, rtol=0, atol=0)
        assert not torch.allclose(first(x).ordinal, other(x).ordinal)


def test_paper_preset_size_on_meta_device():
    config = get_spatial_config("paper")
    with torch.device("meta"):
        model = SpatialNet(config)
    params = count_parameters(model)
    # Our hourglass uses bottleneck residuals (3.25 C^2 weights) where AE's uses plain 3x3 convs (9 C^2):
    # 59.7 M here against AE's 138.9 M (docs/method.md 2.1).
    assert 55e6 < params < 65e6
    assert isinstance(model.backbone, StackedHourglass) and model.backbone.num_stacks == 4
    assert model.backbone.predictions[0].out_channels == 2 * 15 + 2 + 6
    assert 150 < estimate_flops(config) < 190                          # GFLOPs at 512 x 512


def test_flops_positive_and_grow_with_stacks_and_size():
    tiny = get_spatial_config("tiny")
    flops = estimate_flops(tiny)
    assert 0 < flops < 2.0                                              # the CPU budget per 256 x 256 image
    assert estimate_flops(dataclasses.replace(tiny, num_stacks=3)) > flops
    assert estimate_flops(tiny, input_size=(128, 128)) == pytest.approx(flops / 4, rel=1e-6)


def test_preset_table_lists_every_preset():
    table = preset_table({"micro": MICRO})
    assert "micro" in table and "GFLOPs" in table


def test_get_spatial_config():
    assert get_spatial_config("tiny") is SPATIAL_PRESETS["tiny"]
    assert get_spatial_config(MICRO) is MICRO
    assert get_spatial_config(dataclasses.asdict(MICRO)) == MICRO          # as saved in checkpoints
    with pytest.raises(InputError, match="paper.*small.*tiny"):
        get_spatial_config("nope")
    with pytest.raises(InputError, match="output_size"):
        SpatialNetConfig(name="bad", num_stacks=1, channels=16, input_size=256, output_size=128)
    with pytest.raises(InputError, match="multiple of 64"):
        SpatialNetConfig(name="bad", num_stacks=1, channels=16, input_size=96, output_size=24)
    for config in SPATIAL_PRESETS.values():
        assert config.output_size * 4 == config.input_size and config.num_joints == NUM_JOINTS
    assert set(LOSS_WEIGHTS) == {"det", "ke", "sie", "aux", "pgg"} and len(ORDINAL_RELATIONS) == 6
