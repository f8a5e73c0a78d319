"""`sepgzoo export --triton REPO`: a Triton Inference Server model repository made from an export folder.

One model per modality (`<name>_visible`, `<name>_infrared`) serving the fp32 ONNX graph with ONNX Runtime, plus
one per TensorRT engine that passed its parity check (`<name>_visible_trt`, ...). Each `config.pbtxt` takes its
input and output names, types and dims from the graph itself, batches dynamically up to the export's max batch,
and follows Triton's model configuration schema (`model_config.proto`; tested by parsing every file with the
protobuf module `tritonclient` ships). Torch-free.
"""

import shutil
from pathlib import Path
from typing import Any

from sepgzoo.deploy.contract import EXPORT_JSON, read_export_json
from sepgzoo.errors import UserError
from sepgzoo.modality import MODALITIES
from sepgzoo.utils.atomic import staging_folder

#: ONNX element types -> Triton data types (the types our graphs use)
TRITON_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 10: "TYPE_FP16"}
REPOSITORY_MARKER = "sepgzoo-triton.txt"  # written in every repository this command makes: it may be replaced


def tensor_spec(value_info) -> dict[str, Any]:
    """Name, Triton type and per-item dims (the batch dimension left out) of a graph input or output."""
    tensor = value_info.type.tensor_type
    if tensor.elem_type not in TRITON_TYPES:
        raise UserError(f"graph tensor {value_info.name!r} has ONNX type {tensor.elem_type}; expected one of "
                        f"{sorted(TRITON_TYPES)} (float32, uint8, float16)")
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim][1:]
    return {"name": value_info.name, "data_type": TRITON_TYPES[tensor.elem_type], "dims": dims}


def graph_io(graph_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input, output) specs of a one-input, one-output graph."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise UserError(f"{graph_path}: expected one input and one output, got {len(graph.input)} and "
                        f"{len(graph.output)}")
    return tensor_spec(graph.input[0]), tensor_spec(graph.output[0])


def _tensor_block(kind: str, spec: dict[str, Any]) -> str:
    dims = ", ".join(str(d) for d in spec["dims"])
    body = f'    name: "{spec["name"]}"\n    data_type: {spec["data_type"]}\n    dims: [ {dims} ]'
    return f"{kind} [\n  {{\n{body}\n  }}\n]"


def model_config(name: str, platform: str, max_batch: int, inputs: dict[str, Any], outputs: dict[str, Any],
                 gpu: bool) -> str:
    """One `config.pbtxt` in Triton's text format."""
    preferred = sorted({b for b in (max(1, max_batch // 2), max_batch) if b >= 1})
    lines = [f'name: "{name}"', f'platform: "{platform}"', f"max_batch_size: {max_batch}",
             _tensor_block("input", inputs), _tensor_block("output", outputs),
             "dynamic_batching {\n  preferred_batch_size: [ " + ", ".join(map(str, preferred)) + " ]\n"
             "  max_queue_delay_microseconds: 500\n}",
             "instance_group [\n  {\n    count: 1\n    kind: " + ("KIND_GPU" if gpu else "KIND_AUTO") + "\n  }\n]"]
    return "\n".join(lines) + "\n"


def _add_model(repo: Path, name: str, source: Path, filename: str, config: str) -> None:
    (repo / name / "1").mkdir(parents=True)
    shutil.copyfile(source, repo / name / "1" / filename)
    (repo / name / "config.pbtxt").write_text(config)


def checked_engines(export_dir: Path, modality: str) -> dict[str, Path]:
    """Precision -> the export's TensorRT engine of one modality, for those whose sidecar records a passed parity
    check for their bytes."""
    from sepgzoo.deploy.tensorrt_platform import ENGINE_PRECISIONS, engine_filename, verified_sidecar

    engines = {}
    for precision in ENGINE_PRECISIONS:
        engine = export_dir / engine_filename(modality, precision)
        if engine.is_file():
            verified_sidecar(engine)  # an engine that failed its check never reaches a server
            engines[precision] = engine
    return engines


def write_triton_repository(export_dir: str | Path, repository: str | Path, name: str = "sepg") -> list[str]:
    """Write the model repository; returns the model names. Replaces only an earlier repository of this command.

    Raises:
        UserError: `repository` is a file or a folder this command did not write, or the export is incomplete.
    """
    export_dir, repository = Path(export_dir), Path(repository)
    record = read_export_json(export_dir)
    if repository.exists() and (not repository.is_dir() or
                                (any(repository.iterdir()) and not (repository / REPOSITORY_MARKER).is_file())):
        raise UserError(f"--triton {repository} exists and is not a repository written by `sepgzoo export --triton`; "
                        "choose a new folder")
    max_batch = int(record["max_batch"])
    models = []
    with staging_folder(repository) as repo:
        for modality in MODALITIES:
            graph = export_dir / record["files"][modality]["fp32"]
            inputs, outputs = graph_io(graph)
            model = f"{name}_{modality}"
            _add_model(repo, model, graph, "model.onnx",
                       model_config(model, "onnxruntime_onnx", max_batch, inputs, outputs, gpu=False))
            models.append(model)
            for precision, engine in checked_engines(export_dir, modality).items():
                plan = f"{model}_trt" + ("" if precision == "fp32" else f"_{precision}")
                _add_model(repo, plan, engine, "model.plan",
                           model_config(plan, "tensorrt_plan", max_batch, inputs, outputs, gpu=True))
                models.append(plan)
        (repo / REPOSITORY_MARKER).write_text(f"written by `sepgzoo export --triton` from {export_dir / EXPORT_JSON}\n")
    return models
