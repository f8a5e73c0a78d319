"""ONNX export: one self-contained graph per modality with preprocessing and SEG inside, graph checks, parity checks.

Graph contract (both modalities): input `images` uint8 [batch, H, W, 3] RGB (infrared as 3-channel grey),
output `embeddings` float32 [batch, D]; inside: Cast -> NHWC->NCHW -> /255 -> SEG (visible only, MatMul
DFT, fp32) -> (x - mean) / std -> network -> per-part L2 normalisation, concatenated / sqrt(parts), so the
embedding has norm 1. Only the batch axis is dynamic.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sepgzoo.deploy.contract import (
    EXPORT_JSON,
    FORMAT,
    INPUT_NAME,
    METADATA_PREFIX,
    OUTPUT_NAME,
    PARITY_COSINE,
    cosine_rows,
    parity_batches,
    parity_images,
)
from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality
from sepgzoo.models.seg import SpectralEnhance
from sepgzoo.preprocess import contract
from sepgzoo.utils.atomic import atomic_path, staging_folder, write_json
from sepgzoo.utils.hashing import sha256_file
from sepgzoo.utils.tensors import to_unit_range

DEFAULT_OPSET = 18  # the dynamo exporter's own op library targets 18; TensorRT 10.0 parses 9-20 (docs/deploy.md 3, 8)
DEFAULT_MAX_BATCH = 32
# Ops no deployment target should see: DFT (no ORT-CUDA kernel, TensorRT < 11.2 cannot parse it), STFT, and the
# control flow a static image model never needs.
FORBIDDEN_OPS = {"DFT", "STFT", "If", "Loop", "Scan"}
STANDARD_DOMAINS = {"", "ai.onnx"}


class ExportError(UserError):
    """The exported graph is wrong: a forbidden op, a wrong opset or signature, or a failed parity check.

    Reported as a one-line message: nothing is written, and the message says which check failed.
    """


def onnx_filename(modality: str | Modality, fp16: bool = False) -> str:
    """`visible.onnx`, `infrared_fp16.onnx`, ..."""
    return f"{as_modality(modality).value}{'_fp16' if fp16 else ''}.onnx"


# ---------------------------------------------------------------------------------------------------------------
# The exported module
# ---------------------------------------------------------------------------------------------------------------
class _HalfInput(nn.Module):
    """`module` (already in float16) fed a float32 input cast to float16: where the fp16 graph enters half
    precision, after SEG and the mean/std normalisation."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.to(torch.float16))


def _float32_parts(model: nn.Module, shared: Tensor, attention: Tensor,
                   modality: str | None) -> tuple[Tensor, Tensor | None]:
    """The model's own `forward_parts`, its stacked part embeddings cast back to float32 (once, for all parts)."""
    features, logits = type(model).forward_parts(model, shared, attention, modality)
    return features.to(torch.float32), logits


def _half_network(model: nn.Module) -> nn.Module:
    """The model (a private copy) with its network in float16 and its input side (SEG, mean/std) and output side
    (the parts' L2 normalisation and join) in float32, so that its own eval call runs the fp16 graph.

    The two casts sit where the precision changes: into float16 at the trunk's input, back to float32 on the part
    embeddings that `forward_parts` returns, before `forward_head` joins them (the L2 clamp epsilon underflows in
    float16). The second is bound to this copy only (a bound method, so a deep copy rebinds it to the new copy).
    """
    mean, std = model.mean.float(), model.std.float()
    model = model.half()
    model.mean, model.std = mean, std
    if model.seg is not None:
        model.seg.float()
    model.trunk = _HalfInput(model.trunk)
    model.forward_parts = types.MethodType(_float32_parts, model)
    return model


class EmbeddingGraph(nn.Module):
    """What gets exported for one modality: uint8 NHWC images -> float32 embeddings [B, D].

    Args:
        model: an SEPGNet in eval mode (its SEG is replaced by the MatMul form if it uses torch.fft).
        modality: "visible" or "infrared"; a Python constant, so each modality is its own graph.
        fp16: run the network in float16; the input cast, SEG, the normalisation and the final L2
            normalisation stay in float32 (SEG's phase of small frequencies is sensitive to rounding, and
            the L2 clamp epsilon underflows in fp16).

    Example:
        >>> graph = EmbeddingGraph(model, "visible")
        >>> emb = graph(torch.randint(0, 256, (2, 288, 144, 3), dtype=torch.uint8))
    """

    def __init__(self, model: nn.Module, modality: str | Modality, fp16: bool = False) -> None:
        super().__init__()
        self.modality = as_modality(modality)
        self.fp16 = fp16
        model = copy.deepcopy(model).eval()
        if model.seg is not None and model.seg.impl != "matmul":
            model.seg = SpectralEnhance(model.input_size, "matmul")  # no parameters: an exact swap
        self.model = _half_network(model) if fp16 else model
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        # .contiguous() after the permute: without it the exporter may emit Range/Gather index arithmetic.
        x = to_unit_range(images.permute(0, 3, 1, 2).contiguous())
        return self.model(x, modality=self.modality)


# ---------------------------------------------------------------------------------------------------------------
# Graph inspection
# ---------------------------------------------------------------------------------------------------------------
def _all_nodes(graph) -> list:
    """Every node of a graph, including those of subgraphs held in attributes."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            if attr.g is not None and attr.HasField("g"):
                nodes.extend(_all_nodes(attr.g))
            for sub in attr.graphs:
                nodes.extend(_all_nodes(sub))
    return nodes


def opset_version(model_proto) -> int | None:
    """The default-domain (ai.onnx) opset a model declares."""
    for entry in model_proto.opset_import:
        if entry.domain in STANDARD_DOMAINS:
            return int(entry.version)
    return None


def graph_problems(model_proto, input_size: tuple[int, int] | None = None, embedding_dim: int | None = None,
                   opset: int | None = None) -> list[str]:
    """Everything in an exported graph that breaks the deployment contract; an empty list means it is fine.

    Checks: no DFT/STFT or control flow; only standard-domain ops (no ATen fallback, no custom domains,
    no local functions); no Range op and no Gather with computed indices (the index arithmetic that
    strided views leave behind); the opset; one uint8 input [batch, H, W, 3] and one float32 output
    [batch, D] with only the batch axis dynamic.

    Args:
        model_proto: an `onnx.ModelProto`.
        input_size: expected (H, W), or None to skip.
        embedding_dim: expected D, or None to skip.
        opset: expected default-domain opset, or None to skip.

    Example:
        >>> assert not graph_problems(onnx.load("visible.onnx"), (288, 144), 6144, opset=18)
    """
    import onnx

    problems = []
    graph = model_proto.graph
    constants = {init.name for init in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    for node in [*_all_nodes(graph), *(n for f in model_proto.functions for n in f.node)]:
        label = f"{node.op_type} node {node.name!r}"
        if node.op_type in FORBIDDEN_OPS:
            problems.append(f"{label}: {node.op_type} is not allowed in a deployable graph")
        if node.domain not in STANDARD_DOMAINS or node.op_type.lower().startswith("aten"):
            problems.append(f"{label} is in domain {node.domain!r} (ATen fallback or custom op)")
        if node.op_type == "Range":
            problems.append(f"{label}: Range (index arithmetic, typically from a strided view)")
        if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] not in constants:
            problems.append(f"{label}: Gather with computed indices {node.input[1]!r} (index arithmetic)")
    if model_proto.functions:
        problems.append(f"graph has {len(model_proto.functions)} local functions; expected them inlined")
    if opset is not None and opset_version(model_proto) != opset:
        problems.append(f"graph declares opset {opset_version(model_proto)}, expected {opset}")

    def dims(value) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    inputs, outputs = list(graph.input), list(graph.output)
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
        problems.append(f"inputs {[i.name for i in inputs]} / outputs {[o.name for o in outputs]}, "
                        f"expected [{INPUT_NAME!r}] / [{OUTPUT_NAME!r}]")
        return problems
    in_dims, out_dims = dims(inputs[0]), dims(outputs[0])
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.UINT8:
        problems.append(f"input {INPUT_NAME!r} is not uint8")
    if outputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        problems.append(f"output {OUTPUT_NAME!r} is not float32")
    if len(in_dims) != 4 or not isinstance(in_dims[0], str) or any(isinstance(d, str) for d in in_dims[1:]):
        problems.append(f"input dims {in_dims}: expected [batch, H, W, 3] with only the batch axis dynamic")
    elif input_size is not None and in_dims[1:] != [*input_size, 3]:
        problems.append(f"input dims {in_dims}: expected [batch, {input_size[0]}, {input_size[1]}, 3]")
    if len(out_dims) != 2 or not isinstance(out_dims[0], str) or isinstance(out_dims[1], str):
        problems.append(f"output dims {out_dims}: expected [batch, D] with only the batch axis dynamic")
    elif embedding_dim is not None and out_dims[1] != embedding_dim:
        problems.append(f"output dims {out_dims}: expected D = {embedding_dim}")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def torch_reference(model: nn.Module, images: np.ndarray, modality: str | Modality) -> np.ndarray:
    """PyTorch embeddings of uint8 NHWC images through the model's own eval call (not through EmbeddingGraph)."""
    device = next(model.parameters()).device
    x = to_unit_range(torch.from_numpy(images).to(device).permute(0, 3, 1, 2))
    return model(x, modality=as_modality(modality)).float().cpu().numpy()


def check_parity(session, model: nn.Module, modality: str | Modality, max_batch: int, threshold: float,
                 seed: int = 0) -> dict[str, Any]:
    """ONNX Runtime vs PyTorch at batch 1, 3 and `max_batch`, plus batch invariance of the ONNX outputs.

    Returns a JSON-able record (`min_cosine` per batch, `batch_invariance_min_cosine`, `passed`).
    """
    batches = parity_batches(max_batch)
    images = parity_images(max_batch, tuple(model.input_size), seed)
    reference = torch_reference(model, images, modality)
    outputs, per_batch = {}, {}
    for batch in batches:
        out = session.run([OUTPUT_NAME], {INPUT_NAME: images[:batch]})[0]
        if out.shape != reference[:batch].shape or not np.isfinite(out).all():
            raise ExportError(f"ONNX Runtime returned shape {out.shape} (finite: {np.isfinite(out).all()}) at batch "
                              f"{batch}; expected {reference[:batch].shape}, finite")
        outputs[batch] = out
        per_batch[str(batch)] = float(cosine_rows(out, reference[:batch]).min())
    largest = outputs[max(batches)]
    invariance = min(float(cosine_rows(outputs[b], largest[:b]).min()) for b in batches)
    passed = min(per_batch.values()) >= threshold and invariance >= threshold
    return {"reference": "pytorch-cpu-fp32", "runtime": "onnxruntime " + session.get_providers()[0],
            "batches": batches, "threshold": threshold, "min_cosine": per_batch,
            "batch_invariance_min_cosine": invariance, "passed": bool(passed)}


def parity_session(graph: bytes, provider: str):
    """An ONNX Runtime session on exactly `provider`, or None when that provider cannot run here.

    onnxruntime-gpu lists the CUDA provider even without a GPU, then falls back to CPU (printing to stdout);
    a session that fell back is not a CUDA check, so it counts as unavailable.
    """
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        return None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            session = ort.InferenceSession(graph, options, providers=[provider])
        except Exception:  # noqa: BLE001 - a provider that fails to start is "not available here"
            return None
    return session if session.get_providers()[0] == provider else None


def parity_on_every_provider(graph: bytes, model: nn.Module, modality: str | Modality, max_batch: int,
                             precision: str) -> dict[str, Any]:
    """`check_parity` on ONNX Runtime CPU, and on the CUDA provider when it runs here (the CPU provider upcasts
    fp16 kernels, so only CUDA shows what fp16 does on a GPU). Raises ExportError when a check fails.

    Returns the CPU record with `cuda`: the CUDA record, or {"checked": False, "reason": ...}.
    """
    threshold, modality = PARITY_COSINE[precision], as_modality(modality)
    record = check_parity(parity_session(graph, "CPUExecutionProvider"), model, modality, max_batch, threshold)
    cuda_session = parity_session(graph, "CUDAExecutionProvider")
    record["cuda"] = (check_parity(cuda_session, model, modality, max_batch, threshold) if cuda_session is not None
                      else {"checked": False, "reason": "no usable ONNX Runtime CUDA provider here"})
    for where, result in (("CPU", record), ("CUDA", record["cuda"])):
        if result.get("checked", True) and not result["passed"]:
            raise ExportError(f"parity check failed for {modality.value} ({precision}) on ONNX Runtime {where}: min "
                              f"cosine vs PyTorch per batch {result['min_cosine']}, batch invariance "
                              f"{result['batch_invariance_min_cosine']:.6f}; required >= {threshold}")
    return record


# ---------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------
def onnx_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript

    from sepgzoo.hub.checkpoint import versions

    return {**versions(), "onnx": onnx.__version__, "onnxscript": onnxscript.__version__,
            "onnxruntime": onnxruntime.__version__}


def model_metadata(model: nn.Module, modality: str | Modality | None = None, **extra: Any) -> dict[str, Any]:
    """The record stored in `metadata_props` and `export.json`: what the graph expects and returns."""
    record = {
        "format": FORMAT,
        "model": model.config.name if hasattr(model, "config") else type(model).__name__,  # registered name
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "channels": "RGB (infrared: grey x3)",
                  "height": model.input_size[0], "width": model.input_size[1], "value_range": [0, 255]},
        "preprocess": contract(model.input_size),
        "input_size": list(model.input_size),
        "mean": [float(v) for v in model.mean.flatten()],
        "std": [float(v) for v in model.std.flatten()],
        "normalisation_in_graph": True,
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "dim": model.num_features,
                   "l2_normalised": True, "norm": 1.0, "distance": "cosine (= dot product)",
                   "structure": f"{model.parts} L2-normalised parts x {model.part_dim}, concatenated, "
                                f"/ sqrt({model.parts})"},
        "embedding_dim": model.num_features,
        "seg": {"in_graph": model.seg is not None, "impl": "matmul", "dtype": "float32", "modalities": ["visible"]},
    }
    if modality is not None:
        record["modality"] = as_modality(modality).value
    record.update(extra)
    return record


def _set_metadata(model_proto, metadata: dict[str, Any]) -> None:
    """Write metadata into `metadata_props`: strings as they are, everything else JSON-encoded."""
    del model_proto.metadata_props[:]
    for key, value in metadata.items():
        entry = model_proto.metadata_props.add()
        entry.key = f"{METADATA_PREFIX}{key}"
        entry.value = value if isinstance(value, str) else json.dumps(value)


def _trace(graph: EmbeddingGraph, opset: int):
    """Dynamo export of an EmbeddingGraph -> onnx.ModelProto (exporter chatter captured, shown only on failure)."""
    h, w = graph.model.input_size
    # Trace at batch 2: torch.export specialises size-1 dimensions (docs/deploy.md 3).
    example = torch.zeros(2, h, w, 3, dtype=torch.uint8)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph, (example,), dynamo=True, opset_version=opset, external_data=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes={"images": {0: "batch"}},
                optimize=True,
            )
    except Exception as err:
        raise ExportError(f"torch.onnx.export (dynamo) failed for {graph.modality.value}: {err}\n"
                          f"{log.getvalue()[-3000:]}") from err
    return program.model_proto


@dataclass
class OnnxExport:
    """Result of `to_onnx`: the written file, its metadata and its parity record."""

    path: Path
    metadata: dict[str, Any]
    parity: dict[str, Any] = field(default_factory=dict)


def to_onnx(model: nn.Module, modality: str | Modality, path: str | Path, opset: int = DEFAULT_OPSET,
            max_batch: int = DEFAULT_MAX_BATCH, fp16: bool = False, metadata: dict[str, Any] | None = None,
            parity: bool = True) -> OnnxExport:
    """Export one modality of an SEPGNet to a single self-contained ONNX file, check it, and check parity.

    The file is written (atomically) only after the graph checks and, unless `parity=False`, the ONNX
    Runtime CPU vs PyTorch parity check at batch 1, 3 and `max_batch` passed (cosine >= 0.9999, or >= 0.999
    for fp16); otherwise ExportError is raised and nothing is written.

    Args:
        model: an SEPGNet (any SEG impl; the export uses the MatMul form).
        modality: "visible" or "infrared".
        path: output `.onnx` file.
        opset: default-domain opset; verified in the written model.
        max_batch: largest batch the parity check runs (and the TensorRT profile will allow).
        fp16: network in float16, SEG and the final L2 normalisation in float32.
        metadata: extra entries for `metadata_props` (e.g. the recipe).
        parity: run the parity check (always on in `export_model`). A graph written without it records no
            passed check in its metadata, and `OnnxEmbedder` / `open_model` refuse it (`bench infer` times it
            with `OnnxGraph`).

    Example:
        >>> model, _ = load_model("runs/sysu", seg_impl="matmul")
        >>> to_onnx(model, "visible", "export/visible.onnx", max_batch=32).parity["min_cosine"]
    """
    import onnx

    modality = as_modality(modality)
    if max_batch < 1:
        raise UserError(f"max_batch must be >= 1, got {max_batch}")
    model = model.eval().cpu()
    proto = _trace(EmbeddingGraph(model, modality, fp16=fp16), opset)
    problems = graph_problems(proto, tuple(model.input_size), model.num_features, opset=opset)
    if problems:
        listing = "\n  ".join(problems)
        raise ExportError(f"exported {modality.value} graph breaks the deployment contract:\n  {listing}")
    precision = "fp16" if fp16 else "fp32"
    meta = model_metadata(model, modality, precision=precision, opset=opset, max_batch=max_batch,
                          **(metadata or {}))
    record: dict[str, Any] = {}
    if parity:
        record = parity_on_every_provider(proto.SerializeToString(), model, modality, max_batch, precision)
        meta["parity"] = record
    _set_metadata(proto, meta)
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
    return OnnxExport(path=path, metadata=meta, parity=record)


def load_for_export(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model, its `model.json`) of a checkpoint, built for export: SEG in its MatMul form and timm's export-safe
    layer variants where a backbone has any. This is the one read of `model.json` an export makes; pass the
    result down (`export_model`)."""
    from timm.layers import set_layer_config

    from sepgzoo.hub.checkpoint import load_model

    with set_layer_config(exportable=True):
        return load_model(checkpoint, "cpu", seg_impl="matmul")


def export_checkpoint(checkpoint: str | Path, output: str | Path, fp16: bool = False,
                      max_batch: int = DEFAULT_MAX_BATCH, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Export a trained model to `output/{visible,infrared}.onnx` (+ `*_fp16.onnx`) and `output/export.json`.

    `load_for_export` then `export_model`; a caller that already loaded the model calls `export_model` itself.

    Args:
        checkpoint: run directory, `model.safetensors` or `model.json`.
        output: directory to write into (created).
        fp16: also write the fp16 variants.
        max_batch: the largest batch checked for parity and recorded for the TensorRT profile.
        opset: ONNX opset.

    Returns:
        The content of `export.json`.

    Example:
        >>> export_checkpoint("runs/sysu", "runs/sysu/export", fp16=True)["parity"]["visible"]["fp32"]
    """
    _check_max_batch(max_batch)
    model, meta = load_for_export(checkpoint)
    return export_model(model, meta, checkpoint, output, fp16=fp16, max_batch=max_batch, opset=opset)


def export_model(model: nn.Module, meta: dict[str, Any], checkpoint: str | Path, output: str | Path,
                 fp16: bool = False, max_batch: int = DEFAULT_MAX_BATCH, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Export a model that `load_for_export(checkpoint)` returned with its `model.json` content `meta`.

    Every graph is written into a staging folder that replaces `output` only once all of them passed their
    parity checks: the previous export stays whole until the new one is complete.

    Returns:
        The content of `export.json` (arguments as in `export_checkpoint`).
    """
    _check_max_batch(max_batch)
    output = Path(output)
    check_export_target(output)
    source = _source_record(checkpoint, meta)
    with staging_folder(output) as staging:
        files, parity = _write_graphs(model, staging, fp16, max_batch, opset, source)
        record = model_metadata(model, None, opset=opset, max_batch=max_batch, **source)
        record.update(files=files, parity=parity,
                      sha256={name: sha256_file(staging / name) for per in files.values() for name in per.values()})
        write_json(staging / EXPORT_JSON, record)
    return record


def _check_max_batch(max_batch: int) -> None:
    if max_batch < 1:
        raise UserError(f"--max-batch must be >= 1, got {max_batch}")


def _source_record(checkpoint: str | Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Where the graphs come from, for their metadata and `export.json`: checkpoint, weights hash, model arguments,
    versions, and the recipe when `model.json` has one."""
    from sepgzoo.hub.checkpoint import resolve_model_files

    weights, _ = resolve_model_files(checkpoint)  # the path only: model.json was read by the caller
    source = {"checkpoint": str(Path(checkpoint)), "weights_sha256": sha256_file(weights),
              "model_args": meta.get("model_args", {}), "versions": onnx_versions()}
    if meta.get("recipe") is not None:
        source["recipe"] = meta["recipe"]
    return source


def _write_graphs(model: nn.Module, folder: Path, fp16: bool, max_batch: int, opset: int,
                  source: dict[str, Any]) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, Any]]]:
    """Every modality's graph (fp32, and fp16 when asked) into `folder` -> (file names, parity records), each keyed
    by modality then precision."""
    files: dict[str, dict[str, str]] = {}
    parity: dict[str, dict[str, Any]] = {}
    for modality in Modality:
        for half in (False, True) if fp16 else (False,):
            name = onnx_filename(modality, half)
            result = to_onnx(model, modality, folder / name, opset=opset, max_batch=max_batch, fp16=half,
                             metadata=source)
            precision = "fp16" if half else "fp32"
            files.setdefault(modality.value, {})[precision] = name
            parity.setdefault(modality.value, {})[precision] = result.parity
    return files, parity


def check_export_target(output: Path) -> None:
    """An export replaces an earlier export folder, never a file or a folder of anything else (a run folder)."""
    if output.exists() and not output.is_dir():
        raise UserError(f"export output {output} is a file; expected a folder (choose another --output)")
    if output.is_dir() and any(output.iterdir()) and not (output / EXPORT_JSON).is_file():
        raise UserError(f"export output {output} is a folder that holds no {EXPORT_JSON}; an export replaces only "
                        "an earlier export folder (choose another --output)")


__all__ = ["EXPORT_JSON", "EmbeddingGraph", "ExportError", "OnnxExport", "check_parity", "export_checkpoint",
           "export_model", "graph_problems", "load_for_export", "to_onnx"]
