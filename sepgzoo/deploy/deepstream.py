"""`sepgzoo export --deepstream`: what a DeepStream 7.1 pipeline needs, in `EXPORT/deepstream/`.

nvinfer and the NvMultiObjectTracker feed float planar tensors (`y = net-scale-factor * (x - offsets)`, one scalar
scale), never uint8 NHWC, so each modality gets:

- `<modality>.onnx`: the fp32 graph with a float32 NCHW input `[B, 3, H, W]`, RGB 0-255; everything after the
  input (the /255, SEG, the per-channel normalisation, the parts, the unit norm) is the exported graph's own, so
  its embeddings equal the uint8 graph's on the same pixels (checked to 1e-5 before anything is written);
- `<modality>_nvinfer.txt`: a secondary-GIE config (raw tensor output attached as tensor meta, scale 1, offsets
  0, RGB, H x W, bilinear scaling as the preprocessing contract);
- `<modality>_tracker_reid.yml`: the `ReID:` section for an NvDCF tracker config (input dims, feature size, no
  second normalisation: the embeddings already have norm 1).

Keys follow NVIDIA's DeepStream 7.1 documentation (Gst-nvinfer configuration file; NvMultiObjectTracker
`ReID` parameters). Torch-free: the graph surgery uses `onnx` alone.
"""

from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.deploy.contract import read_export_json
from sepgzoo.errors import UserError
from sepgzoo.modality import MODALITIES
from sepgzoo.utils.atomic import staging_folder

DEEPSTREAM_VERSION = "7.1"
FOLDER = "deepstream"
PARITY_ATOL = 1e-5
UINT8_TO_NCHW = [0, 3, 1, 2]
#: secondary GIE ids: the person detector is gie 1; the visible and infrared embedders follow it
GIE_IDS = {"visible": 2, "infrared": 3}


class DeepStreamExportError(UserError):
    """The exported graph does not start as expected, or the float variant does not match it."""


def float_nchw_graph(model):
    """The uint8 NHWC graph rewired to take float32 NCHW 0-255 pixels: its leading Transpose (NHWC -> NCHW) and
    Cast (uint8 -> float) are removed and their consumers read the new input directly."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    (old_input,) = graph.input
    transpose = _only_consumer(graph, old_input.name, "Transpose")
    perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
    cast = _only_consumer(graph, transpose.output[0], "Cast")
    to = next((a.i for a in cast.attribute if a.name == "to"), None)
    if perm != UINT8_TO_NCHW or to != TensorProto.FLOAT:
        raise DeepStreamExportError(f"the graph starts with Transpose{perm} and Cast(to={to}); expected "
                                    f"Transpose{UINT8_TO_NCHW} and Cast(to=float)")
    dims = [d for d in old_input.type.tensor_type.shape.dim]
    batch = dims[0].dim_param or dims[0].dim_value
    height, width = dims[1].dim_value, dims[2].dim_value
    new_input = helper.make_tensor_value_info(old_input.name, TensorProto.FLOAT, [batch, 3, height, width])
    for node in graph.node:
        node.input[:] = [old_input.name if name == cast.output[0] else name for name in node.input]
    kept = [node for node in graph.node if node is not transpose and node is not cast]
    del graph.node[:]
    graph.node.extend(kept)
    graph.input.remove(old_input)
    graph.input.insert(0, new_input)
    _describe_float_input(model)
    onnx.checker.check_model(model)
    return model


def _describe_float_input(model) -> None:
    """The graph's own metadata (`input`) says what it now takes."""
    import json

    for entry in model.metadata_props:
        if entry.key == "input":
            described = json.loads(entry.value)
            described.update(dtype="float32", layout="NCHW", channels="RGB (infrared: grey x3)",
                             value_range=[0, 255], variant=f"DeepStream {DEEPSTREAM_VERSION} (float planar input)")
            entry.value = json.dumps(described)


def _only_consumer(graph, tensor: str, op_type: str):
    consumers = [node for node in graph.node if tensor in node.input]
    if len(consumers) != 1 or consumers[0].op_type != op_type:
        found = [node.op_type for node in consumers]
        raise DeepStreamExportError(f"tensor {tensor!r} feeds {found}; expected exactly one {op_type} (the "
                                    "exported uint8 NHWC graph)")
    return consumers[0]


def check_float_parity(uint8_graph: Path, float_graph: Path, images: np.ndarray) -> float:
    """Largest absolute difference between the two graphs' embeddings of the same pixels (uint8 [N, H, W, 3])."""
    from sepgzoo.deploy.ort_runtime import run_on_cpu

    expected = run_on_cpu(uint8_graph, images)
    got = run_on_cpu(float_graph, images.transpose(0, 3, 1, 2).astype(np.float32))
    return float(np.abs(expected - got).max())


def nvinfer_config(modality: str, graph: str, record: dict[str, Any]) -> str:
    """A Gst-nvinfer secondary-GIE config (INI) for one modality's float graph."""
    height, width = record["input_size"]
    lines = [
        f"# sepgzoo {modality} embedder as a DeepStream {DEEPSTREAM_VERSION} secondary GIE: one "
        f"{record['embedding_dim']}-d",
        "# unit-norm embedding per person crop, attached as NvDsInferTensorMeta (output-tensor-meta) to the object.",
        "[property]",
        "gpu-id=0",
        f"onnx-file={graph}",
        f"batch-size={record['max_batch']}",
        "network-mode=0",  # 0 FP32, 2 FP16 (INT8 needs the export's Q/DQ graphs)
        "process-mode=2",  # secondary: on the objects of the primary detector
        f"gie-unique-id={GIE_IDS[modality]}",
        "operate-on-gie-id=1",
        "operate-on-class-ids=0",
        "network-type=100",  # other: no parser, the raw output tensor
        "output-tensor-meta=1",
        "output-blob-names=embeddings",
        "model-color-format=0",  # RGB (an infrared frame's grey replicated to three channels, as in training)
        "net-scale-factor=1.0",  # the graph divides by 255 and normalises per channel itself
        "offsets=0;0;0",
        f"infer-dims=3;{height};{width}",
        "maintain-aspect-ratio=0",  # the preprocessing contract resizes to H x W, no crop, no padding
        "scaling-filter=1",  # bilinear, as the preprocessing contract
    ]
    return "\n".join(lines) + "\n"


def tracker_reid_config(graph: str, record: dict[str, Any]) -> dict[str, Any]:
    """The `ReID:` section of an NvDCF tracker config for one modality's float graph."""
    height, width = record["input_size"]
    return {"ReID": {
        "reidType": 2,  # 2: ReID-based reassociation in NvDCF (1: NvDeepSORT association, 3: both)
        "batchSize": int(record["max_batch"]),
        "workspaceSize": 1000,
        "reidFeatureSize": int(record["embedding_dim"]),
        "reidHistorySize": 100,
        "inferDims": [3, int(height), int(width)],
        "networkMode": 0,
        "inputOrder": 0,  # NCHW
        "colorFormat": 0,  # RGB
        "offsets": [0.0, 0.0, 0.0],
        "netScaleFactor": 1.0,
        "keepAspc": 0,
        "addFeatureNormalization": 0,  # the embeddings already have norm 1
        "onnxFile": graph,
    }}


def write_deepstream(export_dir: str | Path, images: np.ndarray) -> Path:
    """Write `EXPORT/deepstream/` (replacing an earlier one only once the new one is complete and checked).

    Args:
        export_dir: an export folder (its fp32 graphs and export.json).
        images: uint8 [N, H, W, 3] pixels the float graphs are checked on against the uint8 graphs.
    """
    import onnx
    import yaml

    export_dir = Path(export_dir)
    record = read_export_json(export_dir)
    with staging_folder(export_dir / FOLDER) as staging:
        for modality in MODALITIES:
            source = export_dir / record["files"][modality]["fp32"]
            graph = f"{modality}.onnx"
            onnx.save(float_nchw_graph(onnx.load(str(source))), str(staging / graph))
            error = check_float_parity(source, staging / graph, images)
            if not error <= PARITY_ATOL:
                raise DeepStreamExportError(f"{modality}: the float NCHW graph differs from {source.name} by "
                                            f"{error:.3g} (allowed {PARITY_ATOL}); nothing was written")
            (staging / f"{modality}_nvinfer.txt").write_text(nvinfer_config(modality, graph, record))
            (staging / f"{modality}_tracker_reid.yml").write_text(
                f"# ReID section for a DeepStream {DEEPSTREAM_VERSION} NvDCF tracker config ({modality} camera)\n"
                + yaml.safe_dump(tracker_reid_config(graph, record), sort_keys=False))
    return export_dir / FOLDER
