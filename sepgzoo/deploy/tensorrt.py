"""TensorRT engines from exported ONNX graphs: build (one per modality, dynamic-batch profile), sidecars, loading.

An engine reaches the export directory only after it passed its parity check against ONNX Runtime: engines are
built and checked in a hidden staging folder, and published (engine + sidecar recording the check and the
engine's SHA-256) only when every one of them passed. The runtime (`TensorRTEmbedder`) loads only an engine
whose sidecar records a passed check for exactly its bytes.

`tensorrt` (and cuda-python for device buffers) are imported lazily; without them this module still
writes the exact `trtexec` command lines to build the engines on the target (a Jetson builds its own) for the
target's own TensorRT application: such engines have no sidecar, so sepgzoo's runtime refuses them.
Torch-free, like `sepgzoo.deploy.runtime`: `build_engines(export_dir)` runs on a target without PyTorch.

FP16: the fp16 ONNX (network in fp16, SEG and the final L2 norm in fp32) built as a *strongly typed*
network, on TensorRT 10 and 11 alike. The TensorRT 10 weak-typing FP16 flag is not used: it lets
TensorRT pick fp16 for any layer, SEG's MatMul-DFT included, and TensorRT 11 removed it (docs/deploy.md 4).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.deploy.contract import (
    EXPORT_JSON,
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_COSINE,
    Batching,
    cosine_rows,
    default_opt_batch,
    describe_check,
    passed_check,
    read_export_json,
)
from sepgzoo.deploy.ort_runtime import OnnxEmbedder
from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality
from sepgzoo.utils.atomic import atomic_path, read_json, write_json, write_text
from sepgzoo.utils.hashing import sha256_file

#: Sidecar formats. 1: built from export format 1 (embeddings of norm sqrt(parts)). 2: written before the parity
#: check, so it may describe an engine that failed it. 3: written only once the engine passed its parity check; it
#: records the check (`parity`) and the engine's SHA-256 (`engine_sha256`), which binds the record to those bytes.
#: The runtime reads format 3 only.
ENGINE_FORMAT = "sepgzoo-trt-engine/3"
STAGING_PREFIX = ".trt-staging."  # hidden folder in the export directory where engines wait for their parity check
REBUILD = "rebuild it with `sepgzoo export --trt` on this machine"
TRTEXEC_SCRIPT = "build_engines.sh"
DEFAULT_WORKSPACE_MIB = 2048
CUDA_PYTHON_PIP = "pip install 'cuda-python>=12,<13' (CUDA 12, JetPack 6) or 'cuda-python>=13,<14' (CUDA 13)"


class TensorRTUnavailable(UserError):
    """TensorRT or a CUDA device is missing here; the message names TensorRT and what to run instead."""


class EngineBuildError(UserError):
    """TensorRT could not parse or build a graph, or the engine failed its parity check; nothing is kept."""


class EngineMismatch(UserError):
    """An engine was built for another GPU or TensorRT version (engines are not portable)."""


class EngineNotVerified(UserError):
    """An engine whose sidecar does not record a passed parity check for exactly its bytes: the runtime refuses it."""


def engine_filename(modality: str | Modality, fp16: bool = False) -> str:
    return f"{as_modality(modality).value}{'_fp16' if fp16 else ''}.plan"


def sidecar_path(engine: str | Path) -> Path:
    """`visible.plan` -> `visible.plan.json`."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


# ---------------------------------------------------------------------------------------------------------------
# Platform
# ---------------------------------------------------------------------------------------------------------------
def _import_cudart():
    """cuda-python's CUDA runtime module, or None when cuda-python is not installed.

    `cuda.bindings.runtime` exists from cuda-python 12.6 on; cuda-python 13 removed the old `cuda.cudart`.
    """
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            return None
    return cudart


def _gpu_from_cuda_python() -> dict[str, str] | None:
    cudart = _import_cudart()
    if cudart is None:
        return None
    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        return None
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {"gpu_name": name.strip("\x00 "), "compute_capability": f"{props.major}.{props.minor}"}


def _gpu_from_nvidia_smi() -> dict[str, str] | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "--id=0"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    name, _, capability = out.strip().partition(",")
    return {"gpu_name": name.strip(), "compute_capability": capability.strip()} if capability else None


def gpu_info() -> dict[str, str] | None:
    """{"gpu_name", "compute_capability"} of CUDA device 0 (cuda-python, else nvidia-smi), or None."""
    return _gpu_from_cuda_python() or _gpu_from_nvidia_smi()


def tensorrt_missing() -> str | None:
    """Why TensorRT engines cannot be built or run here (None when they can)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return ("TensorRT is not installed (pip install 'sepgzoo[trt]' for CUDA 12, 'sepgzoo[trt-cu13]' for "
                "CUDA 13, or use the TensorRT of your JetPack)")
    if _import_cudart() is None:
        return ("TensorRT is installed but cuda-python is not (sepgzoo needs it for device buffers): "
                f"{CUDA_PYTHON_PIP}")
    if gpu_info() is None:
        return "TensorRT is installed but no CUDA device was found"
    return None


def current_platform() -> dict[str, str]:
    """TensorRT version, GPU name and compute capability of this machine (TensorRTUnavailable otherwise)."""
    reason = tensorrt_missing()
    if reason:
        raise TensorRTUnavailable(reason)
    import tensorrt as trt

    return {"tensorrt_version": trt.__version__, **gpu_info()}


def check_compatible(sidecar: dict[str, Any], platform: dict[str, str], engine: str | Path = "engine") -> None:
    """Refuse an engine whose sidecar names another TensorRT version, GPU or compute capability.

    Raises:
        EngineMismatch naming what differs and how to rebuild.
    """
    keys = ("tensorrt_version", "gpu_name", "compute_capability")
    diffs = [f"{key}: built with {sidecar.get(key)!r}, this machine has {platform.get(key)!r}"
             for key in keys if str(sidecar.get(key)) != str(platform.get(key))]
    if diffs:
        raise EngineMismatch(f"TensorRT engine {engine} was built for another platform ({'; '.join(diffs)}). "
                             f"Engines are specific to one GPU and TensorRT version: {REBUILD}.")


def verified_sidecar(engine: str | Path) -> dict[str, Any]:
    """The sidecar of an engine that passed its parity check, read without touching TensorRT.

    Reading rules: the sidecar exists (engines built with trtexec have none), has format `ENGINE_FORMAT`, records
    `parity.passed` true, and its `engine_sha256` is the engine file's (an engine rebuilt or copied over after
    the check is not the engine that was checked).

    Raises:
        EngineNotVerified (a UserError) naming the engine, the sidecar and what to do; UserError for a sidecar of
        another format.
    """
    engine = Path(engine)
    path = sidecar_path(engine)
    if not path.is_file():
        raise EngineNotVerified(f"TensorRT engine {engine} has no sidecar {path} recording a passed parity check "
                                f"(engines built with trtexec have none); expected one written by sepgzoo: {REBUILD}")
    record = read_json(path, ENGINE_FORMAT, f" (the sidecar of TensorRT engine {engine}): {REBUILD}")
    if not passed_check(record.get("parity")):
        raise EngineNotVerified(f"TensorRT engine {engine}: its sidecar {path} records "
                                f"{describe_check(record.get('parity'))}; expected parity.passed = true: {REBUILD}")
    if record.get("engine_sha256") != sha256_file(engine):
        raise EngineNotVerified(f"TensorRT engine {engine} is not the engine its sidecar {path} checked (engine_sha256 "
                                f"differs: the file was replaced after the check): {REBUILD}")
    return record


# ---------------------------------------------------------------------------------------------------------------
# trtexec command lines
# ---------------------------------------------------------------------------------------------------------------
def trtexec_command(onnx_path: str | Path, engine_path: str | Path, input_size: tuple[int, int], max_batch: int,
                    opt_batch: int | None = None, fp16: bool = False,
                    workspace_mib: int = DEFAULT_WORKSPACE_MIB) -> list[str]:
    """The trtexec argument list that builds one engine with a min 1 / opt / max batch profile.

    Valid on TensorRT 10.x and 11.x. `--noTF32`: TF32 MatMuls (on by default on Ampere and later) would
    round SEG's DFT to a 10-bit mantissa. For fp16 pass the fp16 ONNX: `--stronglyTyped` makes TensorRT 10
    keep its fp32 islands (SEG, L2 norm); on 11.x networks are always strongly typed and the flag is a no-op.

    Example:
        >>> " ".join(trtexec_command("visible.onnx", "visible.plan", (288, 144), 32))
        'trtexec --onnx=visible.onnx --saveEngine=visible.plan --minShapes=images:1x288x144x3 ...'
    """
    if max_batch < 1:
        raise UserError(f"max_batch must be >= 1, got {max_batch}")
    opt = opt_batch or default_opt_batch(max_batch)
    if not 1 <= opt <= max_batch:
        raise UserError(f"opt batch {opt} must be between 1 and max batch {max_batch}")
    h, w = input_size
    shape = lambda n: f"{INPUT_NAME}:{n}x{h}x{w}x3"  # noqa: E731
    command = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}", f"--minShapes={shape(1)}",
               f"--optShapes={shape(opt)}", f"--maxShapes={shape(max_batch)}",
               f"--memPoolSize=workspace:{workspace_mib}", "--noTF32"]
    if fp16:
        command.append("--stronglyTyped")
    return command


def trtexec_commands(export_dir: str | Path, fp16: bool = False, max_batch: int | None = None,
                     opt_batch: int | None = None) -> list[list[str]]:
    """trtexec argument lists for both modalities of an export directory (paths relative to it)."""
    record = read_export_json(export_dir)
    max_batch = max_batch or int(record["max_batch"])
    precision = "fp16" if fp16 else "fp32"
    commands = []
    for modality in Modality:
        onnx_name = _onnx_name(record, modality, precision, export_dir)
        commands.append(trtexec_command(onnx_name, engine_filename(modality, fp16), tuple(record["input_size"]),
                                        max_batch, opt_batch, fp16))
    return commands


def _onnx_name(record: dict[str, Any], modality: Modality, precision: str, export_dir: str | Path) -> str:
    try:
        return record["files"][modality.value][precision]
    except KeyError:
        raise UserError(f"{Path(export_dir) / EXPORT_JSON} lists no {precision} graph for {modality.value}"
                        + (": export with --fp16 first" if precision == "fp16" else "")) from None


def write_trtexec_script(export_dir: str | Path, fp16: bool = False, max_batch: int | None = None,
                         opt_batch: int | None = None) -> tuple[Path, list[str]]:
    """Write `build_engines.sh` (run it inside the export directory on the target) -> (path, command lines)."""
    lines = [shlex.join(c) for c in trtexec_commands(export_dir, fp16, max_batch, opt_batch)]
    script = "\n".join([
        "#!/bin/sh",
        "# Build the TensorRT engines on the machine that runs them (engines are GPU- and version-specific).",
        "# Run inside this directory; on a Jetson trtexec is /usr/src/tensorrt/bin/trtexec.",
        "set -e", 'cd "$(dirname "$0")"', *lines, ""])
    path = Path(export_dir) / TRTEXEC_SCRIPT
    write_text(path, script)
    path.chmod(0o755)
    return path, lines


# ---------------------------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------------------------
def build_engine(onnx_path: str | Path, engine_path: str | Path, modality: str | Modality,
                 input_size: tuple[int, int], max_batch: int, opt_batch: int | None = None, fp16: bool = False,
                 workspace_mib: int = DEFAULT_WORKSPACE_MIB) -> dict[str, Any]:
    """Build one engine with the TensorRT Python API and write it; returns its sidecar record, without `parity`.

    The engine is unchecked: `build_engines` builds into a staging folder and publishes an engine with its sidecar
    only once it passed its parity check. `TensorRTEngine` runs any engine; `TensorRTEmbedder` refuses this one
    until then.

    Args:
        onnx_path: an exported ONNX file (the fp16 one when fp16=True).
        engine_path: output `.plan`.
        modality: what the graph embeds (recorded in the sidecar).
        input_size: (H, W).
        max_batch: profile maximum (minimum 1, optimum `opt_batch`).
        fp16: build a strongly typed network from the fp16 ONNX.
        workspace_mib: builder workspace pool.

    Raises:
        TensorRTUnavailable without TensorRT or a CUDA device; EngineBuildError when parsing or building fails.
    """
    platform = current_platform()
    import tensorrt as trt

    opt = opt_batch or default_opt_batch(max_batch)
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0
    if fp16 and major < 11:  # 11.x: always strongly typed, the flag is deprecated
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT {trt.__version__} could not parse {onnx_path}:\n  {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    config.clear_flag(trt.BuilderFlag.TF32)  # TF32 would round SEG's DFT MatMuls (as trtexec --noTF32)
    h, w = input_size
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, h, w, 3), (opt, h, w, 3), (max_batch, h, w, 3))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:  # the builder logs why; fast-reid's exporter crashed later on this None
        raise EngineBuildError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path} (see the log above)")
    engine_path = Path(engine_path)
    with atomic_path(engine_path) as tmp:
        tmp.write_bytes(bytes(plan))
    return {"format": ENGINE_FORMAT, "modality": as_modality(modality).value, **platform,
            "precision": "fp16" if fp16 else "fp32",
            "strongly_typed": bool(fp16), "onnx": Path(onnx_path).name, "onnx_sha256": sha256_file(onnx_path),
            "profile": {"min": 1, "opt": opt, "max": max_batch}, "input_size": list(input_size),
            "workspace_mib": workspace_mib, "engine_sha256": sha256_file(engine_path)}


def build_engines(export_dir: str | Path, fp16: bool = False, max_batch: int | None = None,
                  opt_batch: int | None = None) -> dict[str, Any]:
    """Build one engine per modality in an export directory, check each against ONNX Runtime CPU, and publish them
    (engine + sidecar, recorded under `tensorrt` in `export.json`) only when every one passed.

    The engines are built and checked in a hidden staging folder of the export directory; on any failure it is
    removed and the engines already in the export directory are left exactly as they were.

    Raises:
        TensorRTUnavailable (naming TensorRT) when TensorRT or a CUDA device is missing; the export directory
        then holds `build_engines.sh` with the trtexec command lines to run on the target. EngineBuildError when
        an engine cannot be built or fails its parity check (naming the engine, its min cosine and the threshold).
    """
    export_dir = Path(export_dir)
    record = read_export_json(export_dir)
    max_batch = max_batch or int(record["max_batch"])
    reason = tensorrt_missing()
    if reason:
        script, lines = write_trtexec_script(export_dir, fp16, max_batch, opt_batch)
        raise TensorRTUnavailable(f"{reason}. The ONNX graphs are in {export_dir}; build the engines on the target "
                                  "with `sepgzoo export --trt` (parity-checked: what sepgzoo's runtime loads), or "
                                  f"for your own TensorRT application with the trtexec commands in {script}:\n  "
                                  + "\n  ".join(lines))
    with engine_staging(export_dir) as staging:
        sidecars = {modality.value: _checked_engine(export_dir, staging, record, modality, fp16, max_batch, opt_batch)
                    for modality in Modality}
        engines = {}
        for modality, sidecar in sidecars.items():
            name = engine_filename(modality, fp16)
            _publish(staging / name, export_dir / name)
            engines[modality] = {"engine": name, **sidecar}
    record.setdefault("tensorrt", {})["fp16" if fp16 else "fp32"] = engines
    write_json(export_dir / EXPORT_JSON, record)
    return engines


@contextlib.contextmanager
def engine_staging(export_dir: Path):
    """Yield a new hidden folder in the export directory (same file system: publishing is a rename); it is removed
    afterwards with whatever is still in it."""
    try:
        staging = Path(tempfile.mkdtemp(dir=export_dir, prefix=STAGING_PREFIX))
    except OSError as err:
        raise UserError(f"cannot build TensorRT engines in {export_dir}: {err.strerror}") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _checked_engine(export_dir: Path, staging: Path, record: dict[str, Any], modality: Modality, fp16: bool,
                    max_batch: int, opt_batch: int | None) -> dict[str, Any]:
    """Build one modality's engine into `staging`, check its parity, and write its sidecar there; returns it.

    Raises:
        EngineBuildError naming the engine, its min cosine and the threshold when the parity check fails.
    """
    precision = "fp16" if fp16 else "fp32"
    staged = staging / engine_filename(modality, fp16)
    sidecar = build_engine(export_dir / _onnx_name(record, modality, precision, export_dir), staged, modality,
                           tuple(record["input_size"]), max_batch, opt_batch, fp16)
    sidecar["parity"] = engine_parity(staged, export_dir / _onnx_name(record, modality, "fp32", export_dir),
                                      max_batch, PARITY_COSINE[precision])
    parity = sidecar["parity"]
    if not passed_check(parity):
        target = export_dir / staged.name
        kept = f"; the earlier {target.name} there is untouched" if target.exists() else ""
        raise EngineBuildError(f"TensorRT engine {target} failed its parity check against ONNX Runtime CPU: min "
                               f"cosine {min(parity['min_cosine'].values()):.6f} < threshold {parity['threshold']} "
                               f"(per batch {parity['min_cosine']}); it was not kept{kept}")
    write_json(sidecar_path(staged), sidecar)
    return sidecar


def _publish(staged: Path, engine: Path) -> None:
    """Move a checked engine and its sidecar from the staging folder into place (renames on one file system).

    Sidecar first: until the engine follows, the new sidecar's `engine_sha256` matches no engine there, and the
    old sidecar never describes the new engine, so the runtime never loads an engine with another engine's record.
    """
    os.replace(sidecar_path(staged), sidecar_path(engine))
    os.replace(staged, engine)


def engine_parity(engine_path: str | Path, onnx_path: str | Path, max_batch: int, threshold: float) -> dict[str, Any]:
    """TensorRT vs ONNX Runtime CPU (fp32 graph) at batch 1, 3 and max on deterministic images."""
    reference = OnnxEmbedder(onnx_path, providers="cpu")
    batches = sorted({1, min(3, max_batch), max_batch})
    with TensorRTEngine(engine_path, reference.modality) as engine:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(max_batch, *engine.input_size, 3), dtype=np.uint8)
        expected = reference.embed(images)
        per_batch = {str(b): float(cosine_rows(engine.embed(images[:b]), expected[:b]).min()) for b in batches}
    return {"reference": "onnxruntime-cpu-fp32", "batches": batches, "threshold": threshold,
            "min_cosine": per_batch, "passed": min(per_batch.values()) >= threshold}


# ---------------------------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------------------------
def _release(cudart, owned: dict[str, Any]) -> None:
    """Free what `_CudaPython` allocated (waits for the stream first); best effort, also at interpreter exit."""
    stream = owned.pop("stream", None)
    try:
        if stream is not None:
            cudart.cudaStreamSynchronize(stream)
        for ptr, _ in owned["device"].values():
            cudart.cudaFree(ptr)
        for ptr, _ in owned["host"].values():
            cudart.cudaFreeHost(ptr)
        if stream is not None:
            cudart.cudaStreamDestroy(stream)
    except Exception:  # noqa: BLE001 - a finaliser must not raise (CUDA may already be shut down)
        pass
    owned["device"].clear()
    owned["host"].clear()


class _CudaPython:
    """A non-default stream, device buffers and pinned host staging buffers through cuda-python (no torch).

    Buffers grow on demand and are reused; `close()` (or the context manager, or garbage collection)
    frees them all. Host copies go through pinned (page-locked) memory: with pageable memory the driver may
    stage cudaMemcpyAsync synchronously (CUDA runtime API, "API synchronization behavior").
    """

    def __init__(self) -> None:
        cudart = _import_cudart()
        if cudart is None:
            raise TensorRTUnavailable(f"cuda-python is not installed: {CUDA_PYTHON_PIP}")
        self.cudart = cudart
        # name -> (pointer, bytes); shared with the finaliser, which must not hold `self`
        self._owned: dict[str, Any] = {"device": {}, "host": {}}
        self.stream = self._check(cudart.cudaStreamCreate())
        self._owned["stream"] = self.stream
        self._finalizer = weakref.finalize(self, _release, cudart, self._owned)

    def _check(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return rest[0] if rest else None

    def _grow(self, kind: str, name: str, nbytes: int) -> int:
        allocate, free = {"device": ("cudaMalloc", "cudaFree"), "host": ("cudaMallocHost", "cudaFreeHost")}[kind]
        buffers = self._owned[kind]
        ptr, size = buffers.get(name, (0, 0))
        if size < nbytes:  # safe to free: every run ends with synchronize()
            if ptr:
                del buffers[name]
                self._check(getattr(self.cudart, free)(ptr))
            ptr = self._check(getattr(self.cudart, allocate)(nbytes))
            buffers[name] = (ptr, nbytes)
        return ptr

    def buffer(self, name: str, nbytes: int) -> int:
        """A device buffer of at least `nbytes` (its pointer)."""
        return self._grow("device", name, nbytes)

    def staging(self, name: str, nbytes: int) -> np.ndarray:
        """A pinned host buffer as a uint8 array of exactly `nbytes`."""
        ptr = self._grow("host", name, nbytes)
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))

    def to_device(self, ptr: int, array: np.ndarray, name: str) -> None:
        """Copy a C-contiguous array into pinned staging, then enqueue the copy to the device."""
        stage = self.staging(name, array.nbytes)
        stage[:] = array.reshape(-1).view(np.uint8)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.cudart.cudaMemcpyAsync(ptr, stage.ctypes.data, array.nbytes, kind, self.stream))

    def to_host(self, ptr: int, nbytes: int, name: str) -> np.ndarray:
        """Enqueue a device-to-pinned copy; the returned staging bytes are valid after `synchronize()`."""
        stage = self.staging(name, nbytes)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.cudart.cudaMemcpyAsync(stage.ctypes.data, ptr, nbytes, kind, self.stream))
        return stage

    def synchronize(self) -> None:
        self._check(self.cudart.cudaStreamSynchronize(self.stream))

    def close(self) -> None:
        """Free the buffers and the stream (idempotent)."""
        self._finalizer()

    def __enter__(self) -> _CudaPython:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _require_engine_file(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"TensorRT engine {path} does not exist (build it with `sepgzoo export --trt`)")


class TensorRTEngine(Batching):
    """Runs a serialized TensorRT engine with the v3 name-based API on a non-default stream.

    It checks nothing of sepgzoo's records, only that TensorRT can load the bytes: the builder's parity check and
    `bench infer` run engines with it. Deployments open engines with `TensorRTEmbedder`, which refuses one that
    has not passed its parity check. Needs `tensorrt` and cuda-python (check `tensorrt_missing()` first).

    Args:
        path: a serialized engine (`.plan`).
        modality: what the engine embeds.
    """

    provider = "TensorRT"

    def __init__(self, path: str | Path, modality: str | Modality) -> None:
        self.path = Path(path)
        _require_engine_file(self.path)
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(logger, "")
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EngineMismatch(f"TensorRT {trt.__version__} could not load {self.path} (built for another GPU or "
                                 "TensorRT version?): rebuild it on this machine")
        self.context = self.engine.create_execution_context()
        _, _, max_shape = self.engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.max_batch = int(max_shape[0])
        self.input_size = (int(max_shape[1]), int(max_shape[2]))
        self.embedding_dim = int(self.engine.get_tensor_shape(OUTPUT_NAME)[-1])
        self.modality = as_modality(modality)
        self.cuda = _CudaPython()

    def _run(self, images: np.ndarray) -> np.ndarray:
        batch = len(images)
        self.context.set_input_shape(INPUT_NAME, images.shape)
        out_bytes = batch * self.embedding_dim * 4
        src = self.cuda.buffer(INPUT_NAME, images.nbytes)
        dst = self.cuda.buffer(OUTPUT_NAME, out_bytes)
        self.context.set_tensor_address(INPUT_NAME, src)
        self.context.set_tensor_address(OUTPUT_NAME, dst)
        self.cuda.to_device(src, images, INPUT_NAME)
        if not self.context.execute_async_v3(self.cuda.stream):
            raise RuntimeError(f"TensorRT execution failed for {self.path}")
        staged = self.cuda.to_host(dst, out_bytes, OUTPUT_NAME)
        self.cuda.synchronize()  # staging buffers must not be read before this
        return staged.view(np.float32).reshape(batch, self.embedding_dim).copy()

    def close(self) -> None:
        """Free the CUDA buffers and stream; the embedder cannot run afterwards."""
        cuda = getattr(self, "cuda", None)
        if cuda is not None:
            cuda.close()

    def __enter__(self) -> TensorRTEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TensorRTEmbedder(TensorRTEngine):
    """A TensorRT engine that passed its parity check, on the platform it was built for: what `open_model` returns.

    Refuses, before TensorRT is imported, an engine whose sidecar is missing (trtexec builds), of another format,
    records no passed parity check, or checked other bytes (`verified_sidecar`); then one built for another GPU,
    compute capability or TensorRT version (`check_compatible`).
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        _require_engine_file(path)
        self.sidecar = verified_sidecar(path)
        check_compatible(self.sidecar, current_platform(), path)
        super().__init__(path, self.sidecar["modality"])
