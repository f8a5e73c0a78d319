"""The deployment contract, shared by the exporter and every runtime: names, formats, parity thresholds, batches and
images, metadata decoding, and the batching every embedder (ONNX Runtime, TensorRT, PyTorch) offers.

Torch-free. The image side of the contract (decode, resize) is `sepgzoo.preprocess`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sepgzoo.errors import UserError
from sepgzoo.modality import Modality
from sepgzoo.preprocess import load_inputs

FORMAT = "sepgzoo-export/2"
# Older export formats and why they are refused (format 1: embeddings of norm sqrt(parts), not 1).
RETIRED_FORMATS = {"sepgzoo-export/1": "its embeddings have norm sqrt(parts) instead of 1"}
EXPORT_JSON = "export.json"
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
METADATA_PREFIX = "sepgzoo."
#: minimum per-image cosine between a deployed backend and its fp32 reference, per precision. For INT8 it checks
#: that the graph or engine is wired right (a broken one lands near 0), not its accuracy, which `eval --model` gates
#: on the test split. Measured for INT8: 0.9999 on sepg_resnet50 (benchmarks/results/int8-cpu), 0.98 on the 64 x 32
#: test model calibrated on 16 images.
PARITY_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.95}


def default_opt_batch(max_batch: int) -> int:
    """The batch TensorRT tunes for: half the maximum (at most 16), a typical number of crops per frame."""
    return max(1, min(16, max_batch // 2 or 1))


def parity_batches(max_batch: int) -> list[int]:
    """The batch sizes every parity check runs: 1, 3 and the maximum (a batch-1 and a batched kernel path)."""
    return sorted({1, min(3, max_batch), max_batch})


def parity_images(count: int, input_size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """The deterministic uint8 images [count, H, W, 3] that every parity check (ONNX and TensorRT) embeds.

    Each image is a colour gradient of its own plus Gaussian noise, not uniform noise, which is the weaker test: its
    spectrum is unrealistically flat for SEG, and noise images all look alike to a network (on the shipped
    sepg_tiny.synthetic, embeddings of different noise images have mean cosine 0.91-0.93, of these 0.23-0.45), so a
    runtime that mixed up rows or partly ignored its input would come closer to passing.
    """
    rng = np.random.default_rng(seed)
    h, w = input_size
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    images = []
    for _ in range(count):
        a, b, c = rng.uniform(-1, 1, size=(3, 3))
        base = np.stack([a[i] * yy + b[i] * xx + c[i] for i in range(3)], axis=-1)
        noisy = 127.5 + 60 * base + rng.normal(0, 25, size=(h, w, 3))
        images.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return np.stack(images)


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


def passed_check(parity: Any) -> bool:
    """Whether a recorded parity check (a `parity` entry of export.json, the graph metadata or an engine sidecar)
    says it passed. A missing or malformed record has not passed: the runtimes load only what passed."""
    return isinstance(parity, dict) and parity.get("passed") is True


def describe_check(parity: Any) -> str:
    """What a parity record says, for a refusal: "no parity check" or "a failed parity check (min cosine ...)"."""
    if not isinstance(parity, dict) or "passed" not in parity:
        return "no parity check"
    if parity["passed"] is True:
        return "a passed parity check"
    try:
        numbers = f"min cosine {min(parity['min_cosine'].values()):.6f}, threshold {parity['threshold']}"
    except (KeyError, TypeError, AttributeError, ValueError):
        numbers = "no numbers recorded"
    return f"a failed parity check ({numbers})"


def decode_metadata(entries) -> dict[str, Any]:
    """The `sepgzoo.*` entries of ONNX metadata ((key, value) pairs) without the prefix, JSON-decoded where encoded."""
    out = {}
    for key, value in entries:
        if key.startswith(METADATA_PREFIX):
            try:
                out[key[len(METADATA_PREFIX):]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len(METADATA_PREFIX):]] = value
    return out


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (exported embeddings already have it; this guards user-made arrays)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, D] arrays, in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


class Embedder(Protocol):
    """What `open_model` returns: one modality's exported model."""

    modality: Modality
    input_size: tuple[int, int]
    embedding_dim: int
    max_batch: int
    provider: str

    def embed(self, images: np.ndarray) -> np.ndarray: ...

    def embed_paths(self, paths: Sequence[str | Path], batch_size: int | None = None) -> np.ndarray: ...


class Batching:
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
