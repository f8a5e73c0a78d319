"""Model files given on the command line: a file that is not a sepgzoo model is named in the error."""

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
