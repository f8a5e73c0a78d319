"""Torch-free inference on exported models: `open_model` for ONNX Runtime or a TensorRT engine, and ranking.

Needs only numpy, pillow and onnxruntime (or tensorrt + cuda-python for engines); importing this module
never imports torch, so it runs on machines that have no PyTorch.

Example:
    >>> from sepgzoo.deploy.runtime import open_model
    >>> model = open_model("runs/sysu/export", modality="infrared")
    >>> model.provider
    'CPUExecutionProvider'
    >>> emb = model.embed_paths(["a.jpg", "b.jpg"])   # float32 [2, D], unit norm
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sepgzoo.deploy.contract import (
    ENGINE_SUFFIXES,
    EXPORT_JSON,
    Embedder,
    describe_check,
    normalise_rows,
    passed_check,
    read_export_json,
)
from sepgzoo.deploy.ort_runtime import OnnxEmbedder
from sepgzoo.deploy.tensorrt_platform import engine_filename
from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality
from sepgzoo.utils.hashing import sha256_file


def rank(query: np.ndarray, gallery: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery indices and cosine similarities per query row: ([Q, k] int, [Q, k] float)."""
    similarity = normalise_rows(query) @ normalise_rows(gallery).T
    k = min(top_k, similarity.shape[1])
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(similarity, order, axis=1)


def _file_in_export(directory: Path, modality: Modality, precision: str, backend: str) -> Path:
    """The graph (or, for TensorRT, the engine beside it) of an export directory for one modality and precision.

    A graph must have a passed parity check in `export.json` (`parity.<modality>.<precision>`) and the SHA-256
    that `export.json` records for it; UserError naming the file and the record otherwise.
    """
    where = directory / EXPORT_JSON
    record = read_export_json(directory)
    try:
        name = record["files"][modality.value][precision]
    except KeyError:
        hint = {"fp16": " (export again with --fp16)", "int8": " (export again with --int8)",
                "int8-cpu": " (export again with --int8)"}.get(precision, "")
        raise UserError(f"{where} lists no {precision} graph for {modality.value}{hint}") from None
    if backend == "tensorrt":
        return directory / engine_filename(modality, precision)
    graph = directory / name
    key = f"parity.{modality.value}.{precision}"
    parity = record.get("parity", {}).get(modality.value, {}).get(precision)
    if not passed_check(parity):
        raise UserError(f"{graph}: {where} records {describe_check(parity)} for it ({key}); expected "
                        f"{key}.passed = true: export the checkpoint again with `sepgzoo export`")
    if graph.is_file() and record.get("sha256", {}).get(name) != sha256_file(graph):
        raise UserError(f"{graph} is not the graph {where} checked (its sha256.{name} differs): export the "
                        "checkpoint again with `sepgzoo export`")
    return graph


def open_model(path: str | Path, modality: str | Modality | None = None, backend: str = "onnxruntime",
               providers: str | Sequence[str] = "cpu", fp16: bool = False, threads: int | None = None,
               trt_cache: str | Path | None = None, precision: str | None = None) -> Embedder:
    """Open one modality of an exported model that passed its parity checks.

    A graph is refused unless `export.json` (for a directory) and the graph's own metadata record a passed parity
    check for it; an engine unless its sidecar does (see `TensorRTEmbedder`). Each refusal names the file and
    the record.

    Args:
        path: an export directory (with `export.json`), an `.onnx` file, or a TensorRT engine (`.plan`).
        modality: required for a directory; checked against the file's metadata otherwise.
        backend: "onnxruntime" or "tensorrt" (for a directory: use `<modality>[_fp16|_int8].plan` there).
        providers: ONNX Runtime providers or a device word ("cpu", "cuda", "tensorrt").
        fp16: for a directory, pick the fp16 variant (the same as precision="fp16").
        threads: ONNX Runtime intra-op threads.
        trt_cache: ONNX Runtime's TensorRT engine/timing cache folder (default: `trt_cache` next to the model).
        precision: for a directory, which graph: "fp32", "fp16", "int8" (symmetric Q/DQ, TensorRT's) or "int8-cpu"
            (uint8 activations, ONNX Runtime's fast x86 flavour); default fp32 (fp16 with `fp16=True`).

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
        path = _file_in_export(path, wanted, precision or ("fp16" if fp16 else "fp32"), backend)
    if path.suffix.lower() in ENGINE_SUFFIXES or backend == "tensorrt":
        from sepgzoo.deploy.tensorrt_runtime import TensorRTEmbedder

        model: Embedder = TensorRTEmbedder(path)
    elif path.suffix.lower() == ".onnx":
        model = OnnxEmbedder(path, providers=providers, threads=threads, trt_cache=trt_cache)
    else:
        raise UserError(f"{path}: expected an export directory, an .onnx file or a TensorRT engine "
                        f"({', '.join(ENGINE_SUFFIXES)})")
    if wanted is not None and model.modality is not wanted:
        raise UserError(f"{path} embeds {model.modality.value} images, but {wanted.value} was asked for")
    return model
