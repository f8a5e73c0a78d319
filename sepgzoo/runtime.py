"""Torch-free inference on exported models: ONNX Runtime or a TensorRT engine, image loading, batching.

Needs only numpy, pillow and onnxruntime (or tensorrt + cuda-python for engines); importing this module
never imports torch, so it runs on machines that have no PyTorch.

Example:
    >>> from sepgzoo.runtime import open_model
    >>> model = open_model("runs/sysu/export", modality="infrared")
    >>> model.provider
    'CPUExecutionProvider'
    >>> emb = model.embed_paths(["a.jpg", "b.jpg"])   # float32 [2, D]
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality
from sepgzoo.preprocess import IMAGE_SUFFIXES, load_inputs

FORMAT = "sepgzoo-export/2"
# Older export formats and why they are refused (format 1: embeddings of norm sqrt(parts), not 1).
RETIRED_FORMATS = {"sepgzoo-export/1": "its embeddings have norm sqrt(parts) instead of 1"}
EXPORT_JSON = "export.json"
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
DEVICE_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}


# ---------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------
def list_images(directory: str | Path) -> list[Path]:
    """Image files under a directory (recursively), sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory} is not a directory of images")
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


# ---------------------------------------------------------------------------------------------------------------
# Embedding helpers
# ---------------------------------------------------------------------------------------------------------------
def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (exported embeddings already have it; this guards user-made arrays)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, D] arrays, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def rank(query: np.ndarray, gallery: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery indices and cosine similarities per query row: ([Q, k] int, [Q, k] float)."""
    similarity = normalise_rows(query) @ normalise_rows(gallery).T
    k = min(top_k, similarity.shape[1])
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(similarity, order, axis=1)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file (weights, graphs, engines)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Export directories
# ---------------------------------------------------------------------------------------------------------------
def read_export_json(directory: str | Path) -> dict[str, Any]:
    """The parsed `export.json` of an export directory (UserError naming the file when missing or invalid)."""
    path = Path(directory) / EXPORT_JSON
    if not path.is_file():
        raise UserError(f"{path} not found: expected an export directory written by `sepgzoo export`")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err})") from err
    check_export_format(record.get("format") if isinstance(record, dict) else None, path)
    return record


def check_export_format(found: Any, where: str | Path) -> None:
    """UserError naming `where` unless `found` is the current export format (a retired one says how to update)."""
    if found == FORMAT:
        return
    if found in RETIRED_FORMATS:
        raise UserError(f"{where} was written by an older sepgzoo (format {found!r}: {RETIRED_FORMATS[found]}); "
                        f"export the checkpoint again with `sepgzoo export` to get format {FORMAT!r}")
    raise UserError(f"{where} has no sepgzoo export metadata (format {found!r}, expected {FORMAT!r}); "
                    "export it with `sepgzoo export`")


def onnx_metadata(session) -> dict[str, Any]:
    """The `sepgzoo.*` entries of an ONNX Runtime session's custom metadata, JSON-decoded."""
    out = {}
    for key, value in session.get_modelmeta().custom_metadata_map.items():
        if key.startswith("sepgzoo."):
            try:
                out[key[len("sepgzoo."):]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len("sepgzoo."):]] = value
    return out


class Embedder(Protocol):
    """What `open_model` returns: one modality's exported model."""

    modality: Modality
    input_size: tuple[int, int]
    embedding_dim: int
    max_batch: int
    provider: str

    def embed(self, images: np.ndarray) -> np.ndarray: ...

    def embed_paths(self, paths: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray: ...


class _Batching:
    """Shared batching on top of `_run(batch)`: splits any N into chunks of at most `max_batch`."""

    modality: Modality
    input_size: tuple[int, int]
    embedding_dim: int
    max_batch: int

    def _run(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Embeddings float32 [N, D] of uint8 RGB images [N, H, W, 3] (or one [H, W, 3] image)."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        expected = (*self.input_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected or images.dtype != np.uint8:
            raise UserError(f"images must be uint8 [N, {expected[0]}, {expected[1]}, 3] RGB, got "
                            f"{images.dtype} {list(images.shape)}")
        if len(images) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        chunks = [self._run(np.ascontiguousarray(images[i : i + self.max_batch]))
                  for i in range(0, len(images), self.max_batch)]
        return np.concatenate(chunks).astype(np.float32, copy=False)

    def embed_paths(self, paths: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray:
        """Embeddings [N, D] of image files, read and resized `batch_size` at a time."""
        step = max(1, min(batch_size or self.max_batch, self.max_batch))
        out = [self.embed(load_inputs(paths[i : i + step], self.input_size)) for i in range(0, len(paths), step)]
        return np.concatenate(out) if out else np.zeros((0, self.embedding_dim), dtype=np.float32)


class OnnxEmbedder(_Batching):
    """An exported `.onnx` file on ONNX Runtime with explicitly chosen execution providers.

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
        check_export_format(self.metadata.get("format"), self.path)
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
        from sepgzoo.tensorrt import ort_cache_prefix, ort_tensorrt_options

        cache = Path(trt_cache) if trt_cache is not None else self.path.parent / self.TRT_CACHE
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the TensorRT cache folder {cache} ({err.strerror}); "
                            "give another one with trt_cache=") from None
        metadata = self._peek_metadata()
        check_export_format(metadata.get("format"), self.path)  # the profile needs its input_size and max_batch
        return name, ort_tensorrt_options(metadata, cache, ort_cache_prefix(self.path))

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
        return f"OnnxEmbedder({str(self.path)!r}, modality={self.modality.value}, provider={self.provider})"


def open_model(path: str | Path, modality: str | Modality | None = None, backend: str = "onnxruntime",
               providers: str | Sequence[str] = "cpu", fp16: bool = False, threads: int | None = None,
               trt_cache: str | Path | None = None) -> Embedder:
    """Open one modality of an exported model.

    Args:
        path: an export directory (with `export.json`), an `.onnx` file, or a TensorRT engine (`.plan`).
        modality: required for a directory; checked against the file's metadata otherwise.
        backend: "onnxruntime" or "tensorrt" (for a directory: use `<modality>[_fp16].plan` there).
        providers: ONNX Runtime providers or a device word ("cpu", "cuda", "tensorrt").
        fp16: for a directory, pick the fp16 variant.
        threads: ONNX Runtime intra-op threads.
        trt_cache: ONNX Runtime's TensorRT engine/timing cache folder (default: `trt_cache` next to the model).

    Example:
        >>> open_model("export", "visible").embed(np.zeros((2, 288, 144, 3), np.uint8)).shape
        (2, 6144)
    """
    path = Path(path)
    wanted = as_modality(modality) if modality is not None else None
    if backend not in ("onnxruntime", "tensorrt"):
        raise UserError(f"backend must be 'onnxruntime' or 'tensorrt', got {backend!r}")
    if path.is_dir():
        if wanted is None:
            raise UserError(f"{path} is an export directory: say which modality to open (visible or infrared)")
        record = read_export_json(path)
        precision = "fp16" if fp16 else "fp32"
        try:
            name = record["files"][wanted.value][precision]
        except KeyError:
            raise UserError(f"{path / EXPORT_JSON} lists no {precision} graph for {wanted.value}"
                            + (" (export again with --fp16)" if fp16 else "")) from None
        path = path / name
        if backend == "tensorrt":
            path = path.with_suffix(".plan")
    if path.suffix.lower() in ENGINE_SUFFIXES or backend == "tensorrt":
        from sepgzoo.tensorrt import TensorRTEmbedder

        model: Embedder = TensorRTEmbedder(path)
    elif path.suffix.lower() == ".onnx":
        model = OnnxEmbedder(path, providers=providers, threads=threads, trt_cache=trt_cache)
    else:
        raise UserError(f"{path}: expected an export directory, an .onnx file or a TensorRT engine "
                        f"({', '.join(ENGINE_SUFFIXES)})")
    if wanted is not None and model.modality is not wanted:
        raise UserError(f"{path} embeds {model.modality.value} images, but {wanted.value} was asked for")
    return model
