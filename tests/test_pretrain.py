"""`sepgzoo pretrain`: disjoint synthetic identities, a weights file that the real loading path reads, the CLI."""

import json

import pytest
import safetensors.torch
import timm
import torch
from click.testing import CliRunner

from sepgzoo.cli import main
from sepgzoo.config import load_recipe
from sepgzoo.data.synthetic import COMBOS, identity_combos, make_identities
from sepgzoo.errors import UserError
from sepgzoo.models.sepg import SEPGNet
from sepgzoo.models.split import create_backbone
from sepgzoo.training import pretrain as pretrain_module
from sepgzoo.training.build import build_model
from sepgzoo.training.pretrain import pretrain_backbone, summary_path

TINY = dict(ids=10, epochs=3, height=32, width=16, images_per_id=8, batch_size=16, pad=2)
CLI_TINY = ["--ids", "6", "--epochs", "1", "--size", "32", "16", "--images-per-id", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """(weights path, the identities it was trained on) of a tiny test_resnet pretraining run."""
    seen = []

    def spy(people, *args):
        seen.extend(people)
        return render_visible(people, *args)

    render_visible = pretrain_module.render_visible
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrain_module, "render_visible", spy)
        path = pretrain_backbone("test_resnet", tmp_path_factory.mktemp("pretrain") / "tiny.safetensors", **TINY)
    return path, seen


def saved_tensors(path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path))


def test_the_demo_evaluation_set_is_what_is_excluded_by_default():
    assert load_recipe("synthetic").data.synthetic_ids == 48  # the CLI's --exclude-ids default
    combos = identity_combos(48, 0)
    assert len(combos) == 48 and combos <= set(COMBOS)
    assert combos == {person.combo for person in make_identities(48, 0)}  # what write_synthetic draws


def test_pretraining_identities_are_disjoint_from_the_evaluation_set(tiny_run):
    _, people = tiny_run
    assert len(people) == TINY["ids"] and not {p.combo for p in people} & identity_combos(48, 0)
    many = make_identities(1000, seed=1, exclude=identity_combos(200, seed=5))
    assert len({p.combo for p in many}) == 1000 and not {p.combo for p in many} & identity_combos(200, seed=5)
    with pytest.raises(UserError, match=r"--ids 1393 .* at most 1392 \(48 of 1440 cue combinations excluded\)"):
        make_identities(1393, seed=1, exclude=identity_combos(48, 0))


def test_summary_records_the_run_and_the_loss_decreases(tiny_run):
    path, _ = tiny_run
    summary = json.loads(summary_path(path).read_text())
    assert summary["format"] == "sepgzoo.training.pretrain" and summary["weights"] == path.name
    assert summary["identities"] == 10 and summary["images"] == 80 and summary["epochs"] == 3
    assert summary["excluded_combos"] == 48 and summary["exclude"] == {"ids": 48, "seed": 0}
    assert 0.0 <= summary["train_accuracy"] <= 1.0 and summary["seconds"] > 0
    assert summary["history"][-1]["loss"] < summary["history"][0]["loss"]


def test_the_file_loads_through_create_backbone(tiny_run):
    path, _ = tiny_run
    saved = saved_tensors(path)
    backbone = create_backbone("test_resnet", file=str(path))
    loaded = backbone.state_dict()
    assert loaded.keys() == saved.keys()
    for key, value in loaded.items():
        torch.testing.assert_close(value, saved[key], msg=key)
    assert saved["fc.weight"].shape == timm.create_model("test_resnet").fc.weight.shape  # default classifier
    assert not torch.equal(create_backbone("test_resnet").conv1[0].weight, saved["conv1.0.weight"])


def assert_sepg_holds_the_file(model: SEPGNet, saved: dict[str, torch.Tensor]) -> None:
    """Every trunk tensor equals the file's (stem..layer3), and both modality copies of layer4 do too."""
    names = [name for name, _ in timm.create_model("test_resnet").named_children()]
    for name, module in zip(names, model.trunk):
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, saved[f"{name}.{key}"], msg=f"{name}.{key}")
    for modality in ("visible", "infrared"):
        for key, value in model.specific[modality][0].state_dict().items():
            torch.testing.assert_close(value, saved[f"layer4.{key}"], msg=f"{modality} layer4.{key}")
    assert len(model.trunk) == names.index("layer3") + 1


def test_sepg_net_and_the_recipe_model_start_from_the_file(tiny_run):
    path, _ = tiny_run
    saved = saved_tensors(path)
    assert_sepg_holds_the_file(SEPGNet(backbone="test_resnet", pretrained=str(path), num_classes=4, parts=6,
                                       part_dim=64, input_size=(32, 16)), saved)
    recipe = load_recipe("synthetic", [f"model.pretrained={path}"])
    assert_sepg_holds_the_file(build_model(recipe.model, 4, (recipe.data.height, recipe.data.width)), saved)


def test_cli_writes_weights_and_prints_the_next_command(tmp_path):
    out = tmp_path / "w.safetensors"
    result = CliRunner().invoke(main, ["pretrain", "--out", str(out), *CLI_TINY])
    assert result.exit_code == 0, result.output
    assert f"next: sepgzoo train --recipe synthetic --set model.pretrained={out}" in result.output
    assert out.is_file() and summary_path(out).is_file()
    again = CliRunner().invoke(main, ["pretrain", "--out", str(out), *CLI_TINY])
    assert again.exit_code != 0 and again.output.strip() == f"Error: --out {out} exists; pass --force to overwrite it"
    forced = CliRunner().invoke(main, ["pretrain", "--out", str(out), "--force", *CLI_TINY])
    assert forced.exit_code == 0, forced.output


@pytest.mark.parametrize("args, message", [
    (["--backbone", "resnet_nope"], "unknown timm backbone 'resnet_nope'"),
    (["--ids", "1393"], "--ids 1393 is too many for synthetic data; expected at most 1392"),
    (["--ids", "1100"], "--ids 1100 is more than the 1000 classes of test_resnet's classifier"),
    (["--ids", "1"], "--ids 1 is too small; expected at least 2"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    result = CliRunner().invoke(main, ["pretrain", "--out", str(tmp_path / "w.safetensors"), *args])
    assert result.exit_code != 0 and message in result.output
    assert result.output.strip().count("\n") == 0 and result.output.startswith("Error: ")
    assert not (tmp_path / "w.safetensors").exists()


def test_out_must_be_a_safetensors_file(tmp_path):
    with pytest.raises(UserError, match=r"must be a \.safetensors file"):
        pretrain_backbone("test_resnet", tmp_path / "w.pth", **TINY)
