"""Training entry point: exact resume, NaN stop with the last good checkpoint intact, checkpoint errors."""

import dataclasses
import math

import pytest
import torch

import mpat_nb.train as train_module
from mpat_nb.checkpoints import load_checkpoint, load_spatialnet, save_checkpoint
from mpat_nb.config import get_spatial_config
from mpat_nb.models.spatialnet import SpatialNet
from mpat_nb.precision import resolve_precision
from mpat_nb.train import LearningRateDrop, SpatialTrainConfig, TrainingStage, run_training, train_spatialnet
from mpat_nb.train_temporal import TemporalTrainConfig
from mpat_nb.utils import InputError, TrainingError

CONFIG = SpatialTrainConfig(preset="tiny", steps=4, batch_size=2, val_every=0, val_clips=1, val_frames=2,
                            render_size=128, log_every=1, device="cpu")


@pytest.fixture(autouse=True)
def small_input(monkeypatch):
    """Train the tiny architecture at 128 px input so each step takes a fraction of a second."""
    tiny128 = dataclasses.replace(get_spatial_config("tiny"), input_size=128, output_size=32)
    monkeypatch.setattr(train_module, "get_spatial_config", lambda name: tiny128 if name == "tiny" else get_spatial_config(name))
    monkeypatch.setattr(train_module, "load_checkpoint", lambda path, kind=None, preset=None, map_location="cpu":
                        load_checkpoint(path, kind=kind, map_location=map_location))


def test_resume_gives_the_same_weights_as_one_run(tmp_path):
    straight = train_spatialnet(CONFIG, tmp_path / "straight", progress=False)
    # the same run, interrupted after its step-2 checkpoint, then resumed from it
    with_checkpoints = dataclasses.replace(CONFIG, val_every=2)
    partial_dir = tmp_path / "partial"
    _train_until(with_checkpoints, partial_dir, stop_after=2)
    assert load_checkpoint(partial_dir / "last.pt")["step"] == 2
    resumed = train_spatialnet(with_checkpoints, partial_dir, resume=partial_dir / "last.pt", progress=False)
    a = load_checkpoint(straight["checkpoint"])["model"]
    b = load_checkpoint(resumed["checkpoint"])["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def _train_until(config, out_dir, stop_after):
    """Run a training that is interrupted (KeyboardInterrupt) after ``stop_after`` steps."""
    calls = {"n": 0}
    real_loss = train_module.spatial_loss

    def counting_loss(output, targets, **options):
        calls["n"] += 1
        if calls["n"] > stop_after:
            raise KeyboardInterrupt
        return real_loss(output, targets, **options)

    train_module.spatial_loss = counting_loss
    try:
        with pytest.raises(KeyboardInterrupt):
            train_spatialnet(config, out_dir, progress=False)
    finally:
        train_module.spatial_loss = real_loss


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    real_loss = train_module.spatial_loss
    calls = {"n": 0}

    def poisoned(output, targets, **options):
        calls["n"] += 1
        losses = real_loss(output, targets, **options)
        if calls["n"] == 3:
            losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(train_module, "spatial_loss", poisoned)
    with pytest.raises(TrainingError, match="step 3"):
        train_spatialnet(dataclasses.replace(CONFIG, val_every=2), tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_checkpoint_errors_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="corrupt.pt"):
        load_checkpoint(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    path = save_checkpoint(tmp_path / "tiny.pt", kind="spatialnet", model=SpatialNet("tiny"), model_config=get_spatial_config("tiny"))
    with pytest.raises(InputError, match="preset 'tiny', expected 'small'"):
        load_checkpoint(path, kind="spatialnet", preset="small")
    with pytest.raises(InputError, match="expected 'temporalnet'"):
        load_checkpoint(path, kind="temporalnet")
    model = load_spatialnet(path)
    assert not model.training


def test_pgg_stage_adds_l_pgg_and_trains_from_a_checkpoint(tmp_path):
    base = train_spatialnet(dataclasses.replace(CONFIG, steps=1), tmp_path / "base", progress=False)
    stage = dataclasses.replace(CONFIG, steps=2, lr=1e-5, pgg_iterations=1, init_checkpoint=base["checkpoint"])
    result = train_spatialnet(stage, tmp_path / "pgg", progress=False)
    losses = [record for record in result["history"] if "total" in record]
    assert all(record["pgg"] > 0 and math.isfinite(record["pgg"]) for record in losses)
    for record in losses:   # the total includes 1e-4 L_PGG on top of the SpatialNet terms
        spatial = record["det"] + 1e-3 * record["ke"] + 1e-4 * record["sie"] + 1e-4 * record["aux"]
        assert record["total"] == pytest.approx(spatial + 1e-4 * record["pgg"], rel=1e-5)
    assert load_checkpoint(result["checkpoint"])["train_config"]["pgg_iterations"] == 1


def test_augment_switch_reaches_the_training_images():
    """augment=False trains on the generator's frames as rendered; the default warps and recolours them."""
    import numpy as np

    from mpat_nb.data.synth import generate_clip

    model_config = train_module.get_spatial_config("tiny")                     # 128 px input (fixture)
    plain, _ = train_module.training_data(dataclasses.replace(CONFIG, augment=False), model_config)
    augmented, _ = train_module.training_data(CONFIG, model_config)
    clip, t = plain.clip_and_frame(0)
    rendered = generate_clip(preset=plain.preset, seed=int(plain._seeds[clip]), num_frames=plain.clip_frames,
                             size=plain.render_size).frames[t]                  # (128, 128, 3) uint8
    as_trained = (plain[0]["image"].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    assert np.abs(as_trained.astype(int) - rendered.astype(int)).max() <= 1
    assert not torch.allclose(augmented[0]["image"], plain[0]["image"])


def test_no_augment_flag_sets_the_config_field():
    from mpat_nb.cli import _train_config, build_parser

    def parsed(*flags):
        args = build_parser().parse_args(["train", "spatial", *flags])
        return _train_config(args, SpatialTrainConfig, {})

    assert parsed().augment is True
    assert parsed("--no-augment").augment is False


# Resume keeps the learning-rate schedule. drop_step = round(0.9 x 4) = 4: without the time budget the lr would
# not drop before the last step
SCHEDULE_CONFIG = SpatialTrainConfig(preset="tiny", steps=4, batch_size=2, val_every=2, val_clips=1, val_frames=2,
                                     render_size=128, log_every=1, device="cpu", precision="fp32", max_minutes=100.0,
                                     lr_drop_fraction=0.9)


class FakeClock:
    """``minutes_spent`` of one training session: the given minutes at its 1st, 2nd, ... step, then the last one."""

    def __init__(self, *minutes: float) -> None:
        self.minutes, self.calls = minutes, 0

    def __call__(self, started, config) -> float:
        self.calls += 1
        return self.minutes[min(self.calls, len(self.minutes)) - 1]


def test_resume_across_an_early_drop_is_bit_exact(tmp_path, monkeypatch):
    # 95 of 100 minutes after step 2 (>= 0.9 x 100): the budget drops the lr early, at step 2
    monkeypatch.setattr(train_module, "minutes_spent", FakeClock(0.0, 95.0))
    straight = train_spatialnet(SCHEDULE_CONFIG, tmp_path / "straight", progress=False)
    monkeypatch.setattr(train_module, "minutes_spent", FakeClock(0.0, 95.0))
    _train_until(SCHEDULE_CONFIG, tmp_path / "partial", stop_after=2)
    state = load_checkpoint(tmp_path / "partial" / "last.pt")
    assert state["step"] == 2 and state["scheduler"]["lr_lambdas"][0]["dropped_early"] is True
    monkeypatch.setattr(train_module, "minutes_spent", FakeClock(0.0))          # a fresh budget after the resume
    resumed = train_spatialnet(SCHEDULE_CONFIG, tmp_path / "partial", resume=tmp_path / "partial" / "last.pt", progress=False)

    def lrs(result):
        return [record["lr"] for record in result["history"] if "lr" in record and record["step"] > 2]

    assert lrs(straight) == lrs(resumed) == pytest.approx([SCHEDULE_CONFIG.lr_final, SCHEDULE_CONFIG.lr_final])
    a = load_checkpoint(straight["checkpoint"])["model"]
    b = load_checkpoint(resumed["checkpoint"])["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_with_more_steps_recomputes_the_drop_and_warns(tmp_path):
    short = dataclasses.replace(SCHEDULE_CONFIG, steps=2, val_every=0, max_minutes=None, lr_drop_fraction=0.5)
    first = train_spatialnet(short, tmp_path, progress=False)                   # dropped at step 1 of 2
    assert [r["lr"] for r in first["history"] if "lr" in r][-1] == pytest.approx(SCHEDULE_CONFIG.lr_final)
    longer = dataclasses.replace(short, steps=8)                                # new drop at step 4
    with pytest.warns(UserWarning, match="recomputed .* to step 4.*goes back up"):
        result = train_spatialnet(longer, tmp_path, resume=first["checkpoint"], progress=False)
    lr = {r["step"]: r["lr"] for r in result["history"] if "lr" in r}
    assert lr[3] == pytest.approx(SCHEDULE_CONFIG.lr) and lr[4] == lr[8] == pytest.approx(SCHEDULE_CONFIG.lr_final)


def test_schedule_state_is_plain_data():
    schedule = LearningRateDrop(3, 0.05)
    assert [schedule(s) for s in range(5)] == [1.0, 1.0, 1.0, 0.05, 0.05]
    schedule.dropped_early = True
    assert schedule(0) == 0.05 and vars(schedule) == {"drop_step": 3, "final_factor": 0.05, "dropped_early": True}


def test_batchnorm_recalibration_replaces_the_running_averages_by_the_data_mean():
    """recalibrate_batchnorm: the running mean becomes the plain mean of the batches' means (not the momentum
    average of the last few), the momentum and the mode are restored; no batch or no BatchNorm changes nothing."""
    from mpat_nb.train import batchnorm_indices, recalibrate_batchnorm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)).eval()
    norm = model[1]
    model.train()
    with torch.no_grad():
        for shift in (0.0, 0.0, 50.0):                              # training ended on an unusual batch
            model(torch.randn(2, 3, 5, 5) + shift)
    model.eval()
    batches = [torch.randn(2, 3, 5, 5) + shift for shift in (0.0, 1.0, 2.0, 3.0)]
    with torch.no_grad():
        expected = torch.stack([model[0](b).mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    assert recalibrate_batchnorm(model, batches) == 4
    torch.testing.assert_close(norm.running_mean, expected, rtol=1e-5, atol=1e-5)
    assert norm.momentum == 0.1 and not model.training
    before = norm.running_mean.clone()
    assert recalibrate_batchnorm(model, []) == 0 and torch.equal(norm.running_mean, before)
    assert recalibrate_batchnorm(torch.nn.Linear(2, 2), batches) == 0
    assert batchnorm_indices(1000, 4).tolist() == [0, 333, 666, 999] and batchnorm_indices(3, 0).size == 0


def test_cosine_and_onecycle_schedules_start_warm_and_end_at_lr_final():
    from mpat_nb.train import CosineSchedule, learning_rate_schedule

    final = SCHEDULE_CONFIG.lr_final / SCHEDULE_CONFIG.lr
    cosine = learning_rate_schedule(dataclasses.replace(SCHEDULE_CONFIG, steps=100, lr_schedule="cosine"))
    factors = [cosine(s) for s in range(101)]
    assert factors[0] == pytest.approx(1.0) and factors[50] == pytest.approx((1 + final) / 2)
    assert factors[100] == pytest.approx(final) and all(a >= b for a, b in zip(factors, factors[1:]))
    onecycle = learning_rate_schedule(dataclasses.replace(SCHEDULE_CONFIG, steps=100, lr_schedule="onecycle"))
    assert onecycle(0) == pytest.approx(1 / 25) and onecycle(5) == pytest.approx(1 / 25 + (1 - 1 / 25) / 2)
    assert onecycle(10) == pytest.approx(1.0) and onecycle(100) == pytest.approx(final)
    # a time budget moves the cosine on: half the minutes spent at step 10 of 100 reads as the middle of the run
    cosine.time_fraction = 0.5
    assert cosine(10) == pytest.approx((1 + final) / 2) and isinstance(cosine, CosineSchedule)
    with pytest.raises(InputError, match="lr_schedule must be"):
        learning_rate_schedule(dataclasses.replace(SCHEDULE_CONFIG, lr_schedule="linear"))


def test_a_cosine_run_ends_at_lr_final_when_the_time_budget_ends_it(tmp_path, monkeypatch):
    # 4 steps planned, 100 minutes: the clock says 50 minutes after step 1 and 100 after step 2 -> stop at step 2
    monkeypatch.setattr(train_module, "minutes_spent", FakeClock(50.0, 100.0))
    config = dataclasses.replace(SCHEDULE_CONFIG, lr_schedule="cosine", val_every=0)
    result = train_spatialnet(config, tmp_path, progress=False)
    lrs = [r["lr"] for r in result["history"] if "lr" in r]
    assert len(lrs) == 2 and lrs[-1] == pytest.approx(config.lr_final)
    state = load_checkpoint(result["checkpoint"])
    with pytest.raises(InputError, match="lr_schedule 'cosine'.*--lr-schedule cosine"):
        train_spatialnet(dataclasses.replace(SCHEDULE_CONFIG, steps=8), tmp_path, resume=result["checkpoint"],
                         progress=False)
    assert state["train_config"]["lr_schedule"] == "cosine"


def test_heatmap_sigma_reaches_the_targets():
    from mpat_nb.data.datasets import SyntheticSpatialDataset

    def foreground(sigma):
        item = SyntheticSpatialDataset(128, 32, length=1, render_size=(128, 128), augment=None, heatmap_sigma=sigma)[0]
        return int((item["targets"].heatmaps > 0.5).sum())

    assert foreground(2.0) > 2 * foreground(0.7) > 0


def test_schedule_and_sigma_flags_set_their_fields():
    from mpat_nb.cli import _train_config, build_parser

    args = build_parser().parse_args(["train", "spatial", "--lr-schedule", "onecycle", "--heatmap-sigma", "1.5"])
    config = _train_config(args, SpatialTrainConfig, {})
    assert config.lr_schedule == "onecycle" and config.heatmap_sigma == 1.5


@dataclasses.dataclass
class ToyConfig:
    """The architecture of the toy stage's model (run_training saves ``model.config``)."""

    name: str = "toy"


def test_the_shared_loop_trains_any_stage_and_stops_when_its_time_is_spent(tmp_path, monkeypatch, capsys):
    """run_training on a toy stage (a linear model, no network): its losses, validation, printed line, history
    prefix and checkpoint entries; the time budget drops the lr early (at 0.9 of it), then stops the run."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    model.config = ToyConfig()                                                  # saved as the architecture
    stage = TrainingStage("toy", model, [torch.full((2,), float(i)) for i in range(12)], torch.stack,
                          lambda trained, batch: {"total": trained(batch).square().mean()},   # batch: (2, 2)
                          validate=lambda net: {"score": 1.0}, describe=lambda step, _: f"toy step {step}",
                          history_prefix="toy_", checkpoint_entries={"extra": 7})
    config = TemporalTrainConfig(steps=6, batch_size=2, log_every=1, val_every=2, max_minutes=100.0,
                                 lr_schedule="drop", lr_drop_fraction=0.9, device="cpu")   # drop step 5
    monkeypatch.setattr(train_module, "minutes_spent", FakeClock(0.0, 0.0, 0.0, 95.0, 100.0))
    run = run_training(stage, config, tmp_path, resolve_precision("fp32", "cpu"), torch.device("cpu"),
                       state=None, resume=None, progress=False)
    lrs = [r["lr"] for r in run["history"] if "lr" in r]
    assert lrs == pytest.approx([config.lr] * 3 + [config.lr_final] * 2)
    assert [r["step"] for r in run["history"] if "toy_score" in r] == [2, 4, 5]
    printed = capsys.readouterr().out
    assert "toy step 4" in printed and "time budget of 100.0 min spent at step 5; stopped" in printed
    state = load_checkpoint(run["checkpoint"], kind="toy")
    assert (state["step"], state["extra"], state["preset"], state["metrics"]) == (5, 7, "toy", {"score": 1.0})
    assert state["scheduler"]["lr_lambdas"][0]["dropped_early"] is True and run["metrics"] == {"score": 1.0}
