"""Inference fast paths: BN folding and channels-last change no output, options fail early and clearly."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from mpat_nb.config import TEMPORAL_PRESETS, get_spatial_config
from mpat_nb.inference import (
    InferenceOptions,
    fuse_conv_batchnorm,
    inference_context,
    inference_options,
    prepare_for_inference,
)
from mpat_nb.models.hourglass import Residual
from mpat_nb.models.spatialnet import SpatialNet
from mpat_nb.models.temporalnet import TemporalNet
from mpat_nb.skeleton import NUM_JOINTS

torch.set_num_threads(1)
#: micro configs (as in test_models / test_temporalnet): milliseconds per forward pass
SPATIAL_MICRO = dataclasses.replace(get_spatial_config("tiny"), name="micro", num_stacks=2, channels=16, increase=8,
                                    stem_channels=8, hourglass_depth=2, input_size=64, output_size=16)
TEMPORAL_MICRO = dataclasses.replace(TEMPORAL_PRESETS["tiny"], name="micro", feature_channels=16, roi_size=(8, 4),
                                     he_stage_planes=(4, 4, 8), mid_level_dim=16, tie_channels=8,
                                     tie_hourglass_depth=2, tie_increase=4)


def with_random_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial running statistics and affine weights (fresh ones are mean 0, var 1: too easy)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(size, generator=generator) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.2)
    return model.eval()


def spatial_model(seed: int = 0) -> SpatialNet:
    torch.manual_seed(seed)
    return with_random_statistics(SpatialNet(SPATIAL_MICRO), seed)


def temporal_inputs(batch: int = 2, seed: int = 1):
    """What TemporalNet reads of two frames' SpatialNet outputs, plus two boxes per image."""
    generator = torch.Generator().manual_seed(seed)
    frame = lambda: (torch.rand(batch, 16, 16, 16, generator=generator),            # noqa: E731
                     torch.rand(batch, NUM_JOINTS, 16, 16, generator=generator),
                     torch.randn(batch, 2, 16, 16, generator=generator))
    boxes = [torch.tensor([[1.0, 2.0, 7.5, 13.0], [6.0, 0.5, 14.0, 15.0]]) for _ in range(batch)]
    images = torch.rand(batch, 3, 64, 64, generator=generator)                      # the frames (HE reads RGB too)
    return frame(), frame(), boxes, images


def run_temporal(model: TemporalNet, inputs):
    previous, current, boxes, images = inputs
    with inference_context():
        forward, backward = model.temporal_instance(*previous, *current)
        embeddings = model.human_embedding(previous[0], boxes, images)
    return forward, backward, torch.cat(embeddings)


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


def test_fused_spatialnet_equals_the_unfused_eval_model():
    model = spatial_model()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(images)
    fused = prepare_for_inference(model, InferenceOptions(fuse_batchnorm=True, channels_last=False))
    with inference_context():
        got = fused(images)
    for name in ("heatmaps", "keypoint_embedding", "svf", "ordinal", "features"):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=1e-4, atol=1e-5)
    # every BN folded except each pre-activation Residual's bn1 (BN -> ReLU -> conv cannot be folded)
    assert count(fused, nn.BatchNorm2d) == count(model, Residual)
    assert count(model, nn.BatchNorm2d) == 3 * count(model, Residual) + 1 + SPATIAL_MICRO.num_stacks   # untouched


def test_fused_temporalnet_equals_the_unfused_eval_model():
    torch.manual_seed(0)
    model = with_random_statistics(TemporalNet(TEMPORAL_MICRO))
    inputs = temporal_inputs()
    expected = run_temporal(model, inputs)
    fused = prepare_for_inference(model, InferenceOptions(fuse_batchnorm=True, channels_last=False))
    for got, want in zip(run_temporal(fused, inputs), expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # HE (post-activation torchvision Bottlenecks, downsample conv + BN) folds completely; TIE keeps its bn1s
    assert count(fused.human_embedding, nn.BatchNorm2d) == 0
    assert count(fused.temporal_instance, nn.BatchNorm2d) == count(model.temporal_instance, Residual)


def test_channels_last_gives_the_same_outputs():
    model = spatial_model(seed=3)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = model(images)
    for options in (InferenceOptions(channels_last=True, fuse_batchnorm=False), InferenceOptions()):
        prepared = prepare_for_inference(model, options)
        assert prepared.backbone.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
        with inference_context(options):
            got = prepared(images)
        torch.testing.assert_close(got.heatmaps, expected.heatmaps, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got.features, expected.features, rtol=1e-4, atol=1e-5)
    torch.manual_seed(0)
    temporal = with_random_statistics(TemporalNet(TEMPORAL_MICRO))
    inputs = temporal_inputs()
    channels_last = prepare_for_inference(temporal, InferenceOptions(channels_last=True, fuse_batchnorm=False))
    for got, want in zip(run_temporal(channels_last, inputs), run_temporal(temporal, inputs)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)        # RoI-Align reads NHWC features too


def test_the_given_model_is_left_as_it_was():
    model = spatial_model().train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    prepared = prepare_for_inference(model, InferenceOptions())
    assert model.training and not prepared.training
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters()) and not any(p.requires_grad for p in prepared.parameters())


def test_inference_context_is_inference_mode():
    with inference_context(InferenceOptions(), "cpu"):
        assert torch.is_inference_mode_enabled()
        assert not torch.is_autocast_enabled("cuda")
    assert not torch.is_inference_mode_enabled()


def test_options_validation():
    with pytest.raises(ValueError, match="autocast must be None, 'bf16' or 'fp16'"):
        InferenceOptions(autocast="fp32")
    with pytest.raises(ValueError, match="channels_last must be True or False"):
        InferenceOptions(channels_last=1)
    with pytest.raises(ValueError, match="must be an InferenceOptions"):
        prepare_for_inference(spatial_model(), {"fuse_batchnorm": True})
    with pytest.raises(ValueError, match="eval-mode"):
        fuse_conv_batchnorm(spatial_model().train())


def test_cuda_only_options_are_ignored_with_a_warning_on_cpu():
    model = spatial_model()
    images = torch.rand(1, 3, 64, 64)
    options = InferenceOptions(autocast="fp16", cudnn_benchmark=True)
    with pytest.warns(UserWarning, match="autocast, cudnn_benchmark cannot be used on cpu"):
        prepared = prepare_for_inference(model, options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with inference_context(options, "cpu"):
            heatmaps = prepared(images).heatmaps
    assert heatmaps.dtype == torch.float32 and not torch.backends.cudnn.benchmark
    with torch.no_grad():
        torch.testing.assert_close(heatmaps, model(images).heatmaps, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_runs_on_the_cpu_and_precision_maps_to_options():
    model = spatial_model()
    images = torch.rand(1, 3, 64, 64)
    options = inference_options("bf16", "cpu")
    assert options == InferenceOptions(autocast="bf16") and inference_options("fp32", "cpu") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepared = prepare_for_inference(model, options)
        with inference_context(options, "cpu"):
            heatmaps = prepared(images).heatmaps
    assert heatmaps.dtype == torch.bfloat16
    with torch.no_grad():
        reference = model(images).heatmaps
    assert (heatmaps.float() - reference).abs().max() < 0.05 * reference.abs().max() + 1e-3


def test_network_observer_with_fast_paths_matches_the_default():
    """Shipped tiny models on a short clip: the default observer runs the given models under inference mode;
    with options it runs fused channels-last copies and computes the same maps, embeddings and fields.

    Ground-truth poses are tracked so that both see the same people: decoding itself is not compared, because
    AE grouping of the weak tiny model flips on float rounding (a 1e-7 change of one heatmap score moved a
    candidate between people when we tried), as it would with another thread count."""
    from mpat_nb.checkpoints import load_spatialnet, load_temporalnet, shipped_checkpoint
    from mpat_nb.data.synth import generate_clip
    from mpat_nb.tracking.pipeline import NetworkObserver

    spatial = load_spatialnet(shipped_checkpoint("spatialnet_tiny.pt"))
    temporal = load_temporalnet(shipped_checkpoint("temporalnet_tiny.pt"))
    clip = generate_clip("easy", 900_003, 2, (160, 128))
    plain = NetworkObserver(spatial, temporal)
    fast = NetworkObserver(spatial, temporal, inference=InferenceOptions())                  # fused, channels-last
    assert plain.spatial is spatial and fast.spatial is not spatial and count(spatial, nn.BatchNorm2d) > 0
    for image, frame in zip(clip.frames, clip.video.frames):
        expected, got = plain.observe(image, frame.people), fast.observe(image, frame.people)
        assert plain._previous.features.is_inference()                  # ran under torch.inference_mode
        torch.testing.assert_close(fast._previous.heatmaps, plain._previous.heatmaps, rtol=1e-4, atol=1e-5)
        assert len(got.detections) == len(expected.detections) > 0
        for a, b in zip(got.detections, expected.detections):
            torch.testing.assert_close(torch.as_tensor(a.embedding), torch.as_tensor(b.embedding), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.as_tensor(got.tvf_forward), torch.as_tensor(expected.tvf_forward),
                               rtol=0, atol=1e-3)                         # output pixels (x SVF_NORMALISER)


def test_bf16_moves_few_decoded_joints_of_the_shipped_models():
    """The tolerance behind ``track`` / ``demo`` keeping fp32 as the default and offering ``--precision bf16``:
    with bf16 autocast at least 95 % of fp32's decoded joints (score >= 0.2) stay within one output-grid pixel
    (``benchmarks/bench_pipeline.py`` measures the share on longer clips)."""
    from mpat_nb.checkpoints import load_temporal_pair, shipped_checkpoint
    from mpat_nb.data.synth import generate_clip
    from mpat_nb.inference import inference_options
    from mpat_nb.tracking.pipeline import NetworkObserver

    spatial, temporal = load_temporal_pair(shipped_checkpoint("temporalnet_tiny.pt"))
    frames = generate_clip(preset="mixed", seed=7, num_frames=3).frames
    decoded = {}
    for name, options in (("fp32", None), ("bf16", inference_options("bf16", "cpu"))):
        observer = NetworkObserver(spatial, temporal, inference=options)
        decoded[name] = [[d.joints for d in observer.observe(image).detections] for image in frames]
    distances = []
    for reference, other in zip(decoded["fp32"], decoded["bf16"]):
        found = np.stack(other) if other else np.zeros((0, NUM_JOINTS, 3))              # (N', K, 3)
        for joints in reference:                                                         # (K, 3) x, y, score
            for k in np.nonzero(joints[:, 2] >= 0.2)[0]:
                same = found[found[:, k, 2] >= 0.2, k, :2]
                distances.append(np.hypot(*(same - joints[k, :2]).T).min() if len(same) else np.inf)
    assert len(distances) >= 20
    assert np.mean(np.asarray(distances) <= 1.0) >= 0.95


@pytest.mark.parametrize("name", ["spatialnet_tiny.pt", "spatialnet_tiny_pgg.pt", "temporalnet_tiny.pt"])
def test_shipped_weights_are_finite_and_in_the_standard_layout(name):
    from mpat_nb.checkpoints import load_checkpoint, shipped_checkpoint
    payload = load_checkpoint(shipped_checkpoint(name))
    assert "optimizer" not in payload and "rng" not in payload            # exported, not a training checkpoint
    for key, tensor in payload["model"].items():
        assert tensor.is_contiguous(), f"{name}: {key} is not contiguous (trained channels-last, not exported?)"
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), f"{name}: {key}"


def test_export_stores_channels_last_weights_contiguous(tmp_path):
    from mpat_nb.checkpoints import export_checkpoint
    weight = torch.randn(4, 3, 5, 5).to(memory_format=torch.channels_last)
    torch.save({"kind": "spatialnet", "model": {"conv.weight": weight}, "optimizer": {}, "rng": {}},
               tmp_path / "last.pt")
    exported = torch.load(export_checkpoint(tmp_path / "last.pt", tmp_path / "out.pt"), weights_only=True)
    assert exported["model"]["conv.weight"].is_contiguous()
    assert torch.equal(exported["model"]["conv.weight"], weight) and "optimizer" not in exported
