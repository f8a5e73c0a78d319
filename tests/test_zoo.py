"""The model zoo: manifest and README, publish -> load round trip, hash and architecture checks, the demo model."""

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from sepgzoo import create_model
from sepgzoo.cli import main
from sepgzoo.config import load_recipe
from sepgzoo.errors import UserError
from sepgzoo.evaluation.evaluate import evaluate_run
from sepgzoo.evaluation.records import write_training_record
from sepgzoo.hub.checkpoint import load_model, save_model
from sepgzoo.hub.zoo import load_manifest, load_pretrained, materialise, publish, render_readme, weights_dir
from sepgzoo.utils.hashing import sha256_file

TINY = ["model.name=test_sepg", "model.parts=4", "model.part_dim=32", "data.height=64", "data.width=32",
        "eval.trials=2", "data.workers=0"]


@pytest.fixture(scope="module")
def evaluated_run(sysu_root, tmp_path_factory):
    """A saved tiny model with its recipe, evaluated on the synthetic SYSU tree (no training needed here)."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("zoo") / "run"
    recipe = load_recipe("synthetic", [*TINY, f"data.root={sysu_root}"])
    model = create_model("test_sepg", num_classes=8, parts=4, part_dim=32, input_size=(64, 32))
    save_model(run, model, recipe=recipe.to_dict(), epoch=1, selection="last epoch", hardware="test CPU")
    write_training_record(run, evaluate_run(run))  # as `sepgzoo train` ends
    return run


def test_shipped_manifest_matches_its_files_and_readme():
    entries = load_manifest()
    assert entries, "weights/manifest.json ships at least the demo model"
    for name, entry in entries.items():
        assert name == f"{entry.model}.{entry.tag}"
        if entry.file:
            path = weights_dir() / entry.file
            assert sha256_file(path) == entry.sha256 and path.stat().st_size == entry.size_bytes
        assert set(entry.input) == {"height", "width", "mean", "std"}
        for metrics in entry.metrics.values():
            assert set(metrics) >= {"rank1", "mAP", "mINP"}
    assert (weights_dir() / "README.md").read_text() == render_readme(entries), "run `sepgzoo zoo readme`"


def test_publish_then_load_by_name_gives_identical_embeddings(evaluated_run, tmp_path):
    entry = publish(evaluated_run, "synthtest", directory=tmp_path)
    assert entry.name == "test_sepg.synthtest" and (tmp_path / entry.file).is_file()
    assert entry.metrics == json.loads((evaluated_run / "model.json").read_text())["metrics"]
    assert entry.protocol["sysu_all_single"]["sampler"] == "agw" and entry.hardware == "test CPU"
    assert (tmp_path / "README.md").read_text() == render_readme(load_manifest(tmp_path))
    original, _ = load_model(evaluated_run)
    loaded = load_pretrained(entry.name, directory=tmp_path)
    x = torch.rand(3, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, "visible"), original(x, "visible"), rtol=0, atol=0)


def test_tampered_weights_are_refused(evaluated_run, tmp_path):
    entry = publish(evaluated_run, "tampered", directory=tmp_path)
    data = bytearray((tmp_path / entry.file).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / entry.file).write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256 .* does not match the manifest"):
        materialise(entry.name, tmp_path)
    (tmp_path / entry.file).unlink()
    with pytest.raises(UserError, match="is missing"):
        materialise(entry.name, tmp_path)


def test_a_materialised_folder_is_reused_without_hashing_or_copying_again(evaluated_run, tmp_path, monkeypatch):
    import sepgzoo.hub.zoo as zoo_module

    entry = publish(evaluated_run, "reused", directory=tmp_path)
    folder = materialise(entry.name, tmp_path)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(zoo_module, "sha256_file", lambda path: pytest.fail("hashed again"))
    assert materialise(entry.name, tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    (folder / "model.json").unlink()  # an incomplete folder is verified and written again
    monkeypatch.undo()
    assert materialise(entry.name, tmp_path) == folder and (folder / "model.json").is_file()


def test_weights_into_the_wrong_architecture_are_refused(evaluated_run, tmp_path):
    entry = publish(evaluated_run, "wrong", directory=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["models"][entry.name]["model_args"]["num_classes"] = 9  # another class count than the weights
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="does not fit model test_sepg"):
        load_pretrained(entry.name, directory=tmp_path)
    manifest["models"][entry.name]["model_args"]["num_classes"] = 8
    manifest["models"][entry.name]["embedding_dim"] = 999
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="999"):
        load_pretrained(entry.name, directory=tmp_path)


def test_publish_refuses_unevaluated_and_test_selected_runs(evaluated_run, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(evaluated_run, bare)
    (bare / "metrics.json").unlink()
    with pytest.raises(UserError, match="has no training evaluation"):
        publish(bare, "x", directory=tmp_path)
    retrained = tmp_path / "retrained"
    shutil.copytree(evaluated_run, retrained)
    weights = bytearray((retrained / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # other weights than the record was computed from
    (retrained / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(UserError, match="the record is not of these weights"):
        publish(retrained, "x", directory=tmp_path)
    selected = tmp_path / "selected"
    shutil.copytree(evaluated_run, selected)
    meta = json.loads((selected / "model.json").read_text())
    (selected / "model.json").write_text(json.dumps({**meta, "selection": "best on the test set"}))
    with pytest.raises(UserError, match="--allow-test-selected"):
        publish(selected, "x", directory=tmp_path)
    assert "test-selected" in publish(selected, "x", directory=tmp_path, allow_test_selected=True).selection


def test_unknown_zoo_name_lists_the_available_ones():
    with pytest.raises(UserError, match="no released weights named 'sepg_resnet50.nope'; available"):
        create_model("sepg_resnet50.nope", pretrained=True)


def test_zoo_cli_list_json_and_publish(evaluated_run, tmp_path):
    result = CliRunner().invoke(main, ["zoo", "list", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert {e["name"] for e in listed} == set(load_manifest()) and all(len(e["sha256"]) == 64 for e in listed)
    result = CliRunner().invoke(main, ["zoo", "publish", str(evaluated_run), "--tag", "cli", "--weights-dir",
                                       str(tmp_path)])
    assert result.exit_code == 0 and "published test_sepg.cli" in result.output
    result = CliRunner().invoke(main, ["zoo", "readme", "--check"])
    assert result.exit_code == 0, result.output


def test_demo_model_loads_and_its_metrics_match_a_fresh_evaluation():
    """The shipped demo model, re-evaluated on a freshly generated synthetic test split (same ids and seed)."""
    from sepgzoo.config import recipe_from_dict
    from sepgzoo.evaluation.evaluate import evaluate_model
    from sepgzoo.evaluation.report import summarise

    demo = next(e for e in load_manifest().values() if e.dataset == "synthetic")
    assert "synthetic" in demo.notes.lower()
    model = create_model(demo.name, pretrained=True)
    recipe = recipe_from_dict(demo.recipe_resolved, ["data.root=null", "data.workers=0"])
    fresh = summarise(evaluate_model(model, recipe))
    for setting, recorded in demo.metrics.items():
        assert fresh[setting]["rank1"] == pytest.approx(recorded["rank1"], abs=1.0), setting
        assert fresh[setting]["mAP"] == pytest.approx(recorded["mAP"], abs=1.0), setting


def test_weights_option_on_eval_and_embed(sysu_root):
    demo = next(e for e in load_manifest().values() if e.dataset == "synthetic")
    image = str(next((sysu_root / "cam3").rglob("*.jpg")))
    result = CliRunner().invoke(main, ["embed", "--weights", demo.name, "--modality", "infrared", "--json", image])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["embeddings"][0]) == demo.embedding_dim
    result = CliRunner().invoke(main, ["eval", "--weights", demo.name, "--json", "--set", "eval.trials=1",
                                       "--set", f"data.root={sysu_root}"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["protocol"] == "sysu_all_single"
    result = CliRunner().invoke(main, ["embed", "--weights", demo.name, "--checkpoint", str(sysu_root), image])
    assert result.exit_code != 0 and "not both" in result.output
