"""Recipes: base merge, --set parsing and coercion, unknown keys with suggestions, shipped recipes."""

import warnings

import pytest
import yaml

from sepgzoo.config import available_recipes, build_recipe, load_recipe, parse_override
from sepgzoo.errors import RecipeWarning, UserError


def test_paper_recipe_values():
    r = load_recipe("sysu")
    assert (r.data.height, r.data.width, r.data.ids_per_batch, r.data.images_per_id) == (288, 144, 8, 7)
    assert (r.optim.lr, r.optim.milestones, r.optim.gamma, r.train.epochs) == (0.03, [30, 70], 0.1, 120)
    assert (r.model.backbone, r.model.pretrained, r.model.parts, r.model.seg) == ("resnet50", "imagenet", 12, True)
    assert (r.loss.id_specific, r.loss.paba, r.loss.id_parts, r.loss.margin) == (1.0, 2.5, 1.0, 0.5)


def test_ablation_rows_differ_only_where_table_ii_says():
    full = load_recipe("sysu").to_dict()
    rows = {name: load_recipe(name).to_dict() for name in ("sysu_baseline", "sysu_se", "sysu_se_cc", "sysu_se_paba")}
    def diff(d):
        return {(s, k): v for s in d if isinstance(d[s], dict) for k, v in d[s].items() if full[s][k] != v}
    assert diff(rows["sysu_baseline"]) == {("model", "seg"): False, ("loss", "paba"): 0.0}
    assert diff(rows["sysu_se"]) == {("loss", "paba"): 0.0}
    assert diff(rows["sysu_se_cc"]) == {("loss", "paba"): 0.0, ("loss", "cross_centre"): 2.5}
    assert diff(rows["sysu_se_paba"]) == {}


def test_every_shipped_recipe_resolves():
    assert {"sysu", "regdb", "llcm", "synthetic", "sysu_baseline"} <= set(available_recipes())
    for name in available_recipes():
        assert load_recipe(name).name == name


def test_overrides_are_yaml_typed_and_take_precedence(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("train: {epochs: 7, seed: 3}\noptim: {milestones: [1, 2]}\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\ntrain: {epochs: 9}\n")
    r = load_recipe(str(child), ["optim.milestones=[4,5]", "train.amp=false", "optim.lr=1e-2", "data.root=/x y"])
    assert (r.train.epochs, r.train.seed) == (9, 3)  # dicts deep-merge
    assert r.optim.milestones == [4, 5] and r.train.amp is False and r.optim.lr == 0.01 and r.data.root == "/x y"
    assert load_recipe(str(child), ["optim.lr=1"]).optim.lr == 1.0  # int -> float field
    assert yaml.safe_load(r.to_yaml())["train"]["epochs"] == 9


def test_override_values_are_never_evaluated():
    assert parse_override("data.root=__import__('os').system('x')")[2] == "__import__('os').system('x')"
    with pytest.raises(UserError, match="expected int"):
        load_recipe("sysu", ["train.epochs=2+3"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=5", r"unknown recipe key train.epoch \(did you mean 'epochs'\?\)"),
        ("trian.epochs=5", r"unknown recipe section 'trian' \(did you mean 'train'\?\)"),
        ("model.seg=maybe", "model.seg = 'maybe': expected true or false"),
        ("eval.mode=outdoor", "eval.mode = 'outdoor': expected one of"),
        ("train.epochs", "expected section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(UserError, match=message):
        load_recipe("sysu", [override])


def test_unknown_recipe_lists_the_available_ones(tmp_path):
    with pytest.raises(UserError, match=r"unknown recipe 'sysuu' \(did you mean 'sysu'\?\); available: .*regdb"):
        load_recipe("sysuu")
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(str(bad))


def test_build_recipe_round_trip():
    r = load_recipe("regdb", ["data.trial=4"])
    assert build_recipe(r.to_dict()) == r


def test_data_dataset_is_checked_against_the_registry():
    with pytest.raises(UserError, match=r"data.dataset = 'regbd': unknown data set 'regbd' \(did you mean 'regdb'\?\); "
                                        r"registered: llcm, regdb, synthetic, sysu"):
        load_recipe("sysu", ["data.dataset=regbd"])
    assert load_recipe("sysu", ["data.dataset=SYSU_MM01"]).data.dataset == "sysu"  # aliases become the name


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=-1", "train.epochs = -1: expected >= 1"),
        ("data.ids_per_batch=0", "data.ids_per_batch = 0: expected >= 1"),
        ("data.images_per_id=0", "data.images_per_id = 0: expected >= 1"),
        ("data.flip=1.5", "data.flip = 1.5: expected a probability in [0, 1]"),
        ("data.erasing=-0.1", "data.erasing = -0.1: expected a probability in [0, 1]"),
        ("data.height=8", "data.height = 8: expected >= 32"),
        ("optim.lr=0", "optim.lr = 0.0: expected > 0"),
        ("model.dropout=1.0", "model.dropout = 1.0: expected in [0, 1)"),
        ("optim.milestones=[70,30]", "optim.milestones = [70, 30]: expected strictly increasing epochs >= 1"),
        ("optim.milestones=[0,30]", "optim.milestones = [0, 30]: expected strictly increasing epochs >= 1"),
        ("optim.milestones=[30,30]", "optim.milestones = [30, 30]: expected strictly increasing epochs >= 1"),
        ("eval.trials=0", "eval.trials = 0: expected >= 1"),
    ],
)
def test_values_outside_their_domain_name_the_key_and_what_is_allowed(override, message):
    with pytest.raises(UserError) as info:
        load_recipe("sysu", [override])
    assert message in str(info.value)


def test_every_domain_names_an_existing_key():
    from sepgzoo.config import DOMAINS, SECTIONS

    for key in DOMAINS:
        section, name = key.split(".")
        assert name in SECTIONS[section].__dataclass_fields__, key


def test_a_bad_recipe_or_data_root_writes_no_run_folder(tmp_path):
    from click.testing import CliRunner

    from sepgzoo.cli import main

    for override, expected in (("train.epochs=-1", "train.epochs = -1"),
                               (f"data.root={tmp_path / 'nowhere'}", "does not exist")):
        out = tmp_path / "run"
        result = CliRunner().invoke(main, ["train", "--recipe", "sysu", "--set", override, "--output", str(out)])
        assert result.exit_code != 0 and expected in result.output and "Traceback" not in result.output
        assert not out.exists()


def test_recipes_keys_lists_every_key_with_its_default_and_domain():
    from click.testing import CliRunner

    from sepgzoo.cli import main
    from sepgzoo.config import SECTIONS

    result = CliRunner().invoke(main, ["recipes", "--keys"])
    lines = result.output.splitlines()
    every = [f"{section}.{name}" for section, cls in SECTIONS.items() for name in cls.__dataclass_fields__]
    assert result.exit_code == 0 and [line.split()[0] for line in lines] == every
    epochs = next(line for line in lines if line.startswith("train.epochs "))
    assert "120" in epochs and "int >= 1" in epochs and "training epochs" in epochs
    assert "cosine | linear" in next(line for line in lines if line.startswith("model.classifier "))


@pytest.mark.parametrize("name", available_recipes())
def test_every_shipped_recipe_accepts_a_two_epoch_run_with_one_warning_naming_the_milestones(name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recipe = load_recipe(name, ["train.epochs=2"])
    assert recipe.train.epochs == 2
    late = [m for m in recipe.optim.milestones if m >= 2]
    recipe_warnings = [w for w in caught if issubclass(w.category, RecipeWarning)]
    assert len(recipe_warnings) == (1 if late else 0)
    if late:
        assert f"optim.milestones {late}" in str(recipe_warnings[0].message)


def test_milestones_below_the_last_epoch_give_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecipeWarning)
        assert load_recipe("sysu").optim.milestones == [30, 70]


def test_the_cli_prints_the_milestone_warning_as_one_line():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "sepgzoo", "train", "--recipe", "synthetic", "--set",
                             "train.epochs=2", "--print-recipe"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "epochs: 2" in result.stdout
    lines = [line for line in result.stderr.splitlines() if "optim.milestones" in line or "Warning" in line]
    assert lines == ["warning: optim.milestones [80, 105] lie at or past train.epochs = 2: "
                     "the lr is never decayed there"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.compile=true", "train.log_grad_norms=true"],
         "train.compile and train.log_grad_norms cannot be combined"),
        (["loss.id_specific=0", "loss.paba=0", "loss.id_parts=0"], "expected at least one loss term"),
    ],
)
def test_cross_key_rules_name_every_key(overrides, message):
    with pytest.raises(UserError, match=message):
        load_recipe("synthetic", overrides)
