"""TemporalNet training and measurement: exact resume, NaN stop, frozen SpatialNet, metrics on known cases, CLI."""

import dataclasses
import math

import pytest
import torch

import mpat_nb.train as train_module_shared
import mpat_nb.train_temporal as train_module
from mpat_nb.checkpoints import (
    load_checkpoint,
    load_temporal_pair,
    load_temporalnet,
    save_checkpoint,
    weights_fingerprint,
)
from mpat_nb.cli import _train_config, build_parser, main
from mpat_nb.codec_temporal import boxes_from_joints, encode_tvf_targets
from mpat_nb.config import SPATIAL_PRESETS, SVF_NORMALISER, TEMPORAL_PRESETS, get_spatial_config
from mpat_nb.data.pairs import FramePeople
from mpat_nb.models.spatialnet import SpatialNet
from mpat_nb.skeleton import NUM_JOINTS
from mpat_nb.temporal_metrics import (
    colour_histograms,
    end_point_error,
    format_reid_table,
    format_tvf_table,
    measure_reid,
    measure_tvf,
    rank1_accuracy,
    zero_motion_fields,
)
from mpat_nb.train_temporal import TemporalTrainConfig, train_temporalnet
from mpat_nb.utils import InputError, TrainingError

torch.set_num_threads(1)
#: A SpatialNet and a TemporalNet small enough that a training step takes a fraction of a second:
#: 64 px input, 16 x 16 output grid, 8-channel features, hourglasses of depth 2.
MICRO_SPATIAL = dataclasses.replace(get_spatial_config("tiny"), name="micro", channels=8, hourglass_depth=2, increase=4,
                                    input_size=64, output_size=16, stem_channels=8)
MICRO_TEMPORAL = dataclasses.replace(TEMPORAL_PRESETS["tiny"], name="micro", spatial_preset="micro", feature_channels=8,
                                     roi_size=(8, 4), he_stage_planes=(4, 4, 8), mid_level_dim=16, tie_channels=8,
                                     tie_hourglass_depth=2, tie_increase=4)


@pytest.fixture(autouse=True)
def micro_presets(monkeypatch):
    monkeypatch.setitem(SPATIAL_PRESETS, "micro", MICRO_SPATIAL)
    monkeypatch.setitem(TEMPORAL_PRESETS, "micro", MICRO_TEMPORAL)


def save_spatialnet(path, seed=0):
    torch.manual_seed(seed)
    return save_checkpoint(path, kind="spatialnet", model=SpatialNet(MICRO_SPATIAL), model_config=MICRO_SPATIAL)


@pytest.fixture
def config(tmp_path):
    spatial = save_spatialnet(tmp_path / "spatialnet_micro.pt")
    return TemporalTrainConfig(preset="micro", spatial_checkpoint=str(spatial), steps=4, batch_size=2, render_size=64,
                               val_every=0, val_pairs=2, log_every=1, device="cpu")


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def test_resume_gives_the_same_weights_as_one_run(tmp_path, config, monkeypatch):
    straight = train_temporalnet(config, tmp_path / "straight", progress=False)
    with_checkpoints = dataclasses.replace(config, val_every=2)
    partial = tmp_path / "partial"
    real_loss, calls = train_module.temporal_loss, {"n": 0}

    def interrupted(*args, **kwargs):           # the run dies (KeyboardInterrupt) after its step-2 checkpoint
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_module, "temporal_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_temporalnet(with_checkpoints, partial, progress=False)
    monkeypatch.setattr(train_module, "temporal_loss", real_loss)
    assert load_checkpoint(partial / "last.pt")["step"] == 2
    resumed = train_temporalnet(with_checkpoints, partial, resume=partial / "last.pt", progress=False)
    a, b = load_checkpoint(straight["checkpoint"]), load_checkpoint(resumed["checkpoint"])
    assert a["step"] == b["step"] == 4
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-5, atol=1e-6)
    assert [r["total"] for r in a["history"] if "total" in r] == pytest.approx(
        [r["total"] for r in b["history"] if "total" in r], rel=1e-5)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, config, monkeypatch):
    real_loss, calls = train_module.temporal_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        losses = real_loss(*args, **kwargs)
        if calls["n"] == 3:
            losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(train_module, "temporal_loss", poisoned)
    with pytest.raises(TrainingError, match="step 3.*last.pt.*intact"):
        train_temporalnet(dataclasses.replace(config, val_every=2), tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "last.pt", kind="temporalnet")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_spatialnet_stays_frozen_and_is_recorded(tmp_path, config, monkeypatch):
    loaded = {}
    real_load = train_module.load_frozen_spatialnet

    def capture(*args, **kwargs):
        loaded["spatial"] = real_load(*args, **kwargs)
        return loaded["spatial"]

    monkeypatch.setattr(train_module, "load_frozen_spatialnet", capture)
    result = train_temporalnet(dataclasses.replace(config, steps=2), tmp_path / "run", progress=False)
    spatial = loaded["spatial"]
    assert not spatial.training and not any(p.requires_grad for p in spatial.parameters())
    before = load_checkpoint(config.spatial_checkpoint)["model"]
    after = spatial.state_dict()
    assert set(before) == set(after)
    for key in before:                                        # weights and BatchNorm statistics untouched
        assert torch.equal(before[key], after[key]), key
    state = load_checkpoint(result["checkpoint"], kind="temporalnet")
    assert state["spatial"]["fingerprint"] == weights_fingerprint(spatial)
    assert state["train_config"]["spatial_checkpoint"] == config.spatial_checkpoint
    assert math.isfinite(result["metrics"]["epe_forward"]) and 0 <= result["metrics"]["rank1"] <= 1

    # the pair loads back; another SpatialNet is flagged (warning when loading, error when resuming)
    spatial_again, temporal = load_temporal_pair(result["checkpoint"])
    assert not temporal.training and weights_fingerprint(spatial_again) == state["spatial"]["fingerprint"]
    assert load_temporalnet(result["checkpoint"]).config == MICRO_TEMPORAL
    other = save_spatialnet(tmp_path / "other.pt", seed=1)
    with pytest.warns(UserWarning, match="other weights"):
        load_temporal_pair(result["checkpoint"], spatial_checkpoint=other)
    with pytest.raises(InputError, match="cannot resume"):
        train_temporalnet(dataclasses.replace(config, spatial_checkpoint=str(other)), tmp_path / "run",
                          resume=result["checkpoint"], progress=False)


def test_a_spatialnet_that_does_not_fit_is_refused(tmp_path, config):
    wide = dataclasses.replace(MICRO_SPATIAL, channels=16)
    path = save_checkpoint(tmp_path / "wide.pt", kind="spatialnet", model=SpatialNet(wide), model_config=wide)
    with pytest.raises(InputError, match="feature_channels=16"):
        train_temporalnet(dataclasses.replace(config, spatial_checkpoint=str(path)), tmp_path / "x", progress=False)


# ----------------------------------------------------------------------------------------------
# Metrics on hand-made cases
# ----------------------------------------------------------------------------------------------
def test_rank1_of_identity_one_hot_embeddings():
    gallery_ids = torch.tensor([1, 2, 3, 7])
    gallery = torch.eye(8)[gallery_ids]                         # the identity as a one-hot vector
    query_ids = torch.tensor([3, 1, 2, 9])                      # 9 left: not counted
    query = torch.eye(10, 8)[query_ids]
    assert rank1_accuracy(query, query_ids, gallery, gallery_ids) == (3, 3)
    swapped = torch.eye(8)[torch.tensor([2, 3, 1, 0])]          # everyone looks like somebody else
    assert rank1_accuracy(swapped, query_ids, gallery, gallery_ids) == (0, 3)
    assert rank1_accuracy(query[:0], query_ids[:0], gallery, gallery_ids) == (0, 0)


def test_colour_histograms_separate_colours_and_find_the_same_person():
    image = torch.zeros(3, 32, 32)
    image[0, :, :16] = 1.0                                      # left half red, right half blue
    image[2, :, 16:] = 1.0
    boxes = torch.tensor([[0.5, 0.5, 2.5, 6.5], [4.5, 0.5, 6.5, 6.5]])   # output grid 8 x 8 (stride 4)
    histograms = colour_histograms(image, boxes, stride=4)
    assert histograms.shape == (2, 512)
    torch.testing.assert_close(histograms.norm(dim=1), torch.ones(2))
    red, blue = (7 * 8 + 0) * 8 + 0, (0 * 8 + 0) * 8 + 7       # joint bins (r * 8 + g) * 8 + b of (7, 0, 0), (0, 0, 7)
    assert histograms[0, red] == 1 and histograms[1, blue] == 1
    assert rank1_accuracy(histograms.flip(0), [1, 0], histograms, [0, 1]) == (2, 2)


def test_end_point_error_perfect_and_zero_motion_fields():
    size = 32
    joints = torch.zeros(1, NUM_JOINTS, 3)
    joints[0, :4] = torch.tensor([[10.0, 8, 1], [12, 8, 1], [11, 12, 1], [11, 16, 1]])
    moved = joints.clone()
    moved[0, :4, :2] += torch.tensor([3.0, 4.0])                # the person moves by (3, 4): 5 output pixels
    centres = joints[..., :2][joints[..., 2] > 0].mean(0, keepdim=True)
    previous = FramePeople(joints, centres, boxes_from_joints(joints, size), torch.tensor([5]))
    current = FramePeople(moved, centres + torch.tensor([3.0, 4.0]), boxes_from_joints(moved, size), torch.tensor([5]))
    targets = encode_tvf_targets(previous.joints, previous.centres, previous.track_ids, current.joints,
                                 current.centres, current.track_ids, size)
    assert targets.forward_mask.sum() > 0 and targets.backward_mask.sum() > 0
    error, pixels = end_point_error(targets.forward, targets.forward, targets.forward_mask)
    assert error == 0 and pixels == int(targets.forward_mask.sum())
    zero_forward, zero_backward = zero_motion_fields(previous, current, size)
    for zero, target, mask in ((zero_forward, targets.forward, targets.forward_mask),
                               (zero_backward, targets.backward, targets.backward_mask)):
        error, pixels = end_point_error(zero, target, mask)
        assert error / pixels == pytest.approx(5.0, abs=1e-4)   # the centre's motion
    # batched input and units: a constant 1-pixel error everywhere gives EPE 1
    field = targets.forward[None] + torch.tensor([1.0 / SVF_NORMALISER, 0.0]).view(1, 2, 1, 1)
    error, pixels = end_point_error(field, targets.forward[None], targets.forward_mask[None])
    assert error / pixels == pytest.approx(1.0, abs=1e-5)


def test_measurements_run_on_validation_clips(tmp_path, config):
    result = train_temporalnet(dataclasses.replace(config, steps=1), tmp_path / "run", progress=False)
    spatial, temporal = load_temporal_pair(result["checkpoint"])
    reid = measure_reid(spatial, temporal, num_clips=1, num_frames=5, gaps=(1, 3), render_size=64)
    assert [r.name for r in reid] == ["1 frame apart (mixed)", "3 frames apart (mixed)",
                                      "across a shot change (shot_change)"]
    assert reid[0].frame_pairs >= 3 and reid[-1].frame_pairs == 1
    for row in reid:
        assert row.queries == 0 or (0 <= row.rank1_he <= 1 and 0 <= row.rank1_histogram <= 1 and 0 < row.chance <= 1)
    tvf = measure_tvf(spatial, temporal, presets=("fast_motion",), num_clips=1, num_frames=3, render_size=64)
    assert [(r.preset, r.direction, r.frame_pairs) for r in tvf] == [("fast_motion", "forward", 2),
                                                                     ("fast_motion", "backward", 2)]
    assert all(r.pixels > 0 and math.isfinite(r.epe_tvf) and r.epe_zero_motion >= 0 for r in tvf)
    assert "HE rank-1" in format_reid_table(reid) and "fast_motion" in format_tvf_table(tvf, 16)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------
def test_cli_parses_and_runs_train_temporal(tmp_path, config, capsys, monkeypatch):
    args = build_parser().parse_args(["train", "temporal", "--spatial-checkpoint", "s.pt", "--steps", "7",
                                      "--batch-size", "3", "--lr", "1e-4", "--max-minutes", "2", "--val-every", "5",
                                      "--workers", "1", "--out", "o", "--resume", "r.pt", "--seed", "4",
                                      "--device", "cpu"])
    assert (args.stage, args.spatial_checkpoint, args.steps, args.batch_size, args.lr, args.max_minutes,
            args.val_every, args.workers, str(args.out), str(args.resume), args.seed, args.device) == (
        "temporal", "s.pt", 7, 3, 1e-4, 2.0, 5, 1, "o", "r.pt", 4, "cpu")
    seen, real_train = {}, train_module.train_temporalnet

    def small_validation(run_config, out_dir, **options):      # the CLI has no --val-pairs: shrink it here
        seen["config"] = run_config
        return real_train(dataclasses.replace(run_config, val_pairs=2, render_size=64), out_dir, **options)

    monkeypatch.setattr(train_module, "train_temporalnet", small_validation)
    out = tmp_path / "cli"
    assert main(["train", "temporal", "--preset", "micro", "--spatial-checkpoint", config.spatial_checkpoint,
                 "--steps", "1", "--batch-size", "2", "--val-every", "0", "--device", "cpu", "--out", str(out)]) == 0
    assert "HE rank-1" in capsys.readouterr().out
    assert (seen["config"].preset, seen["config"].lr, seen["config"].steps, seen["config"].batch_size) == (
        "micro", 2e-4, 1, 2)
    assert load_checkpoint(out / "last.pt", kind="temporalnet")["step"] == 1
    # bad input: one line, status 2
    assert main(["train", "temporal", "--preset", "micro", "--spatial-checkpoint", str(tmp_path / "missing.pt"),
                 "--out", str(tmp_path / "x")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert main(["train", "spatial", "--spatial-checkpoint", "s.pt"]) == 2
    assert "train temporal" in capsys.readouterr().err


def test_long_gap_pairs_train_the_he_and_not_the_tvf(tmp_path, config, monkeypatch):
    """he_frame_gap: half the pairs come from beyond the range-5 window, and their TVF masks are zeroed."""
    from mpat_nb.data.pairs import SyntheticPairDataset, tvf_on_short_gaps

    dataset = SyntheticPairDataset(64, 16, length=40, render_size=(64, 64), augment=None, long_frame_gap=20)
    gaps = [dataset.pair_info(i).frame_gap for i in range(40)]
    assert 1 <= min(gaps) and max(gaps) <= 20 and 8 <= sum(g > 5 for g in gaps) <= 32
    assert dataset.clip_frames > 20
    with pytest.raises(ValueError, match="must exceed max_frame_gap"):
        SyntheticPairDataset(64, 16, long_frame_gap=5)
    batch = train_module.collate_pairs([dataset[i] for i in range(4)])
    masked = tvf_on_short_gaps(batch.tvf, batch.frame_gap, 5)
    far = batch.frame_gap > 5
    assert torch.all(masked.forward_mask[far] == 0) and torch.all(masked.backward_mask[far] == 0)
    assert torch.equal(masked.forward_mask[~far], batch.tvf.forward_mask[~far])
    seen = []
    real_loss = train_module.temporal_loss

    def recording(output, previous, current, tvf_targets, *args, **kwargs):
        seen.append(float(tvf_targets.forward_mask.sum()))
        return real_loss(output, previous, current, tvf_targets, *args, **kwargs)

    monkeypatch.setattr(train_module, "temporal_loss", recording)
    result = train_temporalnet(dataclasses.replace(config, he_frame_gap=12, steps=2), tmp_path, progress=False)
    assert len(seen) == 2 and load_checkpoint(result["checkpoint"])["train_config"]["he_frame_gap"] == 12


# ----------------------------------------------------------------------------------------------
# Learning-rate schedule (the shared loop of mpat_nb.train.run_training)
# ----------------------------------------------------------------------------------------------
def _lrs(result):
    return [record["lr"] for record in result["history"] if "lr" in record]


def test_the_default_schedule_is_constant_and_saved(tmp_path, config):
    result = train_temporalnet(dataclasses.replace(config, steps=2), tmp_path, progress=False)
    assert _lrs(result) == [config.lr, config.lr]
    state = load_checkpoint(result["checkpoint"], kind="temporalnet")
    assert state["train_config"]["lr_schedule"] == "constant" and state["scheduler"]["last_epoch"] == 2


def test_a_cosine_schedule_ends_at_lr_final_also_when_the_time_budget_ends_it(tmp_path, config, monkeypatch,
                                                                             capsys):
    cosine = dataclasses.replace(config, lr_schedule="cosine", lr_final=1e-5)
    lrs = _lrs(train_temporalnet(cosine, tmp_path / "steps", progress=False))
    assert len(lrs) == 4 and lrs[-1] == pytest.approx(1e-5) and all(a > b for a, b in zip(lrs, lrs[1:]))
    # 4 steps planned, 100 minutes: 50 minutes after step 1, 100 after step 2: validate, save, stop at step 2
    clock = iter([50.0, 100.0])                                      # minutes_spent is read once a step
    monkeypatch.setattr(train_module_shared, "minutes_spent", lambda started, config: next(clock))
    capsys.readouterr()
    result = train_temporalnet(dataclasses.replace(cosine, max_minutes=100.0), tmp_path / "budget",
                               progress=False)
    assert _lrs(result) == pytest.approx([(config.lr + 1e-5) / 2, 1e-5])
    assert "time budget of 100.0 min spent at step 2; stopped" in capsys.readouterr().out
    assert load_checkpoint(result["checkpoint"])["step"] == 2 and "val_rank1" in result["history"][-1]


def test_a_checkpoint_from_before_the_schedule_resumes_at_its_constant_rate(tmp_path, config):
    """A TemporalNet checkpoint saved without scheduler state or lr_schedule (before the stage had a schedule)
    goes on at the rate it ran at, even under another --lr; a schedule other than constant is refused."""
    first = train_temporalnet(dataclasses.replace(config, steps=2, lr=3e-4), tmp_path, progress=False)
    state = load_checkpoint(first["checkpoint"])
    del state["scheduler"]
    for key in ("lr_schedule", "lr_final", "lr_drop_fraction"):
        del state["train_config"][key]
    for group in state["optimizer"]["param_groups"]:
        del group["initial_lr"]
    old = tmp_path / "old.pt"
    torch.save(state, old)
    with pytest.raises(InputError, match="lr_schedule 'constant'.*--lr-schedule constant"):
        train_temporalnet(dataclasses.replace(config, lr_schedule="cosine"), tmp_path, resume=old,
                          progress=False)
    resumed = train_temporalnet(config, tmp_path, resume=old, progress=False)                 # lr 2e-4 here
    assert [r["step"] for r in resumed["history"] if "lr" in r] == [1, 2, 3, 4]
    assert _lrs(resumed) == [3e-4] * 4


def test_cli_lr_schedule_reaches_the_temporal_config():
    def schedule(*flags):
        args = build_parser().parse_args(["train", "temporal", *flags])
        return _train_config(args, TemporalTrainConfig, {}).lr_schedule

    assert schedule() == "constant" and schedule("--lr-schedule", "onecycle") == "onecycle"


def test_init_starts_from_a_trained_temporalnet(tmp_path, config, monkeypatch):
    first = train_temporalnet(dataclasses.replace(config, steps=2), tmp_path / "first", progress=False)
    trained = load_checkpoint(first["checkpoint"], kind="temporalnet")["model"]
    started = {}
    real_run = train_module.run_training

    def capture(stage, *args, **kwargs):
        started.update({k: v.detach().clone() for k, v in stage.model.state_dict().items()})
        return real_run(stage, *args, **kwargs)

    monkeypatch.setattr(train_module, "run_training", capture)
    second = dataclasses.replace(config, steps=2, init_checkpoint=str(first["checkpoint"]))
    result = train_temporalnet(second, tmp_path / "second", progress=False)
    assert set(started) == set(trained)
    for key in trained:                                       # the run began from the first run's weights
        assert torch.equal(started[key].cpu(), trained[key].cpu()), key
    assert load_checkpoint(result["checkpoint"])["train_config"]["init_checkpoint"] == str(first["checkpoint"])
    args = build_parser().parse_args(["train", "temporal", "--init", str(first["checkpoint"])])
    assert _train_config(args, TemporalTrainConfig, {}).init_checkpoint == str(first["checkpoint"])
