"""What the TensorRT builder, the runtime and the packagers (Triton) all need: is TensorRT usable here, on which
platform, and the engine sidecar: its name, its format, the rule that accepts it, and its platform match.

An engine is published with a sidecar (`visible.plan.json`) recording its passed parity check, its SHA-256 and the
platform it was built on: `verified_sidecar` accepts only an engine whose sidecar records a passed check for exactly
its bytes, and `check_compatible` refuses one built for another GPU or TensorRT version. Torch-free, and
`tensorrt` / cuda-python are imported lazily, so probing works (and answers "not here") on any machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from sepgzoo.deploy.contract import describe_check, passed_check
from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality
from sepgzoo.utils.atomic import read_json
from sepgzoo.utils.hashing import sha256_file

#: Sidecar formats. 1: built from export format 1 (embeddings of norm sqrt(parts)). 2: written before the parity
#: check, so it may describe an engine that failed it. 3: written only once the engine passed its parity check; it
#: records the check (`parity`) and the engine's SHA-256 (`engine_sha256`), which binds the record to those bytes.
#: The runtime reads format 3 only.
ENGINE_FORMAT = "sepgzoo-trt-engine/3"
REBUILD = "rebuild it with `sepgzoo export --trt` on this machine"
CUDA_PYTHON_PIP = "pip install 'cuda-python>=12,<13' (CUDA 12, JetPack 6) or 'cuda-python>=13,<14' (CUDA 13)"


class TensorRTUnavailable(UserError):
    """TensorRT or a CUDA device is missing here; the message names TensorRT and what to run instead."""


class EngineMismatch(UserError):
    """An engine was built for another GPU or TensorRT version (engines are not portable)."""


class EngineNotVerified(UserError):
    """An engine whose sidecar does not record a passed parity check for exactly its bytes: the runtime refuses it."""


#: what an engine can be built from: the fp32 graph, the fp16 graph, or the symmetric Q/DQ graph (explicit
#: quantization; `int8-cpu` has asymmetric activations, which TensorRT refuses)
ENGINE_PRECISIONS = ("fp32", "fp16", "int8")


def check_engine_precision(precision: str) -> str:
    if precision not in ENGINE_PRECISIONS:
        raise UserError(f"TensorRT engines are built for {', '.join(ENGINE_PRECISIONS)}; got {precision!r}")
    return precision


def engine_filename(modality: str | Modality, precision: str = "fp32") -> str:
    """`visible.plan`, `infrared_fp16.plan`, `visible_int8.plan`: the graph's name with `.plan`."""
    check_engine_precision(precision)
    return f"{as_modality(modality).value}{'' if precision == 'fp32' else '_' + precision}.plan"


def sidecar_path(engine: str | Path) -> Path:
    """`visible.plan` -> `visible.plan.json`."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def import_cudart():
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
    cudart = import_cudart()
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
    if import_cudart() is None:
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
