"""Resume keeps the learning-rate schedule: an early drop by the time budget survives a resume bit for bit, and
a resume with more steps recomputes the drop (with a warning)."""

import dataclasses

import pytest
import torch

import mpat_nb.train as train_module
from mpat_nb.checkpoints import load_checkpoint
from mpat_nb.config import get_spatial_config
from mpat_nb.train import LearningRateDrop, SpatialTrainConfig, train_spatialnet

# drop_step = round(0.9 x 4) = 4: without the time budget the lr would not drop before the last step
CONFIG = SpatialTrainConfig(preset="tiny", steps=4, batch_size=2, val_every=2, val_clips=1, val_frames=2,
                            render_size=128, log_every=1, device="cpu", precision="fp32", max_minutes=100.0,
                            lr_drop_fraction=0.9)


@pytest.fixture(autouse=True)
def small_input(monkeypatch):
    """The tiny architecture at 128 px input, so each step takes a fraction of a second."""
    tiny128 = dataclasses.replace(get_spatial_config("tiny"), input_size=128, output_size=32)
    monkeypatch.setattr(train_module, "get_spatial_config", lambda name: tiny128 if name == "tiny" else get_spatial_config(name))
    monkeypatch.setattr(train_module, "load_checkpoint", lambda path, kind=None, preset=None, map_location="cpu":
                        load_checkpoint(path, kind=kind, map_location=map_location))


class FakeClock:
    """``minutes_spent`` of one training session: the given minutes at its 1st, 2nd, ... step, then the last one."""

    def __init__(self, *minutes: float) -> None:
        self.minutes, self.calls = minutes, 0

    def __call__(self, started, config) -> float:
        self.calls += 1
        return self.minutes[min(self.calls, len(self.minutes)) - 1]


def _interrupted_run(config, out_dir, stop_after: int) -> None:
    """A run stopped (KeyboardInterrupt) in the loss of step ``stop_after + 1``."""
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


def test_resume_across_an_early_drop_is_bit_exact(tmp_path, monkeypatch):
    # 95 of 100 minutes after step 2 (>= 0.9 x 100): the budget drops the lr early, at step 2
    monkeypatch.setattr(train_module, "minutes_spent", FakeClock(0.0, 95.0))
    straight = train_spatialnet(CONFIG, tmp_path / "straight", progress=False)
    monkeypatch.setattr(train_module, "minutes_spent", FakeClock(0.0, 95.0))
    _interrupted_run(CONFIG, tmp_path / "partial", stop_after=2)
    state = load_checkpoint(tmp_path / "partial" / "last.pt")
    assert state["step"] == 2 and state["scheduler"]["lr_lambdas"][0]["dropped_early"] is True
    monkeypatch.setattr(train_module, "minutes_spent", FakeClock(0.0))          # a fresh budget after the resume
    resumed = train_spatialnet(CONFIG, tmp_path / "partial", resume=tmp_path / "partial" / "last.pt", progress=False)

    def lrs(result):
        return [record["lr"] for record in result["history"] if "lr" in record and record["step"] > 2]

    assert lrs(straight) == lrs(resumed) == pytest.approx([CONFIG.lr_final, CONFIG.lr_final])
    a = load_checkpoint(straight["checkpoint"])["model"]
    b = load_checkpoint(resumed["checkpoint"])["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_with_more_steps_recomputes_the_drop_and_warns(tmp_path):
    short = dataclasses.replace(CONFIG, steps=2, val_every=0, max_minutes=None, lr_drop_fraction=0.5)
    first = train_spatialnet(short, tmp_path, progress=False)                   # dropped at step 1 of 2
    assert [r["lr"] for r in first["history"] if "lr" in r][-1] == pytest.approx(CONFIG.lr_final)
    longer = dataclasses.replace(short, steps=8)                                # new drop at step 4
    with pytest.warns(UserWarning, match="recomputed .* to step 4.*goes back up"):
        result = train_spatialnet(longer, tmp_path, resume=first["checkpoint"], progress=False)
    lr = {r["step"]: r["lr"] for r in result["history"] if "lr" in r}
    assert lr[3] == pytest.approx(CONFIG.lr) and lr[4] == lr[8] == pytest.approx(CONFIG.lr_final)


def test_schedule_state_is_plain_data():
    schedule = LearningRateDrop(3, 0.05)
    assert [schedule(s) for s in range(5)] == [1.0, 1.0, 1.0, 0.05, 0.05]
    schedule.dropped_early = True
    assert schedule(0) == 0.05 and vars(schedule) == {"drop_step": 3, "final_factor": 0.05, "dropped_early": True}
