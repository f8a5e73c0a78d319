"""ONNX Runtime backend: an exported `.onnx` graph with explicitly chosen execution providers. Torch-free.

`OnnxEmbedder` (what `open_model` returns) runs only a graph whose metadata records a passed parity check;
`OnnxGraph` runs any graph of the export format (`bench infer` times graphs exported without the check).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.deploy.contract import (
    INPUT_NAME,
    OUTPUT_NAME,
    Batching,
    check_export_format,
    decode_metadata,
    default_opt_batch,
    describe_check,
    passed_check,
)
from sepgzoo.errors import UserError
from sepgzoo.modality import as_modality
from sepgzoo.utils.hashing import sha256_file

DEVICE_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


def onnx_metadata(session) -> dict[str, Any]:
    """The `sepgzoo.*` entries of an ONNX Runtime session's custom metadata, JSON-decoded."""
    return decode_metadata(session.get_modelmeta().custom_metadata_map.items())


def run_on_cpu(graph: str | Path, inputs: np.ndarray) -> np.ndarray:
    """The graph's output for `inputs` fed to its `images` input on ONNX Runtime's CPU provider, no check and no
    batching: how a newly made graph (a float-input or INT8 variant) is compared with the graph it came from."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: inputs})[0]


def ort_tensorrt_options(metadata: dict[str, Any], cache_dir: str | Path, cache_prefix: str) -> dict[str, str]:
    """Options for ONNX Runtime's TensorrtExecutionProvider on an exported graph (values as ORT reads them).

    The batch profile is min 1 / opt / max `max_batch`, as the trtexec lines, so ORT builds one engine for
    every batch size instead of one per new size; engines and kernel timings are cached in `cache_dir`.
    The prefix must name the graph's content: ORT's engine-cache key is derived from the graph's structure
    and names, not its weights, so a re-exported model of the same architecture would load a stale engine.
    `trt_fp16_enable` stays off: it is TensorRT's weak-typing FP16 flag (see the module docstring); the fp16
    graph runs with the types it was exported with.

    Args:
        metadata: the graph's `sepgzoo.*` metadata (`input_size` [H, W], `max_batch`).
        cache_dir: folder for the engine and timing caches.
        cache_prefix: file-name prefix of the cached engines (see `ort_cache_prefix`).
    """
    max_batch = int(metadata.get("max_batch", 32))
    h, w = (int(v) for v in metadata["input_size"])
    shape = lambda n: f"{INPUT_NAME}:{n}x{h}x{w}x3"  # noqa: E731
    return {"trt_profile_min_shapes": shape(1), "trt_profile_opt_shapes": shape(default_opt_batch(max_batch)),
            "trt_profile_max_shapes": shape(max_batch),
            "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir),
            "trt_engine_cache_prefix": cache_prefix,
            "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache_dir),
            "trt_fp16_enable": "False"}


def ort_cache_prefix(onnx_path: str | Path) -> str:
    """`visible_fp16_<first 16 hex of the file's SHA-256>`: cached engines of another export never match."""
    return f"{Path(onnx_path).stem}_{sha256_file(onnx_path)[:16]}"


class OnnxGraph(Batching):
    """An exported `.onnx` file on ONNX Runtime with explicitly chosen execution providers.

    Checks the export format only; deployments open graphs with `OnnxEmbedder`, which also refuses a graph
    that has not passed its parity check.

    When a requested provider fails to start, ONNX Runtime prints "EP Error ... Falling back" to stdout and
    retries on CPU (or CUDA); here that text becomes one RuntimeWarning (stdout stays clean for `--json`),
    and `provider` always reads the provider the session really uses. ONNX Runtime's silent fallback during
    `run` is disabled: a provider failing there raises instead of switching behind `provider`'s back.

    With the TensorRT provider, the engine's batch profile (1 / opt / `max_batch`) comes from the graph's
    metadata, and engines and kernel timings are cached, so sessions after the first start quickly.

    Args:
        path: an `.onnx` file written by `sepgzoo export`.
        providers: ONNX Runtime execution providers in order of preference, or a device word
            ("cpu", "cuda", "tensorrt") for the usual lists.
        threads: intra-op threads (None: ONNX Runtime's default).
        trt_cache: folder for the TensorRT engine and timing caches (default: `trt_cache` next to the model).
    """

    TRT_CACHE = "trt_cache"

    def __init__(self, path: str | Path, providers: str | Sequence[str] = "cpu", threads: int | None = None,
                 trt_cache: str | Path | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"ONNX model {self.path} does not exist")
        requested = self._requested(providers)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        entries = [self._with_options(name, trt_cache) for name in requested]
        self.session = self._open_session(options, entries, requested[0])
        self.metadata = onnx_metadata(self.session)
        self._check_metadata(self.metadata)
        self.modality = as_modality(self.metadata["modality"])
        self.input_size = tuple(self.metadata["input_size"])
        self.embedding_dim = int(self.metadata["embedding_dim"])
        self.max_batch = int(self.metadata.get("max_batch", 32))
        self.precision = self.metadata.get("precision", "fp32")

    @property
    def provider(self) -> str:
        """The execution provider the session runs on (first of the session's list)."""
        return self.session.get_providers()[0]

    @staticmethod
    def _requested(providers: str | Sequence[str]) -> list[str]:
        import onnxruntime as ort

        requested = list(DEVICE_PROVIDERS.get(providers, (providers,)) if isinstance(providers, str) else providers)
        unknown = [p for p in requested if p not in ort.get_available_providers()]
        if unknown:
            raise UserError(f"execution providers {unknown} are not in this onnxruntime build "
                            f"(available: {ort.get_available_providers()}); for CUDA install onnxruntime-gpu "
                            "instead of onnxruntime (they share one module, keep only one)")
        return requested

    def _with_options(self, name: str, trt_cache: str | Path | None) -> str | tuple[str, dict[str, str]]:
        """A provider name, or (name, options) for TensorRT (batch profile and caches)."""
        if name != "TensorrtExecutionProvider":
            return name
        cache = Path(trt_cache) if trt_cache is not None else self.path.parent / self.TRT_CACHE
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the TensorRT cache folder {cache} ({err.strerror}); "
                            "give another one with trt_cache=") from None
        metadata = self._peek_metadata()
        self._check_metadata(metadata)  # before TensorRT builds anything; the profile needs input_size and max_batch
        return name, ort_tensorrt_options(metadata, cache, ort_cache_prefix(self.path))

    def _check_metadata(self, metadata: dict[str, Any]) -> None:
        """UserError naming the file unless its metadata is of the current export format."""
        check_export_format(metadata.get("format"), self.path)

    def _peek_metadata(self) -> dict[str, Any]:
        """The graph's metadata before the real session exists (a CPU session without graph optimisation)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return onnx_metadata(ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"]))

    def _open_session(self, options, entries: list, wanted: str):
        """The session, with what ONNX Runtime prints on a provider fallback turned into one RuntimeWarning."""
        import contextlib
        import io

        import onnxruntime as ort

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # ORT's fallback uses print()
            session = ort.InferenceSession(str(self.path), options, providers=entries)
        session.disable_fallback()
        actual = session.get_providers()[0]
        lines = (line.strip("* \t") for line in printed.getvalue().splitlines())  # "*** EP Error ***" banners
        said = " ".join(" ".join(lines).split())
        if actual != wanted or said:
            reason = said or "missing CUDA/TensorRT libraries or GPU"
            warnings.warn(f"ONNX Runtime is using {actual}, not the requested {wanted} ({reason})", RuntimeWarning,
                          stacklevel=3)
        return session

    def _run(self, images: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, modality={self.modality.value}, provider={self.provider})"


class OnnxEmbedder(OnnxGraph):
    """An exported graph that passed its parity check, on ONNX Runtime: what `open_model` returns for ONNX.

    Refuses, before running anything, a graph whose metadata (`sepgzoo.parity`, the record `sepgzoo export`
    writes into the graph once its parity check passed) records no passed check (a graph exported with
    `to_onnx(..., parity=False)` or by another tool). Arguments as `OnnxGraph`.
    """

    def _check_metadata(self, metadata: dict[str, Any]) -> None:
        super()._check_metadata(metadata)
        if not passed_check(metadata.get("parity")):
            raise UserError(f"ONNX model {self.path}: its metadata record sepgzoo.parity holds "
                            f"{describe_check(metadata.get('parity'))}; expected parity.passed = true (a graph "
                            "written by `sepgzoo export`, which checks it): export it again with `sepgzoo export`")
