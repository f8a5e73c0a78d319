"""A run is checked whole before anything is written: start-up and the final evaluation agree on every recipe and
protocol override; `train --dry-run` prints the plan and leaves nothing; the progress bar names each loss term."""

import dataclasses
import itertools
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_protocols import write_rand_perm

from sepgzoo.cli import main
from sepgzoo.config import available_recipes, load_recipe
from sepgzoo.data.sources import open_dataset
from sepgzoo.errors import UserError
from sepgzoo.evaluation.evaluate import evaluate_model
from sepgzoo.hub.factory import create_model
from sepgzoo.training import engine
from sepgzoo.training.engine import progress_postfix
from sepgzoo.training.preflight import check_inputs

PROTOCOL_AXES = {"eval.mode": ("all", "indoor", "both"), "eval.shot": ("single", "multi"),
                 "eval.sampler": ("agw", "official"), "eval.direction": ("v2i", "i2v", "both")}
TRIAL_OVERRIDES = (["eval.trials=1"], ["eval.trials=11"], ["data.trial=10"], ["data.trial=11"])


def protocol_overrides() -> list[list[str]]:
    grid = [[f"{key}={value}" for key, value in zip(PROTOCOL_AXES, values)]
            for values in itertools.product(*PROTOCOL_AXES.values())]
    return [[*o, "eval.trials=2"] for o in grid] + [list(o) for o in TRIAL_OVERRIDES]


@pytest.fixture(scope="module")
def sysu_with_perm(sysu_root, tmp_path_factory) -> Path:
    """The synthetic SYSU tree plus the official sampler's rand_perm_cam.mat (10 trials), so `official` can pass."""
    root = tmp_path_factory.mktemp("perm") / "SYSU-MM01"
    shutil.copytree(sysu_root, root)
    write_rand_perm(root, root / "exp" / "rand_perm_cam.mat", trials=10)
    return root


def outcome(fn) -> str:
    try:
        fn()
    except UserError as err:
        return f"refused: {err}"
    return "ok"


def test_start_up_and_final_evaluation_agree_on_every_recipe_and_protocol_override(sysu_root, sysu_with_perm,
                                                                                     regdb_root, llcm_root):
    """Every shipped recipe x (mode, shot, sampler, direction, trials, RegDB split): a setting refused at the
    end of a run is refused at its start, with the same message, and one that starts evaluates."""
    roots = {"sysu": sysu_with_perm, "synthetic": sysu_root, "regdb": regdb_root, "llcm": llcm_root}
    model = create_model("test_sepg", num_classes=4, parts=4, part_dim=32, input_size=(64, 32)).eval()
    finals: dict[tuple, str] = {}
    outcomes = []
    for name in available_recipes():
        dataset = load_recipe(name).data.dataset
        for overrides in protocol_overrides():
            settings = [*overrides, f"data.root={roots[dataset]}", "data.workers=0", "eval.batch_size=256"]
            recipe = load_recipe(name, settings)
            start = outcome(lambda: check_inputs(recipe))
            key = (dataset, recipe.data.trial, dataclasses.astuple(recipe.eval))
            if key not in finals:
                finals[key] = outcome(lambda: evaluate_model(model, recipe, "cpu"))
            assert start == finals[key], f"{name} {overrides}: start-up {start!r}, final evaluation {finals[key]!r}"
            outcomes.append(start)
    refusals = {o for o in outcomes if o != "ok"}
    assert outcomes.count("ok") >= 100 and len(refusals) >= 5  # the grid holds both, for several reasons
    assert any("single-shot only" in o for o in refusals) and any("rand_perm_cam.mat" in o for o in refusals)
    assert any("SYSU-MM01 is evaluated infrared -> visible only" in o for o in refusals)
    assert any("applies to SYSU-MM01 only" in o for o in refusals)
    assert any("RegDB trial 11 is out of range" in o for o in refusals)


def test_a_mistake_the_final_evaluation_would_find_is_refused_before_the_run_folder_exists(sysu_root, tmp_path,
                                                                                           monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(engine.Trainer, "fit", never)
    for override, message in (("eval.shot=multi", "the 'agw' gallery sampler is single-shot only"),
                              ("eval.sampler=official", "rand_perm_cam.mat not found"),
                              ("model.backbone=resnet_nonexistent", "resnet_nonexistent")):
        run = tmp_path / "run"
        result = CliRunner().invoke(main, ["train", "--recipe", "synthetic", "--set", f"data.root={sysu_root}",
                                           "--set", "model.name=sepg", "--set", override, "--output", str(run)])
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output and not run.exists()


def test_dry_run_prints_the_plan_and_leaves_nothing_behind(sysu_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    args = ["train", "--recipe", "sysu", "--dry-run", "--set", f"data.root={sysu_root}", "--set",
            "model.backbone=resnet18", "--set", "model.pretrained=none", "--set", "data.height=128", "--set",
            "data.width=64", "--set", "data.ids_per_batch=2", "--set", "data.images_per_id=2", "--set",
            "data.workers=0", "--set", "data.cache=true", "--output", "runs/planned"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert sorted(tmp_path.rglob("*")) == before  # no run folder, no cache, no file

    dataset = open_dataset(load_recipe("sysu", [f"data.root={sysu_root}"]).data)
    visible = sum(s.modality == "visible" for s in dataset.train)
    infrared = len(dataset.train) - visible
    model = create_model("sepg", backbone="resnet18", num_classes=len({s.pid for s in dataset.train}), parts=12,
                         part_dim=512, input_size=(128, 64))
    out = result.output
    assert "every check passed, nothing was written" in out
    assert f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters" in out
    assert f"{len({s.pid for s in dataset.train})} training identities" in out
    assert f"{visible} visible + {infrared} infrared images" in out
    assert "visible 4 x 3 x 128 x 64, infrared 4 x 3 x 128 x 64" in out
    steps = math.ceil(max(visible, infrared) / 4)  # the sampler's epoch: max(#visible, #infrared) pairs, P*K a step
    assert f"8 images per step, {steps} steps per epoch, 120 epochs" in out
    assert "sysu_all_single: 10 trial(s) drawn" in out and "sysu_indoor_single: 10 trial(s) drawn" in out
    assert "8 test images embedded: finite True, norm 1.0000..1.0000" in out
    assert "runs/planned (writable" in out
    seconds = float(out.split("  step        ")[1].split(" s ")[0])  # printed rounded to 3 decimals
    epoch = out.split("  estimate    ")[1].split(" per epoch")[0]
    if epoch.endswith(" s"):  # the estimate uses the unrounded step time: equal within the printed rounding
        assert abs(float(epoch[:-2]) - seconds * steps) <= 0.0005 * steps + 0.5, (epoch, seconds, steps)
    else:
        assert epoch.endswith(" min") or epoch.endswith(" h"), epoch


def test_dry_run_refuses_an_output_folder_that_is_not_empty(sysu_root, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("an earlier run")
    result = CliRunner().invoke(main, ["train", "--recipe", "synthetic", "--dry-run", "--set", f"data.root={sysu_root}",
                                       "--output", str(tmp_path / "run")])
    assert result.exit_code == 1 and "is not empty" in result.output
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["notes.txt"]


def test_progress_bar_names_every_loss_term_with_images_per_second():
    terms = {"id_specific": torch.tensor(1.25), "paba": torch.tensor(0.5), "id_parts": torch.tensor(3.0),
             "total": torch.tensor(4.75)}
    shown = progress_postfix(terms, lr=0.03, images_per_second=123.4)
    assert shown == {"loss": "4.750", "id": "1.250", "paba": "0.500", "parts": "3.000", "lr": "3.00e-02",
                     "img/s": "123"}
    with_cc = progress_postfix({**terms, "cross_centre": torch.tensor(0.125)}, 0.1, 1.0)
    assert list(with_cc) == ["loss", "id", "paba", "parts", "cc", "lr", "img/s"] and with_cc["cc"] == "0.125"


def test_the_training_record_is_written_once(tmp_path):
    from sepgzoo.evaluation.records import write_training_record

    report = {"results": {}}
    (tmp_path / "model.json").write_text(json.dumps({"format": "sepgzoo-model/1"}))
    (tmp_path / "metrics.json").write_text('{"kept": true}\n')
    with pytest.raises(UserError, match="already holds this run's training evaluation"):
        write_training_record(tmp_path, report)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"kept": True}
