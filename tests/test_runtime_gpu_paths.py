"""GPU-side code paths checked on a CPU: cuda-python detection, ONNX Runtime provider fallback and TensorRT
provider options, `bench infer --device`, and the TensorRT runner's CUDA buffers (through a fake `cudart`).

The CUDA and TensorRT modules are fakes (they cannot exist here); the code under test is the real one.
"""

import ctypes
import gc
import json
import sys
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from deploy_helpers import MAX_BATCH, exported, write_images
from onnxruntime.capi import _pybind_state as ort_c

import sepgzoo.deploy.cuda_buffers as cuda_buffers
import sepgzoo.deploy.tensorrt_build as trt_build
import sepgzoo.deploy.tensorrt_platform as trt_platform
import sepgzoo.deploy.tensorrt_runtime as trt_runtime
from sepgzoo.cli import main
from sepgzoo.deploy.contract import EXPORT_JSON, FORMAT, INPUT_NAME, OUTPUT_NAME
from sepgzoo.deploy.cuda_buffers import CudaBuffers
from sepgzoo.deploy.ort_runtime import OnnxEmbedder, ort_cache_prefix, ort_tensorrt_options
from sepgzoo.deploy.tensorrt_build import build_engines
from sepgzoo.deploy.tensorrt_platform import ENGINE_FORMAT, TensorRTUnavailable, sidecar_path, tensorrt_missing
from sepgzoo.deploy.tensorrt_runtime import TensorRTEmbedder
from sepgzoo.errors import UserError
from sepgzoo.utils.hashing import sha256_file

H, W = 64, 32


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return exported(tmp_path_factory.getbasetemp())


# ---------------------------------------------------------------------------------------------------------------
# 4. TensorRT present, cuda-python missing
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def tensorrt_without_cuda_python(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes the import fail


def test_tensorrt_missing_names_cuda_python(tensorrt_without_cuda_python):
    reason = tensorrt_missing()
    assert reason is not None and "cuda-python is not" in reason
    assert "pip install 'cuda-python>=12,<13'" in reason


def test_build_engines_stops_before_building_without_cuda_python(tensorrt_without_cuda_python, monkeypatch,
                                                                  tmp_path):
    record = {"format": FORMAT, "max_batch": 4, "input_size": [H, W],
              "files": {"visible": {"fp32": "visible.onnx"}, "infrared": {"fp32": "infrared.onnx"}}}
    (tmp_path / EXPORT_JSON).write_text(json.dumps(record))

    def must_not_build(*args, **kwargs):
        raise AssertionError("an engine was built although cuda-python is missing")

    monkeypatch.setattr(trt_build, "build_engine", must_not_build)
    with pytest.raises(TensorRTUnavailable, match="cuda-python is not.*trtexec commands"):
        build_engines(tmp_path)
    assert "--saveEngine=visible.plan" in (tmp_path / "build_engines.sh").read_text()


# ---------------------------------------------------------------------------------------------------------------
# 6. ONNX Runtime provider fallback: stdout stays clean, `provider` stays true
# ---------------------------------------------------------------------------------------------------------------
class CudaFailsToStart(ort.InferenceSession):
    """The real InferenceSession, but a GPU provider list fails as it does without CUDA libraries; what
    follows (printing "EP Error", retrying on CPU) is ONNX Runtime's own fallback code."""

    def _create_inference_session(self, providers, provider_options, disabled_optimizers=None):
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        if names and names[0] != "CPUExecutionProvider":
            self._fallback_providers = ["CPUExecutionProvider"]
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        super()._create_inference_session(providers, provider_options, disabled_optimizers)


@pytest.fixture
def cuda_fails_to_start(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", CudaFailsToStart)


def test_creation_fallback_is_one_warning_and_no_stdout(export_dir, cuda_fails_to_start, capsys):
    with pytest.warns(RuntimeWarning) as warned:
        model = OnnxEmbedder(export_dir / "visible.onnx", providers="cuda")
    assert capsys.readouterr().out == ""
    assert model.provider == "CPUExecutionProvider"
    assert len(warned) == 1
    message = str(warned[0].message)
    assert "using CPUExecutionProvider, not the requested CUDAExecutionProvider" in message
    assert "no CUDA-capable device is detected" in message and "\n" not in message
    assert model.embed(np.zeros((1, H, W, 3), np.uint8)).shape[0] == 1


def test_embed_json_stays_valid_json_after_a_fallback(export_dir, cuda_fails_to_start, tmp_path):
    (image,) = write_images(tmp_path, 1)
    with pytest.warns(RuntimeWarning, match="not the requested CUDAExecutionProvider"):
        result = CliRunner().invoke(main, ["embed", "--model", str(export_dir / "visible.onnx"), "--device", "cuda",
                                            "--json", str(image)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["paths"] == [str(image)]


class FailingRun:
    """Stands in for the C++ session: `run` fails as a GPU provider does mid-run."""

    def __init__(self, real):
        self._real = real

    def run(self, *args, **kwargs):
        raise ort_c.EPFail("CUDA error: an illegal memory access was encountered")

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_run_time_fallback_is_disabled(export_dir, capsys):
    model = OnnxEmbedder(export_dir / "visible.onnx", providers="cpu")
    model.session._sess = FailingRun(model.session._sess)
    with pytest.raises(ort_c.EPFail, match="illegal memory access"):
        model.embed(np.zeros((1, H, W, 3), np.uint8))
    assert capsys.readouterr().out == ""  # ONNX Runtime's fallback would print "EP Error" and switch providers


# ---------------------------------------------------------------------------------------------------------------
# 7. TensorRT execution provider options
# ---------------------------------------------------------------------------------------------------------------
def test_ort_tensorrt_options_are_exact():
    options = ort_tensorrt_options({"input_size": [288, 144], "max_batch": 32}, "/cache", "visible_0123")
    assert options == {
        "trt_profile_min_shapes": "images:1x288x144x3",
        "trt_profile_opt_shapes": "images:16x288x144x3",
        "trt_profile_max_shapes": "images:32x288x144x3",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": "/cache",
        "trt_engine_cache_prefix": "visible_0123",
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": "/cache",
        "trt_fp16_enable": "False",
    }
    single = ort_tensorrt_options({"input_size": [64, 32], "max_batch": 1}, "c", "p")
    assert {single[f"trt_profile_{k}_shapes"] for k in ("min", "opt", "max")} == {"images:1x64x32x3"}


class RecordingSession(ort.InferenceSession):
    """Records the providers each session is asked for, then runs on the CPU (no TensorRT here)."""

    calls: list = []

    def __init__(self, path, sess_options=None, providers=None, **kwargs):
        RecordingSession.calls.append(providers)
        super().__init__(path, sess_options, providers=["CPUExecutionProvider"], **kwargs)


@pytest.fixture
def recording_tensorrt(monkeypatch):
    RecordingSession.calls = []
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", RecordingSession)
    return RecordingSession.calls


@pytest.mark.parametrize("name", ["visible.onnx", "visible_fp16.onnx"])
def test_tensorrt_provider_gets_profile_and_caches(export_dir, recording_tensorrt, tmp_path, name):
    cache = tmp_path / "engines"
    with pytest.warns(RuntimeWarning, match="not the requested TensorrtExecutionProvider"):
        model = OnnxEmbedder(export_dir / name, providers="tensorrt", trt_cache=cache)
    trt_entry, *rest = recording_tensorrt[-1]
    assert rest == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert trt_entry[0] == "TensorrtExecutionProvider"
    options = trt_entry[1]
    assert options == ort_tensorrt_options(model.metadata, cache, ort_cache_prefix(export_dir / name))
    assert (options["trt_profile_min_shapes"], options["trt_profile_opt_shapes"], options["trt_profile_max_shapes"]) \
        == (f"images:1x{H}x{W}x3", f"images:2x{H}x{W}x3", f"images:{MAX_BATCH}x{H}x{W}x3")
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(cache) and cache.is_dir()
    assert options["trt_engine_cache_prefix"] == f"{Path(name).stem}_{sha256_file(export_dir / name)[:16]}"
    assert options["trt_fp16_enable"] == "False"


def test_tensorrt_cache_defaults_next_to_the_model(export_dir, recording_tensorrt, tmp_path):
    model_path = tmp_path / "infrared.onnx"
    model_path.write_bytes((export_dir / "infrared.onnx").read_bytes())
    with pytest.warns(RuntimeWarning):
        OnnxEmbedder(model_path, providers="tensorrt")
    assert recording_tensorrt[-1][0][1]["trt_engine_cache_path"] == str(tmp_path / "trt_cache")
    assert (tmp_path / "trt_cache").is_dir()
    OnnxEmbedder(model_path, providers="cpu")
    assert recording_tensorrt[-1] == ["CPUExecutionProvider"]  # other providers get no options


# ---------------------------------------------------------------------------------------------------------------
# 10. bench infer --device
# ---------------------------------------------------------------------------------------------------------------
class FakeTensorRTEngine:
    def __init__(self, engine, modality):
        self.closed = False

    def embed(self, images):
        return np.zeros((len(images), 4), np.float32)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True


def test_bench_infer_rows_say_where_they_ran(monkeypatch):
    monkeypatch.setattr(trt_platform, "tensorrt_missing", lambda: None)  # TensorRT rows without a GPU: faked
    monkeypatch.setattr(trt_build, "build_engine", lambda *args, **kwargs: None)
    monkeypatch.setattr(trt_runtime, "TensorRTEngine", FakeTensorRTEngine)  # bench runs its unchecked engine as this
    result = CliRunner().invoke(main, ["bench", "infer", "--model", "test_sepg", "--backend", "torch", "--backend",
                                              "onnxruntime", "--backend", "tensorrt", "--device", "cpu", "--json",
                                              "--iters", "1", "--warmup", "0", "--batch", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["device"] == "cpu"
    assert [(r["backend"], r["device"]) for r in summary["results"]] == [
        ("torch", "CPU"), ("onnxruntime (CPUExecutionProvider)", "CPU"), ("tensorrt", "GPU")]


@pytest.mark.parametrize("backend, expected", [("torch", "PyTorch sees no CUDA device"),
                                               ("onnxruntime", "no CUDAExecutionProvider")])
def test_bench_infer_cuda_without_cuda_is_one_line(monkeypatch, backend, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    result = CliRunner().invoke(main, ["bench", "infer", "--model", "test_sepg", "--backend", backend, "--device",
                                       "cuda", "--json", "--iters", "1", "--warmup", "0", "--batch", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: --device cuda:") and expected in result.output
    assert len(result.output.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------------------------
# 11. TensorRT runner: every CUDA allocation freed, copies through pinned memory, results correct
# ---------------------------------------------------------------------------------------------------------------
class FakeCudart:
    """cuda-python's runtime API as far as sepgzoo uses it. Memory is real host memory; async work (copies,
    the fake kernel) is queued per stream and only runs at cudaStreamSynchronize, as on a GPU."""

    class cudaMemcpyKind:  # noqa: N801 - cuda-python's name
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self):
        self.device, self.pinned, self.streams = {}, {}, {}
        self.log: list[tuple] = []

    def _alloc(self, table, kind, nbytes):
        block = np.zeros(nbytes, np.uint8)
        table[block.ctypes.data] = block
        self.log.append((kind, block.ctypes.data))
        return 0, block.ctypes.data

    def cudaMalloc(self, nbytes):  # noqa: N802
        return self._alloc(self.device, "malloc", nbytes)

    def cudaMallocHost(self, nbytes):  # noqa: N802
        return self._alloc(self.pinned, "mallocHost", nbytes)

    def cudaFree(self, ptr):  # noqa: N802
        self.log.append(("free", ptr))
        return (0,) if self.device.pop(ptr, None) is not None else (1,)

    def cudaFreeHost(self, ptr):  # noqa: N802
        self.log.append(("freeHost", ptr))
        return (0,) if self.pinned.pop(ptr, None) is not None else (1,)

    def cudaStreamCreate(self):  # noqa: N802
        stream = object()
        self.streams[id(stream)] = []
        self.log.append(("streamCreate", id(stream)))
        return 0, stream

    def cudaStreamDestroy(self, stream):  # noqa: N802
        self.log.append(("streamDestroy", id(stream)))
        return (0,) if self.streams.pop(id(stream), None) is not None else (1,)

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        queue = self.streams[id(stream)]
        while queue:
            queue.pop(0)()
        return (0,)

    def within(self, table, ptr, nbytes):
        return any(base <= ptr and ptr + nbytes <= base + block.nbytes for base, block in table.items())

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802
        host, dev = (src, dst) if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice else (dst, src)
        self.log.append(("memcpy", kind, self.within(self.pinned, host, nbytes), self.within(self.device, dev, nbytes)))
        self.streams[id(stream)].append(lambda: ctypes.memmove(dst, src, nbytes))
        return (0,)

    def count(self, kind):
        return sum(1 for entry in self.log if entry[0] == kind)


D = 8  # the fake engine's embedding size


class FakeContext:
    """Embeds image i as its first D pixel bytes plus 0.5, enqueued on the stream like a real kernel."""

    max_batch = 4

    def __init__(self, cudart):
        self.cudart, self.addresses, self.shape = cudart, {}, None

    def set_input_shape(self, name, shape):
        """As TensorRT's: False for a shape outside the engine's profile (batch above `max_batch`)."""
        if shape[0] > self.max_batch:
            return False
        self.shape = tuple(shape)
        return True

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def execute_async_v3(self, stream):
        batch, pixels = self.shape[0], int(np.prod(self.shape[1:]))
        src, dst = self.addresses[INPUT_NAME], self.addresses[OUTPUT_NAME]

        def kernel():
            images = np.ctypeslib.as_array((ctypes.c_uint8 * (batch * pixels)).from_address(src))
            out = np.ctypeslib.as_array((ctypes.c_float * (batch * D)).from_address(dst))
            out[:] = (images.reshape(batch, pixels)[:, :D] + 0.5).reshape(-1)

        self.cudart.streams[id(stream)].append(kernel)
        return True


def fake_tensorrt(cudart):
    engine = types.SimpleNamespace(
        create_execution_context=lambda: FakeContext(cudart),
        get_tensor_profile_shape=lambda name, profile: ((1, 4, 2, 3), (2, 4, 2, 3), (4, 4, 2, 3)),
        get_tensor_shape=lambda name: (-1, D))
    logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    runtime = type("Runtime", (), {"__init__": lambda self, logger: None,
                                   "deserialize_cuda_engine": lambda self, data: engine})
    return types.SimpleNamespace(__version__="10.3.0", Logger=logger, Runtime=runtime,
                                 init_libnvinfer_plugins=lambda logger, namespace: True)


PLATFORM = {"tensorrt_version": "10.3.0", "gpu_name": "Fake GPU", "compute_capability": "8.7"}


@pytest.fixture
def cudart(monkeypatch, tmp_path):
    fake = FakeCudart()
    monkeypatch.setattr(cuda_buffers, "import_cudart", lambda: fake)
    monkeypatch.setattr(trt_runtime, "current_platform", lambda: PLATFORM)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(fake))
    return fake


def _engine(tmp_path):
    """A fake engine with the sidecar `build_engines` writes for one that passed its parity check."""
    engine = tmp_path / "visible.plan"
    engine.write_bytes(b"fake engine")
    parity = {"threshold": 0.9999, "min_cosine": {"1": 0.99999}, "passed": True}
    sidecar_path(engine).write_text(json.dumps({"format": ENGINE_FORMAT, "modality": "visible", **PLATFORM,
                                                "parity": parity, "engine_sha256": sha256_file(engine)}))
    return engine


def _allocations_balanced(cudart):
    counts = {kind: cudart.count(kind) for kind in ("malloc", "free", "mallocHost", "freeHost", "streamCreate",
                                                    "streamDestroy")}
    return (counts["malloc"] == counts["free"] > 0 and counts["mallocHost"] == counts["freeHost"] > 0
            and counts["streamCreate"] == counts["streamDestroy"] == 1
            and not cudart.device and not cudart.pinned and not cudart.streams)


def test_tensorrt_runner_results_pinned_copies_and_frees(cudart, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(6, 4, 2, 3), dtype=np.uint8)
    expected = images.reshape(6, -1)[:, :D].astype(np.float32) + 0.5
    with TensorRTEmbedder(_engine(tmp_path)) as model:
        assert model.max_batch == 4 and model.input_size == (4, 2) and model.embedding_dim == D
        np.testing.assert_array_equal(model.embed(images[:1]), expected[:1])
        np.testing.assert_array_equal(model.embed(images), expected)  # batch 4 grows the buffers, then 2
    copies = [entry for entry in cudart.log if entry[0] == "memcpy"]
    assert len(copies) == 6 and all(pinned and on_device for _, _, pinned, on_device in copies)
    assert cudart.count("malloc") == 4 and cudart.count("mallocHost") == 4  # batch 1, then grown for 4
    assert _allocations_balanced(cudart)
    model.close()  # idempotent: nothing is freed twice
    assert cudart.count("free") == 4 and cudart.count("freeHost") == 4 and cudart.count("streamDestroy") == 1


def test_tensorrt_runner_refuses_a_shape_its_profile_does_not_allow(cudart, tmp_path):
    with TensorRTEmbedder(_engine(tmp_path)) as model:
        with pytest.raises(UserError, match=r"cannot take a batch of shape \[5, 4, 2, 3\]: its profile allows 1\.\.4"):
            model._run(np.zeros((5, 4, 2, 3), np.uint8))  # embed() splits batches; the engine call itself checks


def test_cuda_buffers_are_freed_when_collected(cudart):
    cuda = CudaBuffers()
    cuda.buffer("x", 16)
    cuda.staging("x", 16)
    del cuda
    gc.collect()
    assert _allocations_balanced(cudart)
