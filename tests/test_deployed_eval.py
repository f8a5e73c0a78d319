"""`sepgzoo eval --model EXPORT_DIR`: the exported graphs evaluated with the recipe's protocol, through the
deployment runtime; the numbers agree with the checkpoint's and are recorded beside the export."""

import json
from pathlib import Path

import pytest
from test_train import as_args, run_cli, tiny_overrides


@pytest.fixture(scope="module")
def trained_export(sysu_root, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny run trained 2 epochs on the synthetic SYSU tree, and its export (fp32 + fp16)."""
    folder = tmp_path_factory.mktemp("deployed")
    run, export = folder / "run", folder / "export"
    code, out = run_cli("train", "--recipe", "synthetic", *as_args(tiny_overrides(sysu_root)), "--output", str(run))
    assert code == 0, out
    code, out = run_cli("export", "--checkpoint", str(run), "--output", str(export), "--fp16", "--max-batch", "8")
    assert code == 0, out
    return run, export


def settings(output: str) -> dict[str, dict]:
    return json.loads(output)["settings"]


def test_the_fp32_graphs_score_what_the_checkpoint_scores(trained_export):
    run, export = trained_export
    code, checkpoint = run_cli("eval", "--checkpoint", str(run), "--json", "--no-record", stdout_only=True)
    assert code == 0, checkpoint
    code, deployed = run_cli("eval", "--model", str(export), "--json", "--no-record", stdout_only=True)
    assert code == 0, deployed
    expected, got = settings(checkpoint), settings(deployed)
    assert list(got) == ["sysu_all_single", "sysu_indoor_single"] == list(expected)
    for name in expected:  # parity is cosine 1.0000000: the same ranking, so the same numbers
        for metric in ("rank1", "rank5", "mAP", "mINP"):
            assert got[name][metric] == pytest.approx(expected[name][metric], abs=0.01), (name, metric)
    assert json.loads(deployed)["selection"] == "deployed artifact"


def test_the_fp16_graphs_are_evaluated_and_recorded_beside_the_export(trained_export):
    run, export = trained_export
    code, fp32 = run_cli("eval", "--model", str(export), "--json", "--no-record", "--set", "eval.trials=1",
                         stdout_only=True)
    code, out = run_cli("eval", "--model", str(export), "--precision", "fp16", "--json", "--set", "eval.trials=1",
                        stdout_only=True)
    assert code == 0, out
    (record_path,) = json.loads(out)["recorded"]
    record = json.loads(Path(record_path).read_text())
    export_record = json.loads((export / "export.json").read_text())
    assert Path(record_path).parent == export / "evals"
    assert record["artifact"]["precision"] == "fp16" and record["artifact"]["runtime"] == {
        "visible": "CPUExecutionProvider", "infrared": "CPUExecutionProvider"}
    assert record["artifact"]["files"] == {"visible": "visible_fp16.onnx", "infrared": "infrared_fp16.onnx"}
    assert record["artifact"]["sha256"]["visible"] == export_record["sha256"]["visible_fp16.onnx"]
    assert Path(record_path).name.endswith(f".fp16-cpu-{export_record['sha256']['visible_fp16.onnx'][:8]}.json")
    assert record["overrides"] == ["eval.trials=1"]
    for name, values in settings(out).items():  # fp16 graphs: cosine >= 0.9999 to fp32, within a point here
        assert values["mAP"] == pytest.approx(settings(fp32)[name]["mAP"], abs=1.0)
    assert not (run / "evals").exists()  # the run folder is not touched by evaluating its export


@pytest.mark.parametrize("args, message", [
    (["--precision", "int8"], "no INT8 graphs"),
    (["--set", "eval.flip=true"], "no flip TTA"),
    (["--device", "tensorrt"], "TensorRT"),
])
def test_what_an_export_cannot_be_evaluated_with_is_refused_in_one_line(trained_export, args, message):
    _, export = trained_export
    code, out = run_cli("eval", "--model", str(export), *args)
    assert code == 1 and message in out and "Traceback" not in out


def test_checkpoint_and_model_are_exclusive(trained_export):
    run, export = trained_export
    code, out = run_cli("eval", "--checkpoint", str(run), "--model", str(export))
    assert code == 2 and "--model EXPORT_DIR" in out
