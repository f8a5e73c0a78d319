"""What the TensorRT builder is asked to do, per precision, on TensorRT 10 and 11: checked on a CPU through a fake
`tensorrt` module that records every builder call. The code under test (`build_engine`, the trtexec lines, the
engine names, the runtime's choice of engine) is the real one.

The rules, from NVIDIA's explicit-quantization guide and the TensorRT 11 migration notes: precision lives in the
graph; fp16 and int8 (Q/DQ) engines are strongly typed networks (flag on 10.x, implicit on 11.x); no FP16/INT8
builder flag is ever set; TF32 is cleared (SEG's DFT); the timing cache is read before and written after a build.
"""

import json
import shlex
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

import sepgzoo.deploy.tensorrt_build as trt_build
from sepgzoo.cli import main
from sepgzoo.deploy.contract import EXPORT_JSON, FORMAT
from sepgzoo.deploy.runtime import open_model
from sepgzoo.deploy.tensorrt_build import build_engine, trtexec_commands
from sepgzoo.deploy.tensorrt_platform import engine_filename
from sepgzoo.errors import UserError
from sepgzoo.utils.hashing import sha256_file

PLATFORM = {"tensorrt_version": "x", "gpu_name": "Fake GPU", "compute_capability": "8.7"}
STRONGLY_TYPED_BIT = 3  # TensorRT's enum value; the fake gives it a value so the shift is checked


class Recorder:
    """Every call the builder code makes, in order."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.cache_bytes = b"timings measured by this build"


def fake_tensorrt(version: str, rec: Recorder):
    class Config:
        def set_memory_pool_limit(self, pool, size):
            rec.calls.append(("workspace", size))

        def clear_flag(self, flag):
            rec.calls.append(("clear_flag", flag))

        def set_flag(self, flag):
            rec.calls.append(("set_flag", flag))

        def add_optimization_profile(self, profile):
            rec.calls.append(("profile", profile.shapes))

        def create_timing_cache(self, data):
            rec.calls.append(("timing_cache_loaded", bytes(data)))
            return "cache"

        def set_timing_cache(self, cache, ignore_mismatch):
            return True

        def get_timing_cache(self):
            return types.SimpleNamespace(serialize=lambda: rec.cache_bytes)

    class Profile:
        def set_shape(self, name, *shapes):
            self.shapes = (name, *shapes)

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def parse_from_file(self, path):
            rec.calls.append(("parse", Path(path).name))
            return True

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            rec.calls.append(("network_flags", flags))
            return "network"

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"plan bytes"

    logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    flags = types.SimpleNamespace(STRONGLY_TYPED=STRONGLY_TYPED_BIT)
    builder_flags = types.SimpleNamespace(TF32="TF32") if version.startswith("11") else types.SimpleNamespace(
        TF32="TF32", FP16="FP16", INT8="INT8")  # 11.x removed the weak-typing flags
    return types.SimpleNamespace(__version__=version, Logger=logger, Builder=Builder, OnnxParser=Parser,
                                 NetworkDefinitionCreationFlag=flags, BuilderFlag=builder_flags,
                                 MemoryPoolType=types.SimpleNamespace(WORKSPACE="workspace"),
                                 init_libnvinfer_plugins=lambda logger, namespace: True)


@pytest.fixture
def onnx_graph(tmp_path):
    graph = tmp_path / "visible_int8.onnx"
    graph.write_bytes(b"a Q/DQ graph")
    return graph


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_each_precision_is_built_from_its_graph_as_the_version_requires(version, precision, onnx_graph, tmp_path,
                                                                          monkeypatch):
    rec = Recorder()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, rec))
    monkeypatch.setattr(trt_build, "current_platform", lambda: PLATFORM)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"timings of an earlier build")
    engine = tmp_path / engine_filename("visible", precision)
    sidecar = build_engine(onnx_graph, engine, "visible", (64, 32), max_batch=8, opt_batch=4, precision=precision,
                           workspace_mib=512, timing_cache=cache)
    calls = dict(rec.calls)
    typed = precision != "fp32"
    expected_flags = (1 << STRONGLY_TYPED_BIT) if typed and version.startswith("10") else 0
    assert calls["network_flags"] == expected_flags
    assert [c for c in rec.calls if c[0] == "set_flag"] == []  # never FP16/INT8: the graph carries the precision
    assert ("clear_flag", "TF32") in rec.calls
    assert calls["workspace"] == 512 << 20
    assert calls["profile"] == ("images", (1, 64, 32, 3), (4, 64, 32, 3), (8, 64, 32, 3))
    assert calls["timing_cache_loaded"] == b"timings of an earlier build"
    assert cache.read_bytes() == rec.cache_bytes  # saved for the next build
    assert engine.read_bytes() == b"plan bytes"
    assert sidecar["precision"] == precision and sidecar["strongly_typed"] is typed
    assert sidecar["onnx_sha256"] == sha256_file(onnx_graph) and sidecar["engine_sha256"] == sha256_file(engine)


def _export(tmp_path, precisions):
    files = {m: {p: f"{m}{'' if p == 'fp32' else '_' + p.replace('-', '_')}.onnx" for p in precisions}
             for m in ("visible", "infrared")}
    record = {"format": FORMAT, "max_batch": 4, "input_size": [64, 32], "files": files}
    (tmp_path / EXPORT_JSON).write_text(json.dumps(record))
    return tmp_path


def test_int8_trtexec_lines_build_the_qdq_graphs_strongly_typed(tmp_path):
    export = _export(tmp_path, ("fp32", "int8", "int8-cpu"))
    lines = [shlex.join(c) for c in trtexec_commands(export, "int8", max_batch=4)]
    assert lines[0] == ("trtexec --onnx=visible_int8.onnx --saveEngine=visible_int8.plan --minShapes=images:1x64x32x3 "
                        "--optShapes=images:2x64x32x3 --maxShapes=images:4x64x32x3 --memPoolSize=workspace:2048 "
                        "--noTF32 --timingCacheFile=timing.cache --stronglyTyped")
    assert "--int8" not in " ".join(lines)  # removed in TensorRT 11, deprecated in 10: Q/DQ carries the precision
    with pytest.raises(UserError, match="engines are built for fp32, fp16, int8; got 'int8-cpu'"):
        trtexec_commands(export, "int8-cpu")
    with pytest.raises(UserError, match="lists no fp16 graph for visible: export with --fp16 first"):
        trtexec_commands(export, "fp16")


def test_engine_build_int8_without_tensorrt_writes_the_script_and_says_so(tmp_path, monkeypatch):
    export = _export(tmp_path, ("fp32", "int8"))
    monkeypatch.setattr(trt_build, "tensorrt_missing", lambda: "TensorRT is not installed")
    result = CliRunner().invoke(main, ["engine", "build", str(export), "--int8"])
    assert result.exit_code == 1 and "TensorRT is not installed" in result.output
    script = (export / "build_engines.sh").read_text()
    assert "--onnx=infrared_int8.onnx --saveEngine=infrared_int8.plan" in script and "--stronglyTyped" in script


def test_engine_build_with_tensorrt_publishes_int8_engines_under_their_own_name(tmp_path, monkeypatch):
    export = _export(tmp_path, ("fp32", "int8"))
    built = []

    def build(onnx_path, engine_path, modality, input_size, max_batch, opt_batch, precision, **kwargs):
        built.append((Path(onnx_path).name, precision))
        Path(engine_path).write_bytes(b"engine")
        return {"modality": modality.value, "precision": precision, **PLATFORM,
                "engine_sha256": sha256_file(engine_path)}

    monkeypatch.setattr(trt_build, "tensorrt_missing", lambda: None)
    monkeypatch.setattr(trt_build, "build_engine", build)
    monkeypatch.setattr(trt_build, "engine_parity", lambda engine, reference, max_batch, threshold: {
        "reference": Path(reference).name, "threshold": threshold, "min_cosine": {"1": 0.99}, "passed": True})
    result = CliRunner().invoke(main, ["engine", "build", str(export), "--int8"])
    assert result.exit_code == 0, result.output
    assert built == [("visible_int8.onnx", "int8"), ("infrared_int8.onnx", "int8")]
    record = json.loads((export / EXPORT_JSON).read_text())["tensorrt"]["int8"]
    # checked against the fp32 graph with the INT8 wiring threshold, the one the Q/DQ graphs passed
    parity = record["visible"]["parity"]
    assert parity["reference"] == "visible.onnx" and parity["threshold"] == 0.95
    assert "visible_int8.plan: TensorRT x int8 on Fake GPU" in result.output
    assert (export / "visible_int8.plan").is_file() and (export / "visible_int8.plan.json").is_file()


def test_the_runtime_opens_the_engine_of_the_asked_precision(tmp_path, monkeypatch):
    export = _export(tmp_path, ("fp32", "int8", "int8-cpu"))
    opened = []
    import sepgzoo.deploy.tensorrt_runtime as trt_runtime

    class Engine:
        def __init__(self, path):
            opened.append(Path(path).name)
            raise UserError("stop here")

    monkeypatch.setattr(trt_runtime, "TensorRTEmbedder", Engine)
    with pytest.raises(UserError, match="stop here"):
        open_model(export, "infrared", backend="tensorrt", precision="int8")
    assert opened == ["infrared_int8.plan"]
    with pytest.raises(UserError, match="got 'int8-cpu'"):  # asymmetric activations: no TensorRT engine exists
        open_model(export, "infrared", backend="tensorrt", precision="int8-cpu")
