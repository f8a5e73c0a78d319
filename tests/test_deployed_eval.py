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
    (["--precision", "int8"], "lists no int8 graph for visible (export again with --int8)"),
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


@pytest.fixture(scope="module")
def int8_export(trained_export, tmp_path_factory) -> tuple[Path, str]:
    """The trained tiny run exported with --int8 (16 calibration images per modality) into a fresh folder.

    The tiny test split has 28 queries, so one query moves Rank-1 by 3.6 points: the gate's 1 point cannot be met
    there by any quantization. The gate is therefore run with 4 points here (its refusal below uses the real
    logic); the 1-point gate on real-sized data is measured in docs/deployment.md.
    """
    import functools

    from sepgzoo.evaluation import deployed

    run, _ = trained_export
    export = tmp_path_factory.mktemp("int8") / "export"
    patch = pytest.MonkeyPatch()
    patch.setattr(deployed, "gate_precisions", functools.partial(deployed.gate_precisions, tolerance=4.0))
    try:
        code, out = run_cli("export", "--checkpoint", str(run), "--output", str(export), "--max-batch", "8", "--int8",
                            "--calib-images", "16")
    finally:
        patch.undo()
    assert code == 0, out
    return export, out


def test_int8_graphs_are_quantized_convolutions_only_recorded_and_gated(int8_export):
    import onnx

    export, out = int8_export
    record = json.loads((export / "export.json").read_text())
    assert record["quantization"]["calibration_images"] == {"visible": 16, "infrared": 16}
    assert record["quantization"]["seed"] == 0 and record["quantization"]["format"] == "QDQ"
    for modality in ("visible", "infrared"):
        for flavour, activation in (("int8", onnx.TensorProto.INT8), ("int8-cpu", onnx.TensorProto.UINT8)):
            name = record["files"][modality][flavour]
            graph = onnx.load(str(export / name)).graph
            producers = {o: n for n in graph.node for o in n.output}
            zero_points = {init.name: init for init in graph.initializer}
            weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in zero_points}
            activations = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"} - weights
            with_int8_weights = {n.op_type for n in graph.node if any(i in weights for i in n.input)}
            assert with_int8_weights == {"Conv"}, (name, with_int8_weights)  # only convolutions are quantized
            fed = {n.op_type for n in graph.node if any(i in activations for i in n.input)}
            assert not fed & {"MatMul", "Gemm", "ReduceL2", "LpNormalization"}, (name, fed)  # SEG, heads, norm: float
            assert producers
            acts = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in zero_points]
            assert acts and all(zero_points[q.input[2]].data_type == activation for q in acts)
            if flavour == "int8":  # TensorRT needs symmetric quantization: every zero point 0
                assert all(not onnx.numpy_helper.to_array(zero_points[q.input[2]]).any() for q in acts)
            assert record["parity"][modality][flavour]["passed"]
    assert record["int8_gate"]["tolerance_points"] == 4.0
    gate = record["int8_gate"]["metrics_percent"]
    for precision in ("int8", "int8-cpu"):
        for setting, fp32 in gate["fp32"].items():
            assert fp32["rank1"] - gate[precision][setting]["rank1"] <= 4.0
            assert fp32["mAP"] - gate[precision][setting]["mAP"] <= 4.0
            assert f"{precision} {setting}: R1 {gate[precision][setting]['rank1']:.2f} (fp32 {fp32['rank1']:.2f})" in out


def test_an_int8_graph_is_evaluated_through_the_runtime_as_the_gate_says(int8_export):
    export, _ = int8_export
    code, out = run_cli("eval", "--model", str(export), "--precision", "int8-cpu", "--json", "--no-record",
                        stdout_only=True)
    assert code == 0, out
    gate = json.loads((export / "export.json").read_text())["int8_gate"]["metrics_percent"]["int8-cpu"]
    for setting, values in settings(out).items():
        assert values["rank1"] == pytest.approx(gate[setting]["rank1"], abs=0.01)
        assert values["mAP"] == pytest.approx(gate[setting]["mAP"], abs=0.01)


def test_an_int8_export_below_the_gate_fails_with_both_numbers_and_leaves_the_export(int8_export, monkeypatch):
    import functools

    from sepgzoo.evaluation import deployed

    export, _ = int8_export
    before = {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()}
    strict = functools.partial(deployed.gate_precisions, tolerance=-100.0)  # "100 points better than fp32"
    monkeypatch.setattr(deployed, "gate_precisions", strict)
    from sepgzoo.errors import UserError
    from sepgzoo.evaluation.deployed import export_int8

    with pytest.raises(UserError, match=r"accuracy gate: .*int8 sysu_all_single R1 [\d.]+ against fp32 [\d.]+"):
        export_int8(export, count=8)
    assert {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()} == before
    assert not [p for p in export.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_bench_infer_times_every_precision_the_export_holds(int8_export):
    export, _ = int8_export
    code, out = run_cli("bench", "infer", "--export", str(export), "--batch", "1", "--batch", "2", "--iters", "1",
                        "--warmup", "0", "--json", stdout_only=True)
    assert code == 0, out
    rows = json.loads(out)["results"]
    seen = {(r["backend"], r["modality"], r["batch"]) for r in rows}
    assert seen == {(f"onnxruntime {p}", m, b) for p in ("fp32", "int8", "int8-cpu") for m in ("visible", "infrared")
                    for b in (1, 2)}
    assert all(r["device"] == "CPUExecutionProvider" and r["images_per_s"] > 0 for r in rows)


# ---------------------------------------------------------------------------------------------------------------
# export --dim: a PCA projection folded into the graphs
# ---------------------------------------------------------------------------------------------------------------
def test_projected_graphs_are_the_training_pca_applied_to_the_fp32_embeddings(trained_export, tmp_path):
    import functools
    import shutil

    import numpy as np
    import onnx
    from onnx import numpy_helper

    from sepgzoo.config import recipe_from_dict
    from sepgzoo.deploy.ort_runtime import run_on_cpu
    from sepgzoo.evaluation import deployed

    _, source = trained_export
    export = Path(shutil.copytree(source, tmp_path / "export"))
    gate = functools.partial(deployed.gate_precisions, tolerance=100.0)  # the tiny test split: see int8_export
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(deployed, "gate_precisions", gate)
        record = deployed.export_projection(export, dim=8, count=16, seed=0)
    assert record["files"]["visible"]["dim8"] == "visible_dim8.onnx" and record["parity"]["infrared"]["dim8"]["passed"]
    about = record["projections"]["dim8"]
    assert about["fitted_on"] == {"visible": 16, "infrared": 16} and 0 < about["explained_variance"] < 1
    assert set(about["gate"]["metrics_percent"]) == {"fp32", "dim8"}

    fitting = deployed.calibration_images(recipe_from_dict(record["recipe"]), tuple(record["input_size"]), 16, 0)
    full = {m: run_on_cpu(export / record["files"][m]["fp32"], pixels) for m, pixels in fitting.items()}
    pooled = np.concatenate(list(full.values())).astype(np.float64)
    centred = pooled - pooled.mean(axis=0)
    top = np.linalg.eigh(centred.T @ centred)[1][:, ::-1][:, :8]  # independent: eigenvectors of the covariance
    for modality, pixels in fitting.items():
        graph = onnx.load(str(export / f"{modality}_dim8.onnx"))
        weights = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
        components = weights["pca_components"]
        np.testing.assert_allclose(components @ components.T, top @ top.T, atol=1e-4)  # the top-8 subspace
        got = run_on_cpu(export / f"{modality}_dim8.onnx", pixels)
        y = (full[modality] - pooled.mean(axis=0)) @ components
        np.testing.assert_allclose(got, y / np.linalg.norm(y, axis=1, keepdims=True), atol=1e-5)
        assert got.shape == (16, 8)
    code, out = run_cli("eval", "--model", str(export), "--precision", "dim8", "--json", "--no-record",
                        stdout_only=True)
    assert code == 0, out
    for setting, values in settings(out).items():
        assert values["mAP"] == pytest.approx(about["gate"]["metrics_percent"]["dim8"][setting]["mAP"], abs=0.01)


def test_a_projection_wider_than_its_fitting_images_is_refused_before_anything_is_written(trained_export):
    from sepgzoo.errors import UserError
    from sepgzoo.evaluation.deployed import export_projection

    _, export = trained_export
    before = sorted(p.name for p in export.iterdir())
    with pytest.raises(UserError, match=r"--dim 64: expected 1 <= K < min\(embedding size \d+, fitting images 32\)"):
        export_projection(export, dim=64, count=16)
    assert sorted(p.name for p in export.iterdir()) == before


def test_a_derived_graph_that_fails_its_parity_check_leaves_the_export_as_it_was(trained_export, monkeypatch):
    """The one refusal every derived graph (INT8, projected) goes through before it is labelled and recorded."""
    from sepgzoo.deploy import projection
    from sepgzoo.errors import UserError
    from sepgzoo.evaluation.deployed import export_projection

    _, export = trained_export
    before = {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()}
    failed = {"reference": "numpy projection", "min_cosine": {"8": 0.12}, "threshold": 0.9999, "passed": False}
    monkeypatch.setattr(projection, "projection_parity", lambda *args: failed)
    with pytest.raises(UserError, match=r"visible_dim4\.onnx: min cosine \{'8': 0\.12\} against the numpy projection "
                                        r"is below 0\.9999; the export is left as it was"):
        export_projection(export, dim=4, count=8)
    assert {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()} == before
