"""Training and evaluation end to end on the tiny model and tiny synthetic data: CLI, resume, kill-safety, DDP."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sepgzoo.cli import main
from sepgzoo.config import load_recipe
from sepgzoo.hub.checkpoint import load_model, read_meta
from sepgzoo.training import engine, runs


def tiny_overrides(root: Path, epochs: int = 2) -> list[str]:
    return [f"data.root={root}", "model.name=test_sepg", "model.parts=4", "model.part_dim=32", "data.height=64",
            "data.width=32", "data.ids_per_batch=2", "data.images_per_id=2", "data.workers=0",
            f"train.epochs={epochs}", "train.iters_per_epoch=2", "eval.trials=2",
            f"optim.milestones={[1] if epochs > 1 else []}"]  # a milestone inside the run: the lr decay is tested


def as_args(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def run_cli(*args: str, stdout_only: bool = False) -> tuple[int, str]:
    """Exit code and output (stdout + stderr, or stdout alone for JSON); unexpected exceptions propagate."""
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout if stdout_only else result.output


@pytest.fixture(scope="module")
def trained_run(sysu_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    code, out = run_cli("train", "--recipe", "synthetic", *as_args(tiny_overrides(sysu_root)), "--output", str(run))
    assert code == 0, out
    assert "sysu_all_single" in out and "run folder" in out
    return run


def test_run_folder_holds_every_file(trained_run):
    assert {p.name for p in trained_run.iterdir()} >= {"recipe.yaml", "last.pt", "model.safetensors", "model.json",
                                                        "metrics.json", "log.csv", "curves.png"}
    state = torch.load(trained_run / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and set(state) >= {"model", "optimizer", "scheduler", "rng", "recipe"}
    meta = read_meta(trained_run)
    assert meta["model"] == "test_sepg" and meta["epoch"] == 2 and meta["world_size"] == 1
    assert set(meta["versions"]) >= {"sepgzoo", "torch", "timm"} and meta["recipe"]["model"]["parts"] == 4
    assert set(meta["metrics"]) == {"sysu_all_single", "sysu_indoor_single"}
    log = (trained_run / "log.csv").read_text().splitlines()
    assert len(log) == 3 and "paba" in log[0] and "images_per_s" in log[0]
    assert [float(line.split(",")[1]) for line in log[1:]] == pytest.approx([0.03, 0.003])  # milestone at epoch 1


def test_eval_json_matches_the_training_record_and_writes_plots(trained_run, tmp_path):
    """The training's record comes from the model in memory, `eval` from the saved files: the same numbers."""
    record = (trained_run / "metrics.json").read_bytes()
    code, out = run_cli("eval", "--checkpoint", str(trained_run), "--json", "--plots", str(tmp_path / "plots"),
                        "--device", "cpu", "--no-record", stdout_only=True)
    assert code == 0, out
    result = json.loads(out)
    assert set(result) >= {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP", "options"}
    assert result["options"]["sampler"] == "agw" and result["options"]["flip_tta"] is False
    assert result["recorded"] == [] and not (trained_run / "evals").exists()
    training = json.loads(record)["results"]
    for name, values in result["settings"].items():
        assert values["rank1"] == pytest.approx(100 * training[name]["R1"], abs=0.005)  # --json rounds to 0.01
        assert values["mAP"] == pytest.approx(100 * training[name]["mAP"], abs=0.005)
    assert (trained_run / "metrics.json").read_bytes() == record
    assert (tmp_path / "plots" / "cmc.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "tsne.png").stat().st_size > 1000


def test_eval_records_beside_the_training_record_never_over_it(trained_run):
    training_files = {name: (trained_run / name).read_bytes() for name in ("metrics.json", "model.json")}
    settings = ["--set", "eval.flip=true", "--set", "eval.trials=1", "--set", "eval.mode=all"]
    code, out = run_cli("eval", "--checkpoint", str(trained_run), *settings)
    assert code == 0 and "flip TTA: on" in out, out
    code, again = run_cli("eval", "--checkpoint", str(trained_run), *settings, "--json", stdout_only=True)
    assert code == 0, again
    for name, content in training_files.items():
        assert (trained_run / name).read_bytes() == content, f"{name} was rewritten by eval"
    assert read_meta(trained_run)["epoch"] == 2
    name = f"sysu_all_single.agw.trials1.flip-on.epoch2-{_weights_sha(trained_run)[:8]}"
    records = [trained_run / "evals" / f"{name}{suffix}.json" for suffix in ("", ".2")]
    assert set((trained_run / "evals").iterdir()) == set(records)
    first, second = (json.loads(p.read_text()) for p in records)
    assert first["weights_sha256"] == _weights_sha(trained_run)
    assert f"recorded: {records[0]}" in out and json.loads(again)["recorded"] == [str(records[1])]
    assert first["overrides"] == ["eval.flip=true", "eval.trials=1", "eval.mode=all"]
    assert first["flip_tta"] is True and list(first["results"]) == ["sysu_all_single"]
    assert first["results"]["sysu_all_single"]["options"]["num_trials"] == 1
    assert json.loads(again)["rank1"] == pytest.approx(100 * second["results"]["sysu_all_single"]["R1"], abs=0.005)


def test_an_eval_with_the_training_settings_records_exactly_the_training_numbers(trained_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("evals"))
    code, out = run_cli("eval", "--checkpoint", str(run))
    assert code == 0, out
    (record,) = (run / "evals").iterdir()
    assert record.name.startswith("sysu_all_single+sysu_indoor_single.agw.trials2.flip-off.epoch2-")
    later, training = (json.loads(p.read_text())["results"] for p in (record, run / "metrics.json"))
    for name in training:
        assert (later[name]["R1"], later[name]["mAP"], later[name]["mINP"]) == (
            training[name]["R1"], training[name]["mAP"], training[name]["mINP"])


def _weights_sha(run: Path) -> str:
    from sepgzoo.utils.hashing import sha256_file

    return sha256_file(run / "model.safetensors")


def test_resume_continues_exactly_where_a_killed_run_stopped(sysu_root, tmp_path, monkeypatch):
    overrides = tiny_overrides(sysu_root, epochs=3) + ["train.evaluate=false"]
    straight = engine.train(load_recipe("synthetic", overrides), output=tmp_path / "straight")

    original = engine.Trainer.end_epoch
    def killed_after_epoch_2(self, epoch, stats):
        row = original(self, epoch, stats)
        if epoch == 1:
            raise KeyboardInterrupt
        return row
    monkeypatch.setattr(engine.Trainer, "end_epoch", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        engine.train(load_recipe("synthetic", overrides), output=tmp_path / "killed")
    monkeypatch.setattr(engine.Trainer, "end_epoch", original)
    assert read_meta(tmp_path / "killed")["epoch"] == 2

    code, out = run_cli("train", "--resume", str(tmp_path / "killed"))
    assert code == 0, out
    a, _ = load_model(straight)
    b, meta = load_model(tmp_path / "killed")
    assert meta["epoch"] == 3
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=name)
    assert len((tmp_path / "killed" / "log.csv").read_text().splitlines()) == 4


def test_crash_during_a_checkpoint_write_leaves_the_previous_one_loadable(trained_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes((trained_run / "last.pt").read_bytes())
    before = torch.load(run / "last.pt", weights_only=True)

    def half_write_then_die(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError("disk died")
    monkeypatch.setattr(torch, "save", half_write_then_die)
    with pytest.raises(OSError, match="disk died"):
        runs.save_state(run, {"epoch": 99})
    after = torch.load(run / "last.pt", weights_only=True)
    assert after["epoch"] == before["epoch"]
    assert [p.name for p in run.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_non_finite_loss_stops_with_a_clear_message(sysu_root, tmp_path, monkeypatch):
    real_loss = engine.sepg_loss
    def nan_loss(*args, **kwargs):
        terms = real_loss(*args, **kwargs)
        terms["total"] = terms["total"] * float("nan")
        return terms
    monkeypatch.setattr(engine, "sepg_loss", nan_loss)
    code, out = run_cli("train", "--recipe", "synthetic", *as_args(tiny_overrides(sysu_root)), "--output",
                        str(tmp_path / "nan"))
    assert code == 1 and "loss is not finite at epoch 1, iteration 1" in out and "Traceback" not in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--set", "data.dataset=sysu", "--set", "data.root=/no/such/SYSU"],
         "data.root /no/such/SYSU does not exist"),
        (["train", "--recipe", "sysuu"], "unknown recipe 'sysuu'"),
        (["train", "--set", "train.epoch=3"], "did you mean 'epochs'"),
        (["eval", "--checkpoint", "/no/such/run"], "/no/such/run does not exist; expected a run folder"),
        (["train", "--resume", "/no/such/run"], "cannot resume: /no/such/run does not exist"),
    ],
)
def test_user_errors_are_one_line_messages(args, message):
    code, out = run_cli(*args)
    assert code != 0 and message in out and "Traceback" not in out


def test_corrupt_and_foreign_checkpoints_are_refused(trained_run, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.json").write_text((trained_run / "model.json").read_text())
    (corrupt / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes()[:1000])
    code, out = run_cli("eval", "--checkpoint", str(corrupt))
    assert code != 0 and "model.safetensors is not a readable safetensors file" in out

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
    meta = json.loads((trained_run / "model.json").read_text())
    meta["model_args"]["parts"] = 3  # another architecture than the weights
    (foreign / "model.json").write_text(json.dumps(meta))
    code, out = run_cli("eval", "--checkpoint", str(foreign))
    assert code != 0 and "does not fit model test_sepg" in out

    (foreign / "model.json").write_text(json.dumps({"format": "something-else"}))
    code, out = run_cli("eval", "--checkpoint", str(foreign))
    assert code != 0 and "not a sepgzoo model file" in out


def test_regdb_checkpoint_is_refused_on_another_trial(trained_run, tmp_path, regdb_root):
    run = tmp_path / "regdb"
    run.mkdir()
    (run / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
    meta = json.loads((trained_run / "model.json").read_text())
    meta["recipe"]["data"].update(dataset="regdb", trial=1, root=str(regdb_root))
    (run / "model.json").write_text(json.dumps(meta))
    code, out = run_cli("eval", "--checkpoint", str(run), "--set", "data.trial=2")
    assert code != 0 and "trained on RegDB trial 1" in out
    code, out = run_cli("eval", "--checkpoint", str(run), "--json", stdout_only=True)
    assert code == 0, out
    assert json.loads(out)["protocol"] == "regdb_v2i"


def test_print_recipe_and_recipes_list():
    code, out = run_cli("train", "--recipe", "sysu", "--set", "train.epochs=75", "--print-recipe")
    assert code == 0 and "epochs: 75" in out and "backbone: resnet50" in out
    code, out = run_cli("train", "--recipe", "sysu", "--set", "train.epochs=5", "--print-recipe")
    assert code == 0 and "epochs: 5" in out  # the milestones past epoch 5 only warn (tests/test_config.py)
    code, out = run_cli("recipes")
    assert code == 0 and "sysu_se_cc" in out


def test_viz_seg_writes_the_figure(sysu_root, tmp_path):
    image = next((sysu_root / "cam1").rglob("*.jpg"))
    code, out = run_cli("viz", "seg", str(image), "--out", str(tmp_path / "seg.png"), "--size", "64", "32")
    assert code == 0 and (tmp_path / "seg.png").stat().st_size > 1000


def test_bench_train_reports_throughput_and_loss_share():
    code, out = run_cli("bench", "train", "--model", "test_sepg", "--ids", "2", "--images-per-id", "2", "--size",
                        "64", "32", "--steps", "1", "--device", "cpu", "--json", stdout_only=True)
    result = json.loads(out)
    assert code == 0 and result["images_per_s"] > 0 and 0 < result["loss_share_percent"] < 100
    assert result["conv_ms"] > 0 and result["conv_share_percent"] > 0 and result["warmup_steps"] == 2


def test_ddp_two_gloo_processes(sysu_root, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sepgzoo",
           "train", "--recipe", "synthetic", *as_args(tiny_overrides(sysu_root, epochs=1)), "--set",
           "train.evaluate=false", "--output", str(run)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world size 2" in proc.stdout + proc.stderr
    assert read_meta(run)["world_size"] == 2
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 2 and log[1].split(",")[log[0].split(",").index("world_size")] == "2"


def test_validation_split_is_carved_from_training_identities(sysu_root, tmp_path):
    recipe = load_recipe("synthetic", tiny_overrides(sysu_root, epochs=1) + ["data.val_ids=2", "train.evaluate=false"])
    trainer_run = engine.train(recipe, output=tmp_path / "val")
    header, row = (trainer_run / "log.csv").read_text().splitlines()
    values = dict(zip(header.split(","), row.split(",")))
    assert 0.0 <= float(values["val_R1"]) <= 1.0 and 0.0 < float(values["val_mAP"]) <= 1.0
    meta = read_meta(trainer_run)
    assert meta["num_train_ids"] == 6 and meta["model_args"]["num_classes"] == 6  # 8 training ids - 2 held out


@pytest.mark.gpu
def test_cuda_amp_training_and_evaluation(sysu_root, tmp_path):
    """A CUDA run with AMP (float16 + GradScaler) and channels_last trains, checkpoints and evaluates."""
    recipe = load_recipe("synthetic", tiny_overrides(sysu_root, epochs=2) + ["train.device=cuda", "train.amp=true"])
    run = engine.train(recipe, output=tmp_path / "cuda")
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0
    meta = read_meta(run)
    assert meta["hardware"] == f"1 x {torch.cuda.get_device_name(0)}"
    assert set(meta["metrics"]) == {"sysu_all_single", "sysu_indoor_single"}


def test_eval_averages_one_run_per_regdb_split(trained_run, tmp_path, regdb_root):
    """RegDB is reported as the mean over splits of each split's own model (docs/protocols.md 3.3)."""
    runs = []
    for split in (1, 2):
        run = tmp_path / f"regdb-{split}"
        run.mkdir()
        (run / "model.safetensors").write_bytes((trained_run / "model.safetensors").read_bytes())
        meta = json.loads((trained_run / "model.json").read_text())
        meta["recipe"]["data"].update(dataset="regdb", trial=split, root=str(regdb_root))
        (run / "model.json").write_text(json.dumps(meta))
        runs.append(run)
    rerank = ("--set", "eval.rerank=true")
    singles = [json.loads(run_cli("eval", "--checkpoint", str(r), *rerank, "--json", stdout_only=True)[1])
               for r in runs]
    code, out = run_cli("eval", "--checkpoint", str(runs[0]), "--checkpoint", str(runs[1]), *rerank, "--json",
                        stdout_only=True)
    assert code == 0, out
    both = json.loads(out)
    assert both["options"]["split"] == [1, 2] and both["options"]["averaged_runs"] == 2
    for key in ("rank1", "mAP", "mINP"):
        assert both[key] == pytest.approx((singles[0][key] + singles[1][key]) / 2, abs=0.011)
        for name in (n for n in both["settings"] if n.endswith(" re-ranked")):  # re-ranked rows: averaged the same way
            assert both["settings"][name][key] == pytest.approx(
                (singles[0]["settings"][name][key] + singles[1]["settings"][name][key]) / 2, abs=0.011)
    assert any(n.endswith(" re-ranked") for n in both["settings"])
    assert singles[0]["mAP"] != singles[1]["mAP"]  # two different splits, so the average means something


def test_skip_unpaired_reaches_the_reader_from_the_recipe(sysu_root, tmp_path):
    from sepgzoo.data.sources import open_dataset
    from sepgzoo.errors import UserError

    copy = tmp_path / "SYSU-MM01"
    shutil.copytree(sysu_root, copy)
    train_id = int((copy / "exp" / "train_id.txt").read_text().split(",")[0])
    for cam in ("cam3", "cam6"):
        shutil.rmtree(copy / cam / f"{train_id:04d}", ignore_errors=True)
    recipe = load_recipe("synthetic", [f"data.root={copy}", "data.dataset=sysu"])
    with pytest.raises(UserError, match="data.skip_unpaired=true"):
        open_dataset(recipe.data)
    kept = open_dataset(load_recipe("synthetic", [f"data.root={copy}", "data.dataset=sysu",
                                                  "data.skip_unpaired=true"]).data)
    assert train_id not in {int(Path(s.path).parent.name) for s in kept.train}


def test_training_with_the_resized_image_cache(sysu_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SEPGZOO_CACHE", str(tmp_path / "cache"))
    recipe = load_recipe("synthetic", tiny_overrides(sysu_root, epochs=1) + ["data.cache=true", "train.evaluate=false"])
    run = engine.train(recipe, output=tmp_path / "cached")
    assert read_meta(run)["epoch"] == 1
    assert len(list((tmp_path / "cache" / "resized" / "64x32").rglob("*.npy"))) > 0
