"""Distributed training on two CPU processes (Gloo), as torchrun runs it on GPUs (NCCL).

The two processes are started with ``torch.multiprocessing.spawn`` and given the environment torchrun would give
them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, a free MASTER_PORT), so ``train_spatialnet`` finds them
exactly as under ``torchrun --nproc-per-node 2``. Checked: the gradients of a step equal those of one process on the
same global batch; only rank 0 writes; a run resumed by two processes ends where one straight run does; TemporalNet
trains under DDP with the processes kept in step; the config file of ``mpat-nb train``.
"""

import dataclasses
import functools
import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

import mpat_nb.train as train_module
from mpat_nb import distributed
from mpat_nb.checkpoints import load_checkpoint, save_checkpoint
from mpat_nb.cli import main
from mpat_nb.config import SPATIAL_PRESETS, TEMPORAL_PRESETS, get_spatial_config
from mpat_nb.models.spatialnet import SpatialNet
from mpat_nb.train import SpatialTrainConfig, read_config_file, train_spatialnet
from mpat_nb.train_temporal import TemporalTrainConfig, train_temporalnet
from mpat_nb.utils import InputError

REPO = Path(__file__).resolve().parents[1]
#: A SpatialNet / TemporalNet pair small enough that a step takes milliseconds: 64 px input, 16 x 16 output grid.
MICRO_SPATIAL = dataclasses.replace(get_spatial_config("tiny"), name="micro", channels=8, hourglass_depth=2, increase=4,
                                    input_size=64, output_size=16, stem_channels=8)
MICRO_TEMPORAL = dataclasses.replace(TEMPORAL_PRESETS["tiny"], name="micro", spatial_preset="micro", feature_channels=8,
                                     roi_size=(8, 4), he_stage_planes=(4, 4, 8), mid_level_dim=16, tie_channels=8,
                                     tie_hourglass_depth=2, tie_increase=4)
#: Global batch 4: two images per process. Checkpoint (and validation on one 2-frame clip) every 2 steps.
CONFIG = SpatialTrainConfig(preset="micro", steps=3, batch_size=4, val_every=2, val_clips=1, val_frames=2,
                            render_size=64, log_every=1, device="cpu", precision="fp32")   # exact sums: float32
#: Every process's record of its run (gradients seen by the optimiser, checkpoint writes), filled by the patches.
RECORD: dict = {"gradients": [], "saves": 0}


class StopTraining(Exception):
    """Raised by the patched loss: the run dies after its checkpoint, like a killed job."""


class RecordingAdam(torch.optim.Adam):
    """Adam that keeps a copy of the gradients of every step (DDP has averaged them by then)."""

    def step(self, closure=None):
        RECORD["gradients"].append([p.grad.detach().clone() for group in self.param_groups for p in group["params"]])
        return super().step(closure)


def spatialnet_with_fixed_statistics(config):
    """SpatialNet whose BatchNorm layers normalise with their running statistics in training too (eval-mode BN).

    Why: train-mode BatchNorm normalises with the statistics of the batch in hand; split over two processes, each
    normalises with its own half's mean and variance, which are not the global batch's, so the gradients would
    legitimately differ from one process's. (SyncBatchNorm would make them equal but has no CPU kernel.) With fixed
    statistics an image's output depends on that image alone and the comparison is exact; the layers keep their
    learned scale and shift, so every parameter still gets a gradient.
    """
    model = SpatialNet(config)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.forward = functools.partial(_batchnorm_with_running_statistics, module)
    return model


def _batchnorm_with_running_statistics(module, x):
    return F.batch_norm(x, module.running_mean, module.running_var, module.weight, module.bias, training=False,
                        eps=module.eps)


def use_test_models(setattr_, setitem):
    """Register the micro presets, fixed-statistics BatchNorm and the recording Adam (patch functions given)."""
    setitem(SPATIAL_PRESETS, "micro", MICRO_SPATIAL)
    setitem(TEMPORAL_PRESETS, "micro", MICRO_TEMPORAL)
    setattr_(train_module, "SpatialNet", spatialnet_with_fixed_statistics)
    setattr_(torch.optim, "Adam", RecordingAdam)


def spatial_worker(rank, world_size, port, config, out_dir, resume, stop_after, report_dir):
    """One of the processes torchrun would start: train, then leave a report of what it saw and wrote."""
    _torchrun_environment(rank, world_size, port)
    use_test_models(setattr, dict.__setitem__)
    RECORD.update(gradients=[], saves=0)                   # a forked child starts with a copy of the parent's
    real_loss, real_save, calls = train_module.spatial_loss, train_module.save_checkpoint, {"n": 0}

    def loss(*args, **kwargs):
        calls["n"] += 1
        if stop_after is not None and calls["n"] > stop_after:
            raise StopTraining
        return real_loss(*args, **kwargs)

    def counting_save(*args, **kwargs):
        RECORD["saves"] += 1
        return real_save(*args, **kwargs)

    train_module.spatial_loss, train_module.save_checkpoint = loss, counting_save
    with distributed.session("cpu"):                       # train_spatialnet joins this process group
        try:                                               # a global batch the processes cannot share: refused
            distributed.per_process_batch(3)
        except InputError as error:
            RECORD["batch_error"] = str(error)
        try:
            train_spatialnet(config, out_dir, resume=resume, progress=False)
        except StopTraining:
            pass
    torch.save(RECORD, Path(report_dir) / f"rank{rank}.pt")


def temporal_worker(rank, world_size, port, config, out_dir, report_dir):
    _torchrun_environment(rank, world_size, port)
    use_test_models(setattr, dict.__setitem__)
    RECORD.update(gradients=[], saves=0)
    result = train_temporalnet(config, out_dir, progress=False)      # starts and ends its own process group
    torch.save({"result": result, "gradients": RECORD["gradients"]}, Path(report_dir) / f"rank{rank}.pt")


def _torchrun_environment(rank, world_size, port):
    import os

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(worker, *args) -> None:
    """Run ``worker(rank, 2, port, *args)`` in two processes. Forked where the platform can (the children then
    share the parent's imported torch instead of spending seconds importing it again), with one thread each, as
    DataLoader workers are; started fresh elsewhere."""
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(worker, args=(2, free_port(), *args), nprocs=2, join=True, start_method=method)


def reports(folder: Path) -> list[dict]:
    return [torch.load(folder / f"rank{rank}.pt", weights_only=False) for rank in range(2)]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """Two processes train CONFIG and die at step 3, after their step-2 checkpoint; two others resume it."""
    root = tmp_path_factory.mktemp("ddp")
    out, killed, resumed = root / "run", root / "killed", root / "resumed"
    killed.mkdir(), resumed.mkdir()
    spawn(spatial_worker, CONFIG, out, None, 2, killed)
    files_after_kill = sorted(p.name for p in out.iterdir())
    spawn(spatial_worker, CONFIG, out, out / "last.pt", None, resumed)
    return {"out": out, "killed": reports(killed), "resumed": reports(resumed), "files_after_kill": files_after_kill}


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The reference: one process, the same global batch of 4, three steps straight."""
    with pytest.MonkeyPatch.context() as patch:
        use_test_models(patch.setattr, patch.setitem)
        RECORD["gradients"].clear()
        result = train_spatialnet(CONFIG, tmp_path_factory.mktemp("single"), progress=False)
        gradients = list(RECORD["gradients"])
    return {"result": result, "gradients": gradients}


def test_gradients_equal_one_process_on_the_global_batch(two_process_run, one_process_run):
    rank0, rank1 = (report["gradients"] for report in two_process_run["killed"])
    assert len(rank0) == len(rank1) == 2                     # steps 1 and 2, then the run died
    for step in range(2):
        for a, b in zip(rank0[step], rank1[step]):           # DDP hands both processes the same averaged gradient
            assert torch.equal(a, b)
    single = one_process_run["gradients"]
    assert len(single) == 3
    for step in range(2):
        for ddp, reference in zip(rank0[step], single[step]):
            # float32 sums in another order: equal to ~1e-6 relative; the scale term keeps tiny gradients fair
            torch.testing.assert_close(ddp, reference, rtol=1e-4, atol=1e-6 * float(reference.abs().max()) + 1e-12)
    assert "multiple of 2" in two_process_run["killed"][0]["batch_error"]


def test_only_rank_zero_writes_an_unwrapped_checkpoint(two_process_run):
    killed = two_process_run["killed"]
    assert (killed[0]["saves"], killed[1]["saves"]) == (1, 0)   # the step-2 checkpoint, by rank 0 only
    assert two_process_run["files_after_kill"] == ["history.json", "last.pt"]   # no temp file left behind
    state = load_checkpoint(two_process_run["out"] / "last.pt", kind="spatialnet", preset="micro")
    assert not any(key.startswith("module.") for key in state["model"])
    assert set(state["model"]) == set(SpatialNet(MICRO_SPATIAL).state_dict())
    assert (state["step"], state["world_size"], state["train_config"]["batch_size"]) == (3, 2, 4)
    assert {"mpat_nb", "torch"} <= set(state["versions"])
    history = json.loads((two_process_run["out"] / "history.json").read_text())
    assert [record["step"] for record in history if "total" in record] == [1, 2, 3]


def test_two_processes_resume_to_the_one_process_result(two_process_run, one_process_run):
    resumed = two_process_run["resumed"]
    assert (resumed[0]["saves"], resumed[1]["saves"]) == (1, 0)
    assert len(resumed[0]["gradients"]) == 1                 # only step 3 was left to do
    for ddp, reference in zip(resumed[0]["gradients"][0], one_process_run["gradients"][2]):
        torch.testing.assert_close(ddp, reference, rtol=1e-3, atol=1e-5 * float(reference.abs().max()) + 1e-12)
    ddp = load_checkpoint(two_process_run["out"] / "last.pt")
    single = load_checkpoint(one_process_run["result"]["checkpoint"])
    assert ddp["step"] == single["step"] == 3
    for key in single["model"]:
        torch.testing.assert_close(ddp["model"][key], single["model"][key], rtol=1e-5, atol=1e-6)
    losses = [(r["step"], r["total"]) for r in ddp["history"] if "total" in r]   # logged: mean over processes
    reference = [(r["step"], r["total"]) for r in single["history"] if "total" in r]
    assert [s for s, _ in losses] == [s for s, _ in reference] == [1, 2, 3]
    assert [t for _, t in losses] == pytest.approx([t for _, t in reference], rel=1e-4)


def test_incompatible_checkpoints_are_refused_with_one_line(one_process_run, tmp_path, monkeypatch):
    monkeypatch.setitem(SPATIAL_PRESETS, "micro", MICRO_SPATIAL)
    checkpoint = one_process_run["result"]["checkpoint"]
    with pytest.raises(InputError, match="global batch of 4, this run has 2; pass --batch-size 4"):
        train_spatialnet(dataclasses.replace(CONFIG, batch_size=2), tmp_path / "a", resume=checkpoint, progress=False)
    wider = dataclasses.replace(MICRO_SPATIAL, channels=16)      # same preset name, other architecture
    other = save_checkpoint(tmp_path / "wider.pt", kind="spatialnet", model=SpatialNet(wider), model_config=wider)
    with pytest.raises(InputError, match="wider.pt does not fit SpatialNet 'micro'"):
        train_spatialnet(CONFIG, tmp_path / "b", resume=other, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_temporalnet_trains_on_two_processes_in_step(tmp_path):
    torch.manual_seed(0)
    spatial = save_checkpoint(tmp_path / "spatialnet_micro.pt", kind="spatialnet", model=SpatialNet(MICRO_SPATIAL),
                              model_config=MICRO_SPATIAL)
    config = TemporalTrainConfig(preset="micro", spatial_checkpoint=str(spatial), steps=2, batch_size=4,
                                 render_size=64, val_every=0, val_pairs=2, log_every=1, device="cpu",
                                 precision="fp32")
    spawn(temporal_worker, config, tmp_path / "run", tmp_path)
    rank0, rank1 = reports(tmp_path)
    assert repr(rank0["result"]["metrics"]) == repr(rank1["result"]["metrics"])   # validated on rank 0, shared
    assert 0 <= rank0["result"]["metrics"]["rank1"] <= 1
    for step in range(2):
        for a, b in zip(rank0["gradients"][step], rank1["gradients"][step]):
            assert torch.equal(a, b)                         # same gradients, so the same weights on both
    state = load_checkpoint(tmp_path / "run" / "last.pt", kind="temporalnet")
    assert state["step"] == 2 and state["world_size"] == 2
    assert not any(key.startswith("module.") for key in state["model"])


# ----------------------------------------------------------------------------------------------
# One process: the helpers are no-ops; the sampler shares global batches; the config file
# ----------------------------------------------------------------------------------------------
def test_helpers_are_no_ops_in_one_process():
    model = torch.nn.Linear(2, 2)
    assert (distributed.world_size(), distributed.rank(), distributed.is_main_process()) == (1, 0, True)
    assert distributed.wrap_model(model, torch.device("cpu"), sync_batchnorm=True) is model
    assert distributed.unwrap(model) is model
    assert distributed.all_reduce_mean(2.5) == 2.5 and distributed.all_reduce_max(1.0) == 1.0
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.per_process_batch(3) == 3
    distributed.barrier()


def test_global_batch_sampler_splits_every_step_and_resumes():
    single = list(distributed.GlobalBatchSampler(0, 3, 4))
    assert single == list(range(12))
    ranks = [list(distributed.GlobalBatchSampler(0, 3, 4, rank, 2)) for rank in range(2)]
    assert ranks == [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]]              # each step: half each, disjoint
    assert [len(distributed.GlobalBatchSampler(1, 3, 4, rank, 2)) for rank in range(2)] == [4, 4]
    assert list(distributed.GlobalBatchSampler(1, 3, 4, 1, 2)) == [6, 7, 10, 11]   # resumed at step 1
    with pytest.raises(ValueError, match="cannot split"):
        distributed.GlobalBatchSampler(0, 3, 3, 0, 2)


def test_config_file_is_read_and_flags_override_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(SPATIAL_PRESETS, "micro", MICRO_SPATIAL)
    seen = {}
    monkeypatch.setattr(train_module, "train_spatialnet",
                        lambda config, out, resume=None: seen.update(config=config, out=out) or {
                            "val_map": 0.0, "checkpoint": str(out / "last.pt")})
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"_comment": "ignored", "preset": "micro", "steps": 7, "batch_size": 4, "lr": 1,
                                "render_size": 64, "sync_batchnorm": True}))
    assert main(["train", "spatial", "--config", str(path), "--steps", "2", "--seed", "5"]) == 0
    config = seen["config"]
    assert (config.preset, config.steps, config.batch_size, config.seed, config.render_size) == ("micro", 2, 4, 5, 64)
    assert config.lr == 1.0 and isinstance(config.lr, float) and config.sync_batchnorm is True
    assert seen["out"] == Path("runs") / "run" and config.val_every == 500     # CLI defaults below the file
    # the pgg stage: its defaults (lr 1e-5, R = 1) unless the file or a flag sets them; --steps beats epochs
    path.write_text(json.dumps({"preset": "micro", "epochs": 40, "init_checkpoint": "base.pt"}))
    assert main(["train", "pgg", "--config", str(path), "--out", str(tmp_path / "o")]) == 0
    assert (seen["config"].lr, seen["config"].pgg_iterations, seen["config"].epochs) == (1e-5, 1, 40.0)
    assert main(["train", "pgg", "--config", str(path), "--steps", "9"]) == 0
    assert (seen["config"].steps, seen["config"].epochs) == (9, None)
    capsys.readouterr()


def test_config_file_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"preset": "tiny", "stepz": 3, "learning_rate": 1e-4}))
    with pytest.raises(InputError, match=r"unknown keys \['learning_rate', 'stepz'\]"):
        read_config_file(path)
    assert main(["train", "spatial", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "stepz" in error and "learning_rate" in error
    path.write_text(json.dumps({"steps": "10"}))
    assert main(["train", "spatial", "--config", str(path)]) == 2
    assert "steps must be int" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(["train", "spatial", "--config", str(path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["train", "temporal", "--config", str(REPO / "configs" / "paper_spatial.json")]) == 2
    assert "not fields of TemporalTrainConfig" in capsys.readouterr().err
    assert main(["train", "temporal", "--epochs", "3"]) == 2
    assert "--epochs does not apply to train temporal" in capsys.readouterr().err


def test_paper_configs_hold_the_papers_settings_and_refuse_missing_data(tmp_path, capsys, monkeypatch):
    spatial = SpatialTrainConfig(**read_config_file(REPO / "configs" / "paper_spatial.json"))
    assert (spatial.preset, spatial.batch_size, spatial.lr, spatial.lr_final, spatial.data) == (
        "paper", 16, 2e-4, 1e-5, "posetrack")
    assert get_spatial_config(spatial.preset).input_size == 512
    assert round(spatial.lr_drop_fraction * spatial.steps) == 250_000
    pgg = SpatialTrainConfig(**read_config_file(REPO / "configs" / "paper_pgg.json"))
    assert (pgg.preset, pgg.lr, pgg.epochs, pgg.pgg_iterations, pgg.batch_size) == ("paper", 1e-5, 40, 1, 16)
    temporal = TemporalTrainConfig(**read_config_file(REPO / "configs" / "paper_temporal.json", TemporalTrainConfig))
    assert (temporal.preset, temporal.lr, temporal.batch_size, temporal.max_frame_gap) == ("paper", 2e-4, 16, 5)
    # placeholder data paths that do not exist: a clear error before anything is built or written
    monkeypatch.chdir(tmp_path)
    assert main(["train", "spatial", "--config", str(REPO / "configs" / "paper_spatial.json")]) == 2
    error = capsys.readouterr().err
    assert "annotations data/posetrack18/annotations/train does not exist" in error and "README" in error
    assert not (tmp_path / "runs").exists()
    assert main(["train", "spatial", "--config", str(REPO / "configs" / "paper_spatial.json"), "--data", "synthetic",
                 "--epochs", "2"]) == 2
    assert "synthetic data is endless" in capsys.readouterr().err


def test_epochs_become_steps_on_real_data(tmp_path, monkeypatch):
    """40 epochs of N labelled frames at global batch B are ceil(40 N / B) steps (recorded in the checkpoint)."""
    from mpat_nb.data.synth import generate_clip

    clip = generate_clip(preset="mixed", seed=1, num_frames=3, size=(64, 64))
    clip.save(tmp_path / "data")
    monkeypatch.setitem(SPATIAL_PRESETS, "micro", MICRO_SPATIAL)
    config = dataclasses.replace(CONFIG, data="posetrack", annotations=str(tmp_path / "data" / "annotations"),
                                 image_root=str(tmp_path / "data"), epochs=2, batch_size=2, val_every=0)
    frames = train_module.posetrack_frames(config.annotations)
    dataset, resolved = train_module.training_data(config, MICRO_SPATIAL)
    usable = len(dataset.frames)
    assert 0 < usable <= len(frames) and resolved.steps == -(-2 * usable // 2) and len(dataset) == resolved.steps * 2
