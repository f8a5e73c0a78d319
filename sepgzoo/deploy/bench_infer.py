"""`sepgzoo bench infer`: images/s of the exported visible graph on PyTorch eager, ONNX Runtime and TensorRT,
and SEG's share of the time, every row saying where it ran."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.errors import UserError


def seg_onnx(size: tuple[int, int], path: Path) -> None:
    """SEG alone (uint8 NHWC -> cast -> /255 -> SEG) as an ONNX graph, to measure its share of the visible graph."""
    import torch

    from sepgzoo.models.seg import SpectralEnhance
    from sepgzoo.utils.tensors import to_unit_range

    class SegGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.seg = SpectralEnhance(size, "matmul")

        def forward(self, images):
            return self.seg(to_unit_range(images.permute(0, 3, 1, 2).contiguous()))

    example = torch.zeros(2, *size, 3, dtype=torch.uint8)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines would break --json output
        torch.onnx.export(SegGraph().eval(), (example,), str(path), dynamo=True, opset_version=18,
                          external_data=False, input_names=["images"], output_names=["seg"],
                          dynamic_shapes={"images": {0: "batch"}})


def bench_model(checkpoint: str | Path | None = None, model_name: str = "sepg_resnet50") -> tuple[Any, str]:
    """(model, the name its rows carry) that `bench infer` times: a trained checkpoint when given, else the registered
    `model_name` with random weights (speed does not depend on them); SEG in its exportable MatMul form either way."""
    if checkpoint is not None:
        from sepgzoo.hub.checkpoint import load_model

        model, _ = load_model(checkpoint, "cpu", seg_impl="matmul")
        return model, str(checkpoint)
    from sepgzoo.hub.factory import create_model

    return create_model(model_name, seg_impl="matmul").eval(), model_name


def device_problem(device: str, backends: tuple[str, ...]) -> str | None:
    """Why `bench infer --device` cannot run these backends here (None when it can)."""
    if device != "cuda":
        return None
    import torch

    if "torch" in backends and not torch.cuda.is_available():
        return "--device cuda: PyTorch sees no CUDA device (torch.cuda.is_available() is False); use --device cpu"
    if "onnxruntime" in backends:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return ("--device cuda: this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu instead "
                    "of onnxruntime); use --device cpu")
    return None


def _bench_torch(model, images: dict[int, np.ndarray], device: str, iters: int, warmup: int, record) -> None:
    """PyTorch eager rows: the whole visible graph and SEG alone, on `device`."""
    import torch

    from sepgzoo.utils.tensors import to_unit_range
    from sepgzoo.utils.timing import median_seconds

    torch_device = torch.device(device)
    model.to(torch_device)
    with torch.inference_mode():
        for b, batch in images.items():
            x = torch.from_numpy(batch).to(torch_device)
            prep = lambda: to_unit_range(x.permute(0, 3, 1, 2))  # noqa: E731
            full = median_seconds(lambda: model(prep(), modality="visible"), iters, warmup, torch_device)
            seg = (median_seconds(lambda: model.seg(prep()), iters, warmup, torch_device)
                   if model.seg is not None else None)
            record("torch", b, full, seg, "GPU" if torch_device.type == "cuda" else "CPU")


def _bench_onnxruntime(onnx_path: Path, seg_path: Path | None, images: dict[int, np.ndarray], device: str,
                       threads: int | None, iters: int, warmup: int, record, notes: list[str]) -> None:
    """ONNX Runtime rows with the CPU or CUDA provider; the row's device is the provider the session really uses."""
    import onnxruntime as ort

    from sepgzoo.deploy.ort_runtime import DEVICE_PROVIDERS, OnnxGraph
    from sepgzoo.utils.timing import median_seconds

    session = OnnxGraph(onnx_path, providers=device, threads=threads)  # exported for timing, without parity
    seg_session = None
    if seg_path is not None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        with contextlib.redirect_stdout(io.StringIO()):  # ORT prints provider fallbacks; --json must stay clean
            seg_session = ort.InferenceSession(str(seg_path), options, providers=list(DEVICE_PROVIDERS[device]))
        if seg_session.get_providers()[0] != session.provider:
            notes.append(f"onnxruntime SEG share skipped: SEG ran on {seg_session.get_providers()[0]}, "
                         f"the model on {session.provider}")
            seg_session = None
    label = "CPU" if session.provider == "CPUExecutionProvider" else "GPU"
    for b, batch in images.items():
        full = median_seconds(lambda: session.embed(batch), iters, warmup)
        seg = (median_seconds(lambda: seg_session.run(None, {"images": batch}), iters, warmup)
               if seg_session else None)
        record(f"onnxruntime ({session.provider})", b, full, seg, label)


def _bench_tensorrt(onnx_path: Path, images: dict[int, np.ndarray], size: tuple[int, int], iters: int, warmup: int,
                    record, notes: list[str]) -> None:
    """TensorRT rows (always on the GPU), or a note saying why there are none. The engine is built for timing only
    (no parity check, deleted afterwards), so it runs as a `TensorRTEngine`, which checks no sidecar."""
    from sepgzoo.deploy.tensorrt_build import build_engine
    from sepgzoo.deploy.tensorrt_platform import tensorrt_missing
    from sepgzoo.deploy.tensorrt_runtime import TensorRTEngine
    from sepgzoo.utils.timing import median_seconds

    reason = tensorrt_missing()
    if reason:
        notes.append(f"tensorrt skipped: {reason}")
        return
    engine = onnx_path.with_suffix(".plan")
    build_engine(onnx_path, engine, "visible", size, max(images))
    with TensorRTEngine(engine, "visible") as trt_model:
        for b, batch in images.items():
            record("tensorrt", b, median_seconds(lambda: trt_model.embed(batch), iters, warmup), None, "GPU")


def bench_inference(model, model_name: str, batches: tuple[int, ...], backends: tuple[str, ...], device: str,
                    iters: int, warmup: int, threads: int | None, on_row: Callable[[dict[str, Any]], None] | None = None
                    ) -> dict[str, Any]:
    """Images/s of the visible graph per backend and batch, SEG's share, and where each row ran.

    Torch and ONNX Runtime run on `device` ("cpu" or "cuda": ORT's CPU or CUDA provider); TensorRT always runs
    on the GPU. `on_row` sees each result row as it is measured. Returns the JSON-able summary.
    """
    import tempfile

    import torch

    from sepgzoo.deploy.onnx_export import to_onnx

    problem = device_problem(device, backends)
    if problem:
        raise UserError(problem)
    if threads:
        torch.set_num_threads(threads)
    h, w = model.input_size
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    rng = np.random.default_rng(0)
    images = {b: rng.integers(0, 256, size=(b, h, w, 3), dtype=np.uint8) for b in batches}

    def record(backend: str, batch: int, seconds: float, seg_seconds: float | None, where: str) -> None:
        rows.append({"backend": backend, "device": where, "batch": batch, "images_per_s": batch / seconds,
                     "ms_per_batch": 1000 * seconds,
                     "seg_share": None if seg_seconds is None else seg_seconds / seconds})
        if on_row is not None:
            on_row(rows[-1])

    with tempfile.TemporaryDirectory(prefix="sepgzoo-bench-") as tmp:
        if "torch" in backends:
            _bench_torch(model, images, device, iters, warmup, record)
        onnx_path = Path(tmp) / "visible.onnx"
        if "onnxruntime" in backends or "tensorrt" in backends:  # to_onnx moves the model back to the CPU
            to_onnx(model, "visible", onnx_path, max_batch=max(batches), parity=False)
        if "onnxruntime" in backends:
            seg_path = None
            if model.seg is not None:
                seg_path = Path(tmp) / "seg.onnx"
                seg_onnx((h, w), seg_path)
            _bench_onnxruntime(onnx_path, seg_path, images, device, threads, iters, warmup, record, notes)
        if "tensorrt" in backends:
            _bench_tensorrt(onnx_path, images, (h, w), iters, warmup, record, notes)
    return {"model": model_name, "input_size": [h, w], "modality": "visible", "device": device,
            "threads": threads or torch.get_num_threads(), "iters": iters, "results": rows, "notes": notes}


def bench_export(export_dir: str | Path, batches: tuple[int, ...], device: str = "cpu", iters: int = 10,
                 warmup: int = 2, threads: int | None = None, on_row: Callable[[dict[str, Any]], None] | None = None
                 ) -> dict[str, Any]:
    """Images/s of an export's own artifacts, each precision it holds (fp32, fp16, int8, int8-cpu) through ONNX
    Runtime on `device`, and its checked TensorRT engines, both modalities, opened as a deployment opens them
    (`open_model`: only what passed its checks). Torch-free. Batches above an artifact's max batch are left out."""
    from sepgzoo.deploy.contract import read_export_json
    from sepgzoo.deploy.runtime import open_model
    from sepgzoo.deploy.tensorrt_platform import ENGINE_PRECISIONS, engine_filename
    from sepgzoo.utils.timing import median_seconds

    record = read_export_json(export_dir)
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for modality, files in record["files"].items():
        targets = [("onnxruntime", precision) for precision in files]
        engines = [p for p in ENGINE_PRECISIONS if (Path(export_dir) / engine_filename(modality, p)).is_file()]
        targets += [("tensorrt", precision) for precision in engines]
        for backend, precision in targets:
            model = open_model(export_dir, modality, backend=backend, providers=device, precision=precision,
                               threads=threads)
            for batch in (b for b in batches if b <= model.max_batch):
                images = rng.integers(0, 256, size=(batch, *model.input_size, 3), dtype=np.uint8)
                seconds = median_seconds(lambda: model.embed(images), iters, warmup)  # embed returns host arrays
                rows.append({"backend": f"{backend} {precision}", "modality": modality, "device": model.provider,
                             "batch": batch, "images_per_s": batch / seconds, "ms_per_batch": 1000 * seconds,
                             "seg_share": None})
                if on_row is not None:
                    on_row(rows[-1])
    return {"export": str(export_dir), "model": record.get("model"), "input_size": record["input_size"],
            "device": device, "threads": threads, "iters": iters, "results": rows, "notes": []}
