"""Device memory for the TensorRT runtime through cuda-python, without torch: a stream, device buffers and pinned
host staging buffers, grown on demand, reused, and always freed.

cuda-python is imported when a `CudaBuffers` is made, not when this module is imported (see
`sepgzoo.deploy.tensorrt_platform.import_cudart`).
"""

from __future__ import annotations

import ctypes
import weakref
from typing import Any

import numpy as np

from sepgzoo.deploy.tensorrt_platform import CUDA_PYTHON_PIP, TensorRTUnavailable, import_cudart


def _release(cudart, owned: dict[str, Any]) -> None:
    """Free what `CudaBuffers` allocated (waits for the stream first); best effort, also at interpreter exit."""
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


class CudaBuffers:
    """A non-default stream, device buffers and pinned host staging buffers through cuda-python (no torch).

    Buffers grow on demand and are reused; `close()` (or the context manager, or garbage collection)
    frees them all. Host copies go through pinned (page-locked) memory: with pageable memory the driver may
    stage cudaMemcpyAsync synchronously (CUDA runtime API, "API synchronization behavior").
    """

    def __init__(self) -> None:
        cudart = import_cudart()
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

    def __enter__(self) -> CudaBuffers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
