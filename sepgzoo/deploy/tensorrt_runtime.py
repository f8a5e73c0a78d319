"""Running TensorRT engines: `TensorRTEngine` runs any engine, `TensorRTEmbedder` only one that passed its parity
check on the platform it was built for (what `open_model` returns for a `.plan`).

The runtime never builds: engines come from `sepgzoo.deploy.tensorrt_build` (`sepgzoo export --trt`), which
publishes an engine with a sidecar recording its passed check and its SHA-256. Torch-free; `tensorrt` is imported
when an engine is opened and cuda-python when its buffers are made (`sepgzoo.deploy.cuda_buffers`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sepgzoo.deploy.contract import INPUT_NAME, OUTPUT_NAME, Batching
from sepgzoo.deploy.cuda_buffers import CudaBuffers
from sepgzoo.deploy.tensorrt_platform import EngineMismatch, check_compatible, current_platform, verified_sidecar
from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality


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
        self.cuda = CudaBuffers()

    def _run(self, images: np.ndarray) -> np.ndarray:
        batch = len(images)
        if not self.context.set_input_shape(INPUT_NAME, images.shape):  # False: outside the engine's profile
            raise UserError(f"{self.path} cannot take a batch of shape {list(images.shape)}: its profile allows "
                            f"1..{self.max_batch} images of {self.input_size[0]} x {self.input_size[1]} x 3")
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
