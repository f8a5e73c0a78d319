"""Model files given on the command line: a file that is not a sepgzoo model is named in the error."""

import pytest
from click.testing import CliRunner

from sepgzoo.cli import main


def test_eval_with_a_file_that_is_not_a_model_names_that_file(tmp_path):
    stray = tmp_path / "some_file.pt"
    stray.write_bytes(b"\x80\x02not a model")
    (tmp_path / "model.safetensors").write_bytes(b"")  # a model file beside it must not be picked instead
    result = CliRunner().invoke(main, ["eval", "--checkpoint", str(stray)])
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and "Traceback" not in result.output and len(lines) == 1
    assert f"{stray} is not a sepgzoo model file" in lines[0] and "model.safetensors" in lines[0]


def test_a_model_carries_one_resolved_configuration_that_save_and_load_round_trip(tmp_path):
    from sepgzoo.hub.checkpoint import load_model, save_model
    from sepgzoo.hub.factory import create_model

    model = create_model("test_sepg", num_classes=5, parts=4, part_dim=32, classifier="linear")
    config = model.config
    assert config.name == "test_sepg" and config.input_size == (64, 32)
    assert config.args == {"num_classes": 5, "parts": 4, "part_dim": 32, "classifier": "linear", "part_norm": "joint"}
    assert config.mean == pytest.approx(tuple(model.mean.flatten().tolist()))
    save_model(tmp_path, model, epoch=1)
    loaded, meta = load_model(tmp_path)
    assert loaded.config == config  # the file says everything that defined the model, nothing patched on later
    assert meta["model_args"]["part_norm"] == "joint" and meta["input_size"] == [64, 32]
