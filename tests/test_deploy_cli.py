"""`export`, `embed`, `search`, `bench infer` through click's CliRunner; the TensorRT-missing path; engine refusal."""

import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from deploy_helpers import MAX_BATCH, export_output, exported, tiny_checkpoint, write_images

import sepgzoo.deploy.tensorrt_build as trt_build
import sepgzoo.deploy.tensorrt_platform as trt_platform
import sepgzoo.deploy.tensorrt_runtime as trt_runtime
from sepgzoo.cli import main
from sepgzoo.deploy.contract import cosine_rows, read_export_json
from sepgzoo.deploy.tensorrt_build import trtexec_command, trtexec_commands
from sepgzoo.deploy.tensorrt_platform import (
    ENGINE_FORMAT,
    EngineMismatch,
    TensorRTUnavailable,
    check_compatible,
    sidecar_path,
    tensorrt_missing,
)
from sepgzoo.deploy.tensorrt_runtime import TensorRTEmbedder
from sepgzoo.utils.hashing import sha256_file

D = 384
TRT_MISSING = tensorrt_missing()
requires_trt = pytest.mark.skipif(TRT_MISSING is not None, reason=TRT_MISSING or "")


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return exported(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return {"gallery": write_images(root / "gallery", 5, seed=0),
            "query": write_images(root / "q", 2, seed=5, grey=True), "root": root}


def invoke(command: str, args):
    """Run `sepgzoo <command> <args>` through the main group, where user errors become one-line messages."""
    result = CliRunner().invoke(main, [*command.split(), *(str(a) for a in args)])
    return result


def test_export_command_reports_parity(export_dir):
    lines = export_output(export_dir.parent).splitlines()
    assert len([line for line in lines if "parity vs PyTorch min cosine" in line]) == 4
    assert lines[-1].endswith("export.json")


def test_export_trt_without_tensorrt_prints_trtexec_and_fails(export_dir, monkeypatch, tmp_path):
    """The ONNX graphs are kept, exact trtexec lines are printed and written, and the exit code is non-zero."""
    import sepgzoo.deploy.onnx_export

    export_dir = Path(shutil.copytree(export_dir, tmp_path / "export"))  # keep the shared export untouched
    monkeypatch.setattr(sepgzoo.deploy.onnx_export, "export_model", lambda *a, **k: read_export_json(export_dir))
    monkeypatch.setattr(trt_build, "tensorrt_missing", lambda: "TensorRT is not installed")
    result = invoke("export", ["--checkpoint", tiny_checkpoint(export_dir.parent), "--output", export_dir, "--trt",
                             "--fp16", "--max-batch", MAX_BATCH, "--opt-batch", 2])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "TensorRT is not installed" in result.output
    expected = ("trtexec --onnx=visible_fp16.onnx --saveEngine=visible_fp16.plan --minShapes=images:1x64x32x3 "
                "--optShapes=images:2x64x32x3 --maxShapes=images:4x64x32x3 --memPoolSize=workspace:2048 "
                "--noTF32 --timingCacheFile=timing.cache --stronglyTyped")
    assert expected in result.output
    script = (export_dir / "build_engines.sh").read_text()
    assert expected in script and "infrared_fp16.onnx --saveEngine=infrared_fp16.plan" in script


def test_trtexec_command_lines(export_dir):
    fp32 = [shlex.join(c) for c in trtexec_commands(export_dir, max_batch=32)]
    assert fp32[1] == ("trtexec --onnx=infrared.onnx --saveEngine=infrared.plan --minShapes=images:1x64x32x3 "
                       "--optShapes=images:16x64x32x3 --maxShapes=images:32x64x32x3 --memPoolSize=workspace:2048 "
                       "--noTF32 --timingCacheFile=timing.cache")
    assert "--opt" in " ".join(trtexec_command("m.onnx", "m.plan", (288, 144), 1))  # opt = max = 1 is valid
    with pytest.raises(Exception, match="opt batch 9"):
        trtexec_command("m.onnx", "m.plan", (288, 144), 8, opt_batch=9)


def _fake_engine(tmp_path, **sidecar):
    """A fake engine whose sidecar records a passed parity check for its bytes (as `build_engines` writes it)."""
    engine = tmp_path / "visible.plan"
    engine.write_bytes(b"not a real engine")
    record = {"format": ENGINE_FORMAT, "modality": "visible", "tensorrt_version": "10.3.0",
              "gpu_name": "Orin", "compute_capability": "8.7", "engine_sha256": sha256_file(engine),
              "parity": {"threshold": 0.9999, "min_cosine": {"1": 0.99999}, "passed": True}, **sidecar}
    sidecar_path(engine).write_text(json.dumps(record))
    return engine


@pytest.mark.parametrize("change", [{"tensorrt_version": "10.7.0"}, {"gpu_name": "NVIDIA H100"},
                                    {"compute_capability": "9.0"}])
def test_engine_for_another_platform_is_refused(tmp_path, monkeypatch, change):
    here = {"tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7"}
    engine = _fake_engine(tmp_path, **change)
    monkeypatch.setattr(trt_runtime, "current_platform", lambda: here)
    key = next(iter(change))
    with pytest.raises(EngineMismatch, match=f"{key}: built with"):
        TensorRTEmbedder(engine)
    check_compatible({**here}, here)  # the same platform passes


def test_engine_without_tensorrt_names_tensorrt(tmp_path, monkeypatch):
    monkeypatch.setattr(trt_platform, "tensorrt_missing", lambda: "TensorRT is not installed")
    with pytest.raises(TensorRTUnavailable, match="TensorRT"):
        TensorRTEmbedder(_fake_engine(tmp_path))


def test_embed_onnx_and_checkpoint_agree(export_dir, images):
    paths = images["gallery"][:3]
    text = invoke("embed", ["--model", export_dir / "visible.onnx", *paths])
    assert text.exit_code == 0, text.output
    rows = [line.split("\t") for line in text.output.strip().splitlines()]
    assert [r[0] for r in rows] == [str(p) for p in paths] and all(len(r[1].split()) == D for r in rows)
    as_json = invoke("embed", ["--checkpoint", export_dir.parent / "run", "--modality", "visible", "--json", *paths])
    assert as_json.exit_code == 0, as_json.output
    record = json.loads(as_json.output)
    assert record["paths"] == [str(p) for p in paths]
    onnx_emb = np.array([[float(v) for v in r[1].split()] for r in rows])
    assert cosine_rows(np.array(record["embeddings"]), onnx_emb).min() > 0.9999


def test_embed_user_errors_are_one_line(export_dir, images):
    result = invoke("embed", ["--checkpoint", export_dir.parent / "run", images["gallery"][0]])
    assert result.exit_code == 1 and "--modality is required" in result.output and "Traceback" not in result.output
    result = invoke("embed", ["--checkpoint", export_dir.parent / "run", "--model", export_dir, images["gallery"][0]])
    assert result.exit_code == 2 and "exactly one of" in result.output
    result = invoke("embed", ["--model", export_dir / "visible.onnx", "--modality", "ir", images["gallery"][0]])
    assert result.exit_code == 1 and "embeds visible images, but infrared" in result.output


@pytest.mark.parametrize("backend", ["onnx", "checkpoint"])
def test_search_cross_modality_with_plot(export_dir, images, backend, tmp_path):
    source = ["--model", export_dir] if backend == "onnx" else ["--checkpoint", export_dir.parent / "run"]
    out = tmp_path / "ranking.png"
    result = invoke("search", [*source, "--gallery", images["root"] / "gallery", "--gallery-modality", "visible",
                             "--query", images["query"][0], "--query", images["query"][1], "--query-modality",
                             "infrared", "--top-k", 3, "--out", out, "--json"])
    assert result.exit_code == 0, result.output
    ranking = json.loads(result.output)
    assert [len(r["matches"]) for r in ranking["results"]] == [3, 3]
    cosines = [m["cosine"] for m in ranking["results"][0]["matches"]]
    assert cosines == sorted(cosines, reverse=True)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_search_with_one_image(export_dir, tmp_path):
    (one,) = write_images(tmp_path / "g", 1)
    result = invoke("search", ["--model", export_dir, "--gallery", tmp_path / "g", "--gallery-modality", "visible",
                             "--query", one, "--query-modality", "visible", "--top-k", 5, "--out", tmp_path / "r.png"])
    assert result.exit_code == 0, result.output
    assert "1.0000" in result.output and (tmp_path / "r.png").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("search", ["--model", export_dir, "--gallery", empty, "--gallery-modality", "visible",
                             "--query", one, "--query-modality", "visible"])
    assert result.exit_code == 1 and "no images" in result.output


def test_bench_infer_torch_smoke():
    result = invoke("bench infer", ["--model", "test_sepg", "--batch", 1, "--batch", 2, "--backend", "torch",
                                  "--iters", 1, "--warmup", 0, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["results"]
    assert [r["batch"] for r in rows] == [1, 2] and all(r["images_per_s"] > 0 and 0 < r["seg_share"] for r in rows)


@pytest.mark.gpu
@pytest.mark.trt
@requires_trt
def test_tensorrt_engines_build_and_match_onnxruntime(export_dir):
    engines = trt_build.build_engines(export_dir, "fp32", max_batch=MAX_BATCH)
    for modality, info in engines.items():
        assert info["parity"]["passed"], info
        model = TensorRTEmbedder(export_dir / info["engine"])
        assert model.modality.value == modality and model.max_batch == MAX_BATCH
    fp16 = trt_build.build_engines(export_dir, "fp16", max_batch=MAX_BATCH)
    assert all(info["parity"]["passed"] for info in fp16.values())
