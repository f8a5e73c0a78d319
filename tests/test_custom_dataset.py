"""Adding a data set is one file: this module registers "tinyvis" (a reader, a protocol, settings) exactly as a
data set module under sepgzoo/data/ would, then trains, evaluates and inspects it through the normal paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sepgzoo.cli import main
from sepgzoo.config import load_recipe
from sepgzoo.data.datasets import INFRARED, VISIBLE, Sample, check_paired, parse_camera, read_id_line, relabel
from sepgzoo.data.protocols import AllPairsProtocol
from sepgzoo.data.registry import DatasetSpec, get_dataset, register_dataset
from sepgzoo.errors import UserError
from sepgzoo.hub.checkpoint import read_meta
from sepgzoo.training import engine


# -- the data set "file": a 15-line reader of any cam<N>/<PPPP>/*.jpg tree (cams 3 and 6 infrared) --------------------
class TinyVIS:
    """Identities listed in exp/test_id.txt are the test set, all others train."""

    name = "tinyvis"

    def __init__(self, root: str | Path, skip_unpaired: bool = False) -> None:
        root = Path(root)
        test_ids = set(read_id_line(root / "exp" / "test_id.txt"))
        samples = []
        for path in sorted(root.glob("cam*/*/*.jpg")):
            cam = parse_camera(path)
            samples.append(Sample(str(path), int(path.parent.name), cam, INFRARED if cam in (3, 6) else VISIBLE))
        self.train = relabel(check_paired([s for s in samples if s.pid not in test_ids], str(root), skip_unpaired))
        self.test = [s for s in samples if s.pid in test_ids]


def tinyvis_i2v(dataset: TinyVIS) -> AllPairsProtocol:
    """Every infrared test image against every visible one; standard CMC, nothing removed."""
    query = [s for s in dataset.test if s.modality == INFRARED]
    gallery = [s for s in dataset.test if s.modality == VISIBLE]
    return AllPairsProtocol("tinyvis_i2v", "standard", query, gallery, INFRARED, VISIBLE, num_trials=1,
                            options={"dataset": "tinyvis", "removal": "none", "cmc": "standard"})


register_dataset(DatasetSpec(name="tinyvis", reader=TinyVIS, protocols={"tinyvis_i2v": tinyvis_i2v},
                             settings=lambda eval_cfg: [("tinyvis_i2v", {})]))
# -- end of the data set "file" ----------------------------------------------------------------------------------------


def tiny(root: Path) -> list[str]:
    return [f"data.root={root}", "data.dataset=tinyvis", "model.name=test_sepg", "model.parts=4", "model.part_dim=32",
            "data.height=64", "data.width=32", "data.ids_per_batch=2", "data.images_per_id=2", "data.workers=0",
            "train.epochs=1", "train.iters_per_epoch=2", "optim.milestones=[]"]


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def test_a_registered_dataset_trains_and_evaluates_through_the_recipe(sysu_root, tmp_path):
    recipe = load_recipe("synthetic", tiny(sysu_root))
    assert recipe.data.dataset == "tinyvis"
    run = engine.train(recipe, output=tmp_path / "run")
    meta = read_meta(run)
    assert meta["recipe"]["data"]["dataset"] == "tinyvis" and set(meta["metrics"]) == {"tinyvis_i2v"}
    test_ids = set(read_id_line(sysu_root / "exp" / "test_id.txt"))
    assert meta["num_train_ids"] == len({int(p.name) for p in sysu_root.glob("cam*/*")} - test_ids)

    code, out = run_cli("eval", "--checkpoint", str(run), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["protocol"] == "tinyvis_i2v" and 0.0 <= report["rank1"] <= 100.0
    queries = [p for cam in (3, 6) for p in sysu_root.glob(f"cam{cam}/*/*.jpg") if int(p.parent.name) in test_ids]
    metrics = json.loads((run / "metrics.json").read_text())["results"]["tinyvis_i2v"]
    assert metrics["num_query"] == len(queries) and metrics["options"]["cmc"] == "standard"


def test_the_data_commands_know_a_registered_dataset(sysu_root):
    from sepgzoo.cli import main

    result = CliRunner().invoke(main, ["data", "stats", "tinyvis", "--root", str(sysu_root), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["protocol"] == "tinyvis_i2v"
    result = CliRunner().invoke(main, ["data", "check", "tinyvis", "--root", str(sysu_root)])
    assert result.exit_code == 1 and "no known counts" in result.output
    assert "known for: llcm, regdb, sysu" in result.output


def test_unknown_dataset_names_data_dataset_and_the_registered_ones():
    with pytest.raises(UserError, match=r"data.dataset = 'tinyvs': unknown data set 'tinyvs' \(did you mean 'tinyvis'"
                                        r"\?\); registered: llcm, regdb, synthetic, sysu, tinyvis"):
        load_recipe("synthetic", ["data.dataset=tinyvs"])
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(get_dataset("tinyvis"))


def test_a_data_set_file_in_the_package_registers_itself_without_touching_any_other_file():
    """`sepgzoo.data` imports every module in its folder: a new data set module needs no import line elsewhere."""
    import subprocess
    import sys
    from pathlib import Path

    import sepgzoo.data

    folder = Path(sepgzoo.data.__file__).parent
    plugin = folder / "zz_test_plugin_dataset.py"
    plugin.write_text("from sepgzoo.data.registry import DatasetSpec, register_dataset\n"
                      "register_dataset(DatasetSpec(name='zzplugin', title='ZZ', reader=dict, protocols={},\n"
                      "                             settings=lambda eval_cfg: []))\n")
    try:
        script = "import sepgzoo.data\nfrom sepgzoo.data.registry import dataset_names\nprint('zzplugin' in dataset_names())"
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    finally:
        plugin.unlink()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
