"""The GPU/DDP code paths that can be checked on CPU: per-rank RNG state, scaler resume, the end of a DDP run,
step-time host syncs and rank-0-only reporting (2 gloo processes where it matters). The benchmark's step against
the trainer's and eq. 9: tests/test_speed_settings.py."""

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import as_args, run_cli, tiny_overrides

from sepgzoo.config import load_recipe, recipe_from_dict
from sepgzoo.training import engine, runs
from sepgzoo.training.distributed import DistInfo


def torchrun(tmp_path: Path, script: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run `script` as 2 gloo processes under torchrun; returns the finished process (output captured)."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(path), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def draws() -> list[float]:
    return [*torch.rand(2).tolist(), *np.random.rand(2).tolist(), random.random()]


@pytest.fixture(scope="module")
def cpu_run(sysu_root, tmp_path_factory) -> Path:
    """A finished 1-epoch CPU run (AMP off, so its last.pt holds the scaler state {}), evaluated."""
    run = tmp_path_factory.mktemp("runs") / "cpu"
    return engine.train(load_recipe("synthetic", tiny_overrides(sysu_root, epochs=1) + ["train.device=cpu"]),
                        output=run)


# -- 1. RNG state per rank ----------------------------------------------------------------------------------------
def fake_rank_state(seed: int) -> dict:
    runs.seed_everything(seed)
    state = runs.rng_state()
    state["cuda"] = torch.zeros(16, dtype=torch.uint8)  # what torch.cuda.get_rng_state() returns: a ByteTensor
    return state


def test_rng_state_of_8_gpus_loads_on_a_cpu_only_machine(tmp_path):
    runs.save_state(tmp_path, {"epoch": 4, "rng": [fake_rank_state(rank) for rank in range(8)]})
    _, state = runs.load_state(tmp_path)
    with pytest.warns(UserWarning, match="RNG streams of 8 process"):
        assert not runs.restore_rng_state(state["rng"], DistInfo(), seed=7, epoch=5)
    reseeded = draws()
    runs.seed_everything(runs.reseed_value(7, 0, 5))
    assert reseeded == draws()  # the fallback is a deterministic reseed from (seed, rank, epoch)
    assert runs.reseed_value(7, 0, 5) != runs.reseed_value(7, 1, 5)


def test_old_single_rng_state_with_every_gpu_still_resumes(tmp_path):
    old = fake_rank_state(3)
    old["cuda"] = [torch.zeros(16, dtype=torch.uint8) for _ in range(8)]  # format /1: get_rng_state_all()
    expected = draws()
    torch.save({"format": "sepgzoo-train-state/1", "epoch": 0, "rng": old}, tmp_path / runs.STATE_NAME)
    _, state = runs.load_state(tmp_path)
    runs.seed_everything(99)
    assert runs.restore_rng_state(state["rng"], DistInfo(), seed=0, epoch=1)
    assert draws() == expected


def test_each_ddp_rank_gets_back_its_own_rng_streams(tmp_path):
    proc = torchrun(tmp_path, """
        import json, random, sys
        from pathlib import Path
        import numpy as np, torch
        from sepgzoo.training import runs
        from sepgzoo.training.distributed import barrier, cleanup, init_distributed

        def draws():
            return [*torch.rand(2).tolist(), *np.random.rand(2).tolist(), random.random()]

        out = Path(sys.argv[1])
        info = init_distributed("cpu", 120)
        runs.seed_everything(100 + info.rank)
        saved = runs.gather_rng_states(info)
        expected = draws()
        if info.is_main:
            runs.save_state(out, {"epoch": 0, "rng": saved})
        barrier(info)
        _, state = runs.load_state(out)
        runs.seed_everything(12345)  # what a fresh process would start from
        restored = runs.restore_rng_state(state["rng"], info, seed=0, epoch=1)
        (out / f"rank{info.rank}.json").write_text(json.dumps({"restored": restored, "expected": expected,
                                                                "got": draws()}))
        cleanup(info)
    """, str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["restored"] and rank["got"] == rank["expected"]
    assert ranks[0]["expected"] != ranks[1]["expected"]  # two streams: rank 1 did not get rank 0's


# -- 2. GradScaler state of a run without AMP -----------------------------------------------------------------------
def test_scaler_restore_skips_the_empty_state_of_a_run_without_amp():
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    engine.restore_scaler(scaler, torch.amp.GradScaler("cuda", enabled=False).state_dict())  # {}: would raise
    assert scaler.get_scale() == 2.0**16
    engine.restore_scaler(scaler, {**scaler.state_dict(), "scale": 8.0})
    assert scaler.get_scale() == 8.0


def test_cpu_run_resumes_into_a_trainer_with_an_enabled_scaler(cpu_run, monkeypatch):
    _, state = runs.load_state(cpu_run)
    assert state["scaler"] == {}
    real = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device, enabled: real("cpu", enabled=True))
    recipe = recipe_from_dict(state["recipe"])
    trainer = engine.Trainer(recipe, cpu_run, DistInfo(), torch.device("cpu"), state)
    assert trainer.scaler.is_enabled() and trainer.start_epoch == 1


# -- 3 + 6. the end of a DDP run; rank 0 alone reports ------------------------------------------------------------
def test_slow_final_evaluation_on_rank_0_outlasts_the_process_group_timeout(sysu_root, tmp_path):
    """Rank 0 evaluates for longer than train.dist_timeout_s; rank 1 must not be waiting in a collective then."""
    run = tmp_path / "ddp"
    proc = torchrun(tmp_path, """
        import sys, time
        import sepgzoo.evaluation.evaluate
        from sepgzoo.cli import main

        real = sepgzoo.evaluation.evaluate.evaluate_model
        def slow_evaluate_model(*args, **kwargs):
            time.sleep(14)
            return real(*args, **kwargs)
        sepgzoo.evaluation.evaluate.evaluate_model = slow_evaluate_model
        main(sys.argv[1:])
    """, "train", "--recipe", "synthetic", *as_args(tiny_overrides(sysu_root, epochs=1)), "--set", "train.device=cpu",
        "--set", "train.dist_timeout_s=10", "--output", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "metrics.json").is_file()
    output = proc.stdout + proc.stderr
    assert output.count("run folder:") == 1
    assert sum(line.startswith("protocol ") for line in output.splitlines()) == 1  # one result table


def test_train_command_reports_on_rank_0_only(cpu_run, monkeypatch):
    monkeypatch.setattr(engine, "train", lambda recipe, output=None, resume=None: cpu_run)
    monkeypatch.setenv("RANK", "1")
    code, out = run_cli("train", "--set", "train.device=cpu")
    assert code == 0 and out == ""
    monkeypatch.setenv("RANK", "0")
    code, out = run_cli("train", "--set", "train.device=cpu")
    assert code == 0 and "sysu_all_single" in out and f"run folder: {cpu_run}" in out


# -- 4. no host sync per step ---------------------------------------------------------------------------------------
def refuse_host_syncs(monkeypatch) -> None:
    def sync(*args, **kwargs):
        raise AssertionError("host sync")
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, sync)


def test_epoch_means_are_the_plain_means_and_adding_a_step_never_syncs(monkeypatch):
    steps = [{"total": 1.5, "paba": 0.25}, {"total": 2.0, "paba": 0.5}, {"total": 4.25, "paba": 1.0}]
    stats = engine.EpochStats()
    with monkeypatch.context() as patch:
        refuse_host_syncs(patch)
        for step in steps:
            stats.add({key: torch.tensor(value) for key, value in step.items()}, images=8)
    assert stats.means() == pytest.approx({key: np.mean([s[key] for s in steps]) for key in steps[0]})
    assert stats.first_non_finite() is None and stats.images == 24


def test_first_non_finite_step_is_remembered_until_checked():
    stats = engine.EpochStats()
    for total in (1.0, 2.0, float("nan"), float("inf"), 3.0):
        stats.add({"total": torch.tensor(total), "paba": torch.tensor(total / 2)}, images=4)
    step, terms = stats.first_non_finite()
    assert step == 2 and np.isnan(terms["total"]) and np.isnan(terms["paba"])


def test_nan_loss_is_noticed_at_the_next_check_and_names_its_epoch_and_iteration(sysu_root, tmp_path, monkeypatch):
    real_loss = engine.sepg_loss
    calls = []
    def nan_from_the_third_step(*args, **kwargs):
        terms = real_loss(*args, **kwargs)
        calls.append(1)
        if len(calls) >= 3:
            terms["total"] = terms["total"] * float("nan")
        return terms
    monkeypatch.setattr(engine, "sepg_loss", nan_from_the_third_step)
    monkeypatch.setattr(engine, "SYNC_EVERY", 2)
    recipe = load_recipe("synthetic", tiny_overrides(sysu_root, epochs=1) + ["train.iters_per_epoch=6",
                                                                              "train.evaluate=false"])
    with pytest.raises(engine.TrainingDiverged, match="epoch 1, iteration 3 .*noticed at iteration 4"):
        engine.train(recipe, output=tmp_path / "nan")
    assert len(calls) == 4  # stopped at the check after step 4, not at the end of the 6-step epoch


def test_a_cuda_rank_sets_its_device_before_joining_the_group_and_names_it(monkeypatch):
    import torch.distributed as dist

    from sepgzoo.training import distributed

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: calls.append(("init", kwargs)))
    info = distributed.init_distributed("cuda", timeout_s=5)
    assert info.rank == 1 and info.local_rank == 1
    assert [name for name, _ in calls] == ["set_device", "init"]
    assert calls[0][1] == torch.device("cuda", 1)
    assert calls[1][1]["backend"] == "nccl" and calls[1][1]["device_id"] == torch.device("cuda", 1)
