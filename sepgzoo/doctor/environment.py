"""What `sepgzoo doctor` prints and every self-check report records: versions, GPUs, ONNX Runtime providers,
TensorRT, and why there is no CUDA device when there is none."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from typing import Any


def cuda_missing() -> str | None:
    """Why there is no usable CUDA device (one line), or None when torch sees one."""
    import warnings

    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return None
    detail = "; ".join(" ".join(str(w.message).split()) for w in caught)[:300]
    build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return (f"no CUDA device (torch.cuda.is_available() is False{': ' + detail if detail else ''}; "
            f"torch {torch.__version__}, {build})")


def environment() -> dict[str, Any]:
    """Versions and hardware: torch / CUDA / cuDNN, GPUs, ONNX Runtime build and providers, TensorRT."""
    import torch

    from sepgzoo.version import __version__

    env: dict[str, Any] = {
        "sepgzoo": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(), "cpu_threads": torch.get_num_threads(),
        "timm": _package("timm"), "onnx": _package("onnx"),
    }
    if env["cuda_available"]:
        env["gpus"] = _gpus()
        env["nvidia_driver"] = _nvidia_driver()
    env["onnxruntime"] = _onnxruntime()
    env["tensorrt"] = _tensorrt()
    return env


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gpus() -> list[dict[str, Any]]:
    import torch

    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append({"name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                     "memory_gib": round(props.total_memory / 2**30, 1)})
    return gpus


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "--id=0"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def _onnxruntime() -> dict[str, Any]:
    """The ONNX Runtime version, which package provides it (CPU or GPU build), and its providers."""
    try:
        import onnxruntime
    except ImportError as err:
        return {"version": None, "error": str(err)}
    return {"version": onnxruntime.__version__,
            "packages": [p for p in ("onnxruntime", "onnxruntime-gpu") if _package(p)],
            "providers": onnxruntime.get_available_providers()}


def _tensorrt() -> dict[str, Any]:
    """The TensorRT version, and whether sepgzoo can build and run engines here (and why not)."""
    from sepgzoo.deploy.tensorrt_platform import tensorrt_missing

    reason = tensorrt_missing()
    return {"version": _tensorrt_version(), "usable": reason is None, "reason": reason}


def _tensorrt_version() -> str | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return str(getattr(tensorrt, "__version__", "unknown"))
