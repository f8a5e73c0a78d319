"""Smaller embeddings: a PCA projection folded into the exported graph (`export --dim K`).

DeepStream trackers and vector databases prefer 128-512 dimensions to 6144. The projection is fitted on the fp32
graphs' embeddings of training images of both modalities (one space for both: cross-modality distances must stay
comparable), centred, without whitening. It is appended to each fp32 graph as MatMul + Add + L2 normalisation, so
the projected graph keeps the export's contract (uint8 images in, unit-norm float32 embeddings out) with K columns.
Each projected graph is checked against the same projection applied to the fp32 graph's output with numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.deploy.contract import OUTPUT_NAME, PARITY_COSINE, cosine_rows
from sepgzoo.errors import UserError

PREFIX = "dim"


def projection_name(dim: int) -> str:
    """The precision key of a projected graph in export.json (`dim256`): files, parity and `eval --precision`."""
    return f"{PREFIX}{dim}"


def is_projection_name(precision: str) -> bool:
    """Whether a precision key names a projected graph (`dim<K>`)."""
    return precision.startswith(PREFIX) and precision[len(PREFIX):].isdigit()


def fit_pca(embeddings: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean [D], components [D, K], explained variance fraction) of the rows of `embeddings`."""
    count, full = embeddings.shape
    if not 1 <= dim < min(count, full):
        raise UserError(f"--dim {dim}: expected 1 <= K < min(embedding size {full}, fitting images {count}); "
                        "draw more images with --calib-images")
    x = embeddings.astype(np.float64)
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    explained = float((singular[:dim] ** 2).sum() / (singular ** 2).sum())
    return mean.astype(np.float32), vt[:dim].T.astype(np.float32), explained


def project(embeddings: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """The projection in numpy: (x - mean) @ components, rows scaled to norm 1 (what the graph computes)."""
    y = (embeddings - mean) @ components
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def projected_graph(fp32_graph: Path, output: Path, mean: np.ndarray, components: np.ndarray) -> None:
    """Write `fp32_graph` with the projection appended to its output (same input, output `embeddings` [B, K])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(fp32_graph))
    graph = model.graph
    full = f"{OUTPUT_NAME}_full"
    for node in graph.node:
        node.output[:] = [full if name == OUTPUT_NAME else name for name in node.output]
    bias = -(mean @ components)
    graph.initializer.extend([numpy_helper.from_array(components, "pca_components"),
                              numpy_helper.from_array(bias.astype(np.float32), "pca_bias")])
    graph.node.extend([
        helper.make_node("MatMul", [full, "pca_components"], ["pca_projected"], name="pca_matmul"),
        helper.make_node("Add", ["pca_projected", "pca_bias"], ["pca_centred"], name="pca_centre"),
        helper.make_node("LpNormalization", ["pca_centred"], [OUTPUT_NAME], axis=1, p=2, name="pca_l2")])
    batch = graph.output[0].type.tensor_type.shape.dim[0]
    del graph.output[:]
    out = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, components.shape[1]])
    out.type.tensor_type.shape.dim[0].CopyFrom(batch)
    graph.output.append(out)
    onnx.checker.check_model(model)
    onnx.save(model, str(output))


def projection_parity(fp32_graph: Path, graph: Path, images: np.ndarray, mean: np.ndarray,
                      components: np.ndarray) -> dict[str, Any]:
    """The projected graph against numpy's projection of the fp32 graph's embeddings (ONNX Runtime CPU)."""
    from sepgzoo.deploy.ort_runtime import run_on_cpu

    threshold = PARITY_COSINE["fp32"]
    expected = project(run_on_cpu(fp32_graph, images), mean, components)
    cosine = float(cosine_rows(run_on_cpu(graph, images), expected).min())
    return {"reference": "numpy projection of the onnxruntime-cpu fp32 graph", "min_cosine": {str(len(images)): cosine},
            "threshold": threshold, "passed": cosine >= threshold}


def add_projection(export_dir: str | Path, fitting: dict[str, np.ndarray], dim: int, seed: int,
                   check=None) -> dict[str, Any]:
    """Fit a K-dimensional PCA on the fp32 graphs' embeddings of `fitting` (modality -> uint8 images), write both
    projected graphs (`<modality>_dim<K>.onnx`), and record them in export.json; the export is replaced only once
    everything, `check` included, passed. `check(staged_export_dir) -> dict` is the accuracy gate; what it returns is
    recorded under `projection.gate`."""
    from sepgzoo.deploy.contract import parity_images
    from sepgzoo.deploy.derived import add_graph, new_file, staged_export, write_record
    from sepgzoo.deploy.ort_runtime import run_on_cpu

    precision = projection_name(dim)
    with staged_export(export_dir) as (staging, record):
        graphs = {m: staging / record["files"][m]["fp32"] for m in fitting}
        embeddings = np.concatenate([run_on_cpu(graphs[m], pixels) for m, pixels in fitting.items()])
        mean, components, explained = fit_pca(embeddings, dim)
        about = {"method": "PCA, centred, no whitening", "dim": dim, "from_dim": int(embeddings.shape[1]),
                 "explained_variance": explained, "fitted_on": {m: len(p) for m, p in fitting.items()},
                 "split": "the recipe's training split", "seed": seed}
        images = parity_images(8, tuple(record["input_size"]))
        output = {**record["output"], "dim": dim,
                  "structure": f"PCA projection to {dim} dimensions of: {record['output'].get('structure')}"}
        for modality, fp32 in graphs.items():
            name = f"{modality}_{precision}.onnx"
            projected_graph(fp32, new_file(staging, name), mean, components)
            parity = projection_parity(fp32, staging / name, images, mean, components)
            add_graph(staging, record, modality, precision, name, parity, embedding_dim=dim, projection=about,
                      output=output)
        record.setdefault("projections", {})[precision] = about
        write_record(staging, record)
        if check is not None:
            about["gate"] = check(staging)
            write_record(staging, record)
    return record
