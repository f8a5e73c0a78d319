"""`sepgzoo ablate` end to end on the tiny model: rows from overlays, seeds, mean +- std, resume, errors."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from sepgzoo.cli import main
from sepgzoo.training import engine


def tiny_args(root, output) -> list[str]:
    overrides = [f"data.root={root}", "model.name=test_sepg", "model.parts=4", "model.part_dim=32", "data.height=64",
                 "data.width=32", "data.ids_per_batch=2", "data.images_per_id=2", "data.workers=0", "train.epochs=1",
                 "train.iters_per_epoch=2", "eval.trials=2", "optim.milestones=[]"]
    return ["ablate", "--recipe", "synthetic", "--rows", "baseline,se_paba", "--seeds", "2", "--output", str(output),
            *[arg for o in overrides for arg in ("--set", o)]]


@pytest.fixture(scope="module")
def ablation(sysu_root, tmp_path_factory):
    output = tmp_path_factory.mktemp("ablate") / "table2"
    result = CliRunner().invoke(main, tiny_args(sysu_root, output))
    assert result.exit_code == 0, result.output
    return output, result.output


def test_rows_are_recipe_overlays_with_one_budget_and_distinct_seeds(ablation):
    output, _ = ablation
    recipes = {(row, seed): yaml.safe_load((output / row / f"seed{seed}" / "recipe.yaml").read_text())
               for row in ("baseline", "se_paba") for seed in (0, 1)}
    for (row, seed), recipe in recipes.items():
        assert recipe["model"]["seg"] is (row == "se_paba")
        assert recipe["loss"]["paba"] == (2.5 if row == "se_paba" else 0.0)
        assert recipe["train"]["seed"] == seed and recipe["train"]["epochs"] == 1
        assert recipe["model"]["name"] == "test_sepg"


def test_table_is_the_mean_and_sample_std_of_each_runs_metrics(ablation):
    output, printed = ablation
    table = json.loads((output / "ablation.json").read_text())["results"]
    for row in ("baseline", "se_paba"):
        per_seed = [json.loads((output / row / f"seed{s}" / "metrics.json").read_text())["results"] for s in (0, 1)]
        for setting in ("sysu_all_single", "sysu_indoor_single"):
            for metric in ("R1", "mAP", "mINP"):
                values = np.array([100 * r[setting][metric] for r in per_seed])
                entry = table[setting][row]
                assert entry[f"{metric}_mean"] == pytest.approx(values.mean(), abs=0.01)
                assert entry[f"{metric}_std"] == pytest.approx(values.std(ddof=1), abs=0.01)
    mean, std = table["sysu_all_single"]["se_paba"]["R1_mean"], table["sysu_all_single"]["se_paba"]["R1_std"]
    assert f"| se_paba | {mean:.1f} ± {std:.1f}" in printed
    assert (output / "ablation.md").read_text().startswith("## Ablation of synthetic")
    assert (output / "ablation.png").read_bytes()[:4] == b"\x89PNG"


def test_rerun_trains_only_what_did_not_finish(ablation, sysu_root, monkeypatch):
    output, _ = ablation
    (output / "se_paba" / "seed1" / "metrics.json").unlink()  # as if killed after its last checkpoint
    calls = []
    real_train = engine.train
    monkeypatch.setattr(engine, "train", lambda *a, **k: calls.append(k) or real_train(*a, **k))
    result = CliRunner().invoke(main, tiny_args(sysu_root, output))
    assert result.exit_code == 0, result.output
    assert calls == [{"resume": output / "se_paba" / "seed1"}]
    assert (output / "se_paba" / "seed1" / "metrics.json").is_file()


def test_unknown_row_names_the_shipped_ones(tmp_path):
    result = CliRunner().invoke(main, ["ablate", "--rows", "baseline,se_pab", "--output", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "unknown ablation row 'se_pab' (did you mean 'se_paba'?)" in result.output
    assert not (tmp_path / "x").exists(), "nothing is trained or written before every row is known"
