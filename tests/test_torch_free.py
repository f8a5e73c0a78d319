"""The deployment side installs and runs without PyTorch: a fresh venv with export/requirements-runtime.txt and
`pip install --no-deps` of the project runs `embed --model`, `eval --model` and `engine build`."""

import json
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_train import tiny_overrides

from sepgzoo.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def torch_free_python(tmp_path_factory) -> Path:
    """A venv holding only the runtime requirements and the project (no dependencies resolved by pip for it)."""
    env = tmp_path_factory.mktemp("torchfree") / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    for args in (["-r", str(ROOT / "export" / "requirements-runtime.txt")], ["--no-deps", "-e", str(ROOT)]):
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", *args], capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0
    return python


@pytest.fixture(scope="module")
def export_dir(sysu_root, tmp_path_factory) -> Path:
    """A tiny model saved with the synthetic recipe (on the test SYSU tree) and exported, in this (torch) venv."""
    import torch

    from sepgzoo.config import load_recipe
    from sepgzoo.hub.checkpoint import save_model
    from sepgzoo.hub.factory import create_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("torchfree-export")
    recipe = load_recipe("synthetic", tiny_overrides(sysu_root))
    model = create_model("test_sepg", num_classes=8, parts=4, part_dim=32, input_size=(64, 32))
    save_model(folder / "run", model, recipe=recipe.to_dict(), epoch=1)
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(folder / "run"), "--output",
                                       str(folder / "export"), "--max-batch", "4"])
    assert result.exit_code == 0, result.output
    return folder / "export"


def sepgzoo(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "sepgzoo", *args], capture_output=True, text=True, timeout=300)


def test_embed_and_eval_run_without_torch_and_agree_with_this_venv(torch_free_python, export_dir, sysu_root):
    from sepgzoo.deploy.runtime import open_model

    image = str(next((sysu_root / "cam3").rglob("*.jpg")))
    done = sepgzoo(torch_free_python, "embed", "--model", str(export_dir / "infrared.onnx"), "--json", image)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = open_model(export_dir, "infrared").embed_paths([image])
    np.testing.assert_allclose(np.array(json.loads(done.stdout)["embeddings"]), expected, atol=1e-6)

    args = ["eval", "--model", str(export_dir), "--json", "--no-record", "--set", "eval.trials=1"]
    done = sepgzoo(torch_free_python, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    here = CliRunner().invoke(main, args)
    assert json.loads(done.stdout)["settings"] == json.loads(here.stdout)["settings"]


def test_engine_build_without_tensorrt_writes_the_trtexec_script_and_says_so(torch_free_python, export_dir):
    done = sepgzoo(torch_free_python, "engine", "build", str(export_dir))
    assert done.returncode == 1 and "TensorRT is not installed" in done.stderr
    script = (export_dir / "build_engines.sh").read_text()
    assert "--onnx=visible.onnx" in script and "--timingCacheFile=timing.cache" in script
    assert "Traceback" not in done.stderr
