"""Deployment commands: `export`, `embed`, `search` and `bench infer` (registered on the main click group)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality
from sepgzoo.deploy.runtime import list_images, open_model, rank
from sepgzoo.zoo_cli import weights_option

MODALITY_HELP = "visible or infrared"


def _modality(ctx, param, value):
    if value is None:
        return None
    try:
        return as_modality(value)
    except UserError as err:
        raise click.BadParameter(str(err)) from None


def _one_backend(checkpoint: Path | None, model_path: Path | None) -> None:
    if (checkpoint is None) == (model_path is None):
        raise click.UsageError("give exactly one of --checkpoint RUN (PyTorch) or --model FILE|DIR (exported)")


def _backends(checkpoint: Path | None, model_path: Path | None, device: str,
              batch_size: int) -> Callable[[Modality], Any]:
    """A function modality -> embedder, for exactly one of --checkpoint / --model."""
    _one_backend(checkpoint, model_path)
    if checkpoint is not None:
        from sepgzoo.hub.checkpoint import load_model

        torch_device = "cuda" if device in ("cuda", "tensorrt") else device
        model, _ = load_model(checkpoint, torch_device)
        from sepgzoo.deploy.torch_embedder import TorchEmbedder

        return lambda modality: TorchEmbedder(model, modality, batch_size)
    backend = "tensorrt" if model_path.suffix.lower() in (".plan", ".engine", ".trt") else "onnxruntime"
    return lambda modality: open_model(model_path, modality, backend=backend, providers=device)


def _run(fn: Callable[[], Any]) -> Any:
    """Run a command body; user errors become one-line click errors (no traceback)."""
    try:
        return fn()
    except (UserError, ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None


_backend_options = [
    click.option("--checkpoint", type=click.Path(exists=True, path_type=Path),
                 help="Run directory, model.safetensors or model.json (PyTorch backend)."),
    click.option("--model", "model_path", type=click.Path(exists=True, path_type=Path),
                 help="Exported model: export directory, .onnx file or TensorRT .plan (no torch needed)."),
    click.option("--device", default="cpu", show_default=True,
                 help="cpu, cuda or tensorrt (ONNX Runtime providers / torch device)."),
    click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
]


def backend_options(fn):
    for option in reversed(_backend_options):
        fn = option(fn)
    return weights_option()(fn)


def _zoo_name(checkpoint: Path) -> str | None:
    """The zoo name of a folder that `--weights` materialised, else None."""
    from sepgzoo.hub.checkpoint import read_meta

    return read_meta(checkpoint).get("zoo")


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------
@click.command("export")
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path),
              help="Run directory, model.safetensors or model.json.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Export directory [default: <checkpoint dir>/export; with --weights: ./<name>-export].")
@click.option("--trt", is_flag=True, help="Also build TensorRT engines (or print the trtexec commands).")
@click.option("--fp16", is_flag=True, help="Also write fp16 graphs (SEG and the L2 norm stay fp32); fp16 engines.")
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Largest batch: parity check and TensorRT profile maximum.")
@click.option("--opt-batch", type=click.IntRange(min=1), default=None,
              help="Batch TensorRT tunes for [default: max-batch / 2, at most 16].")
@click.option("--opset", type=click.IntRange(min=7), default=18, show_default=True)
@weights_option()
def export(checkpoint: Path | None, output: Path | None, trt: bool, fp16: bool, max_batch: int,
           opt_batch: int | None, opset: int) -> None:
    """Export a trained model to ONNX (one graph per modality) with parity checks; optionally TensorRT engines."""
    from sepgzoo.deploy.onnx_export import ExportError, export_checkpoint
    from sepgzoo.deploy.tensorrt import TensorRTUnavailable, build_engines

    if checkpoint is None:
        raise click.UsageError("give --checkpoint RUN or --weights NAME.TAG")
    zoo_name = _zoo_name(checkpoint)
    output = output or (Path(f"{zoo_name}-export") if zoo_name else
                        (checkpoint if checkpoint.is_dir() else checkpoint.parent) / "export")
    if opt_batch is not None and opt_batch > max_batch:
        raise click.BadParameter(f"--opt-batch {opt_batch} is larger than --max-batch {max_batch}")
    try:
        record = _run(lambda: export_checkpoint(checkpoint, output, fp16=fp16, max_batch=max_batch, opset=opset))
    except ExportError as err:
        raise click.ClickException(f"export failed: {err}") from None
    for modality, per in record["parity"].items():
        for precision, parity in per.items():
            click.echo(f"{output / record['files'][modality][precision]}: parity vs PyTorch min cosine "
                       f"{min(parity['min_cosine'].values()):.6f} at batches {parity['batches']} "
                       f"(>= {parity['threshold']})")
    click.echo(f"{output / 'export.json'}")
    if trt:
        try:
            engines = build_engines(output, fp16=fp16, max_batch=max_batch, opt_batch=opt_batch)
        except TensorRTUnavailable as err:
            raise click.ClickException(str(err)) from None
        except (UserError, RuntimeError) as err:
            raise click.ClickException(f"TensorRT build failed: {err}") from None
        for modality, info in engines.items():
            click.echo(f"{output / info['engine']}: TensorRT {info['tensorrt_version']} on {info['gpu_name']}, "
                       f"parity vs ONNX Runtime min cosine {min(info['parity']['min_cosine'].values()):.6f}")


# ---------------------------------------------------------------------------------------------------------------
# embed
# ---------------------------------------------------------------------------------------------------------------
@click.command("embed")
@backend_options
@click.option("--modality", callback=_modality, help=f"{MODALITY_HELP} (required with --checkpoint or an export "
              "directory; checked against an exported file).")
@click.option("--json", "as_json", is_flag=True, help='Print {"paths": [...], "embeddings": [[...], ...]}.')
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def embed(checkpoint, model_path, device, batch_size, modality, as_json, images) -> None:
    """Print the unit-norm embeddings of IMAGE files (decoded and resized as in evaluation: sepgzoo.preprocess)."""
    def body():
        _one_backend(checkpoint, model_path)
        if modality is None and (checkpoint is not None or (model_path is not None and model_path.is_dir())):
            raise UserError("--modality is required with --checkpoint or an export directory (visible or infrared)")
        embedder = _backends(checkpoint, model_path, device, batch_size)(modality)
        return embedder.embed_paths(list(images), batch_size)

    embeddings = _run(body)
    if as_json:
        click.echo(json.dumps({"paths": [str(p) for p in images], "embeddings": embeddings.tolist()}))
        return
    for path, row in zip(images, embeddings):
        click.echo(f"{path}\t" + " ".join(f"{v:.6g}" for v in row))


# ---------------------------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------------------------
@click.command("search")
@backend_options
@click.option("--gallery", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of gallery images (searched recursively).")
@click.option("--gallery-modality", required=True, callback=_modality, help=MODALITY_HELP)
@click.option("--query", "queries", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Query image (repeatable).")
@click.option("--query-modality", required=True, callback=_modality, help=MODALITY_HELP)
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw each query with its top-k matches into this PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the ranking as JSON.")
def search(checkpoint, model_path, device, batch_size, gallery, gallery_modality, queries, query_modality, top_k,
           out, as_json) -> None:
    """Rank a gallery of your own images for each query image, by cosine similarity of the embeddings."""
    def body():
        gallery_paths = list_images(gallery)
        if not gallery_paths:
            raise UserError(f"no images ({', '.join(('.jpg', '.png', '.bmp'))}, ...) found under {gallery}")
        make = _backends(checkpoint, model_path, device, batch_size)
        gallery_emb = make(gallery_modality).embed_paths(gallery_paths, batch_size)
        query_emb = make(query_modality).embed_paths(list(queries), batch_size)
        order, scores = rank(query_emb, gallery_emb, top_k)
        return gallery_paths, order, scores

    gallery_paths, order, scores = _run(body)
    results = [{"query": str(q), "matches": [{"path": str(gallery_paths[i]), "cosine": float(s)}
                                             for i, s in zip(order[n], scores[n])]} for n, q in enumerate(queries)]
    if as_json:
        click.echo(json.dumps({"query_modality": query_modality.value, "gallery_modality": gallery_modality.value,
                               "results": results}))
    else:
        for result in results:
            click.echo(f"query {result['query']}")
            for k, match in enumerate(result["matches"], 1):
                click.echo(f"  {k:>3}  {match['cosine']:.4f}  {match['path']}")
    if out is not None:
        from sepgzoo.plots import draw_ranking

        _run(lambda: draw_ranking(results, out))
        if not as_json:
            click.echo(f"wrote {out}")


# ---------------------------------------------------------------------------------------------------------------
# bench infer
# ---------------------------------------------------------------------------------------------------------------
def _seg_onnx(size: tuple[int, int], path: Path) -> None:
    """SEG alone (uint8 NHWC -> cast -> /255 -> SEG) as an ONNX graph, to measure its share of the visible graph."""
    import torch

    from sepgzoo.seg import SpectralEnhance

    class SegGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.seg = SpectralEnhance(size, "matmul")

        def forward(self, images):
            return self.seg(images.to(torch.float32).permute(0, 3, 1, 2).contiguous() / 255.0)

    example = torch.zeros(2, *size, 3, dtype=torch.uint8)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines would break --json output
        torch.onnx.export(SegGraph().eval(), (example,), str(path), dynamo=True, opset_version=18,
                          external_data=False, input_names=["images"], output_names=["seg"],
                          dynamic_shapes={"images": {0: "batch"}})


def _bench_device_error(device: str, backends: tuple[str, ...]) -> str | None:
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

    from sepgzoo.bench import median_seconds

    torch_device = torch.device(device)
    model.to(torch_device)
    with torch.inference_mode():
        for b, batch in images.items():
            x = torch.from_numpy(batch).to(torch_device)
            prep = lambda: x.permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
            full = median_seconds(lambda: model(prep(), modality="visible"), iters, warmup, torch_device)
            seg = (median_seconds(lambda: model.seg(prep()), iters, warmup, torch_device)
                   if model.seg is not None else None)
            record("torch", b, full, seg, "GPU" if torch_device.type == "cuda" else "CPU")


def _bench_onnxruntime(onnx_path: Path, seg_path: Path | None, images: dict[int, np.ndarray], device: str,
                       threads: int | None, iters: int, warmup: int, record, notes: list[str]) -> None:
    """ONNX Runtime rows with the CPU or CUDA provider; the row's device is the provider the session really uses."""
    import onnxruntime as ort

    from sepgzoo.bench import median_seconds
    from sepgzoo.deploy.ort_runtime import DEVICE_PROVIDERS, OnnxEmbedder

    session = _run(lambda: OnnxEmbedder(onnx_path, providers=device, threads=threads))
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
    """TensorRT rows (always on the GPU), or a note saying why there are none."""
    from sepgzoo.bench import median_seconds
    from sepgzoo.deploy.tensorrt import TensorRTEmbedder, build_engine, tensorrt_missing

    reason = tensorrt_missing()
    if reason:
        notes.append(f"tensorrt skipped: {reason}")
        return
    engine = onnx_path.with_suffix(".plan")
    build_engine(onnx_path, engine, "visible", size, max(images))
    with TensorRTEmbedder(engine) as trt_model:
        for b, batch in images.items():
            record("tensorrt", b, median_seconds(lambda: trt_model.embed(batch), iters, warmup), None, "GPU")


@click.command("infer")
@click.option("--model", "model_name", default="sepg_resnet50", show_default=True,
              help="Registered model (random weights; speed does not depend on them).")
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), default=None,
              help="Benchmark a trained checkpoint instead of --model.")
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 8, 32), show_default=True)
@click.option("--backend", "backends", type=click.Choice(["torch", "onnxruntime", "tensorrt"]), multiple=True,
              default=("torch", "onnxruntime", "tensorrt"), show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where torch and ONNX Runtime run (ORT: CPU or CUDA provider); TensorRT always runs on the GPU.")
@click.option("--iters", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch and ONNX Runtime.")
@click.option("--json", "as_json", is_flag=True)
def bench_infer(model_name, checkpoint, batches, backends, device, iters, warmup, threads, as_json) -> None:
    """Images/s of the visible graph for PyTorch eager, ONNX Runtime and TensorRT, and SEG's share of its time.

    Every row says where it ran (CPU or GPU): torch and ONNX Runtime on --device, TensorRT on the GPU.
    """
    import tempfile

    import torch

    from sepgzoo.deploy.onnx_export import to_onnx
    from sepgzoo.hub.factory import create_model

    problem = _bench_device_error(device, backends)
    if problem:
        raise click.ClickException(problem)
    if threads:
        torch.set_num_threads(threads)
    if checkpoint is not None:
        from sepgzoo.hub.checkpoint import load_model

        model, _ = _run(lambda: load_model(checkpoint, "cpu", seg_impl="matmul"))
        model_name = str(checkpoint)
    else:
        model = _run(lambda: create_model(model_name, seg_impl="matmul")).eval()
    h, w = model.input_size
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    rng = np.random.default_rng(0)
    images = {b: rng.integers(0, 256, size=(b, h, w, 3), dtype=np.uint8) for b in batches}

    def record(backend: str, batch: int, seconds: float, seg_seconds: float | None, where: str) -> None:
        rows.append({"backend": backend, "device": where, "batch": batch, "images_per_s": batch / seconds,
                     "ms_per_batch": 1000 * seconds,
                     "seg_share": None if seg_seconds is None else seg_seconds / seconds})
        if not as_json:
            share = "" if seg_seconds is None else f"  SEG {100 * seg_seconds / seconds:5.1f}%"
            click.echo(f"{backend:<12} {where:<3} batch {batch:>3}  {batch / seconds:8.1f} img/s  "
                       f"{1000 * seconds:9.1f} ms{share}")

    with tempfile.TemporaryDirectory(prefix="sepgzoo-bench-") as tmp:
        if "torch" in backends:
            _bench_torch(model, images, device, iters, warmup, record)
        onnx_path = Path(tmp) / "visible.onnx"
        if "onnxruntime" in backends or "tensorrt" in backends:  # to_onnx moves the model back to the CPU
            _run(lambda: to_onnx(model, "visible", onnx_path, max_batch=max(batches), parity=False))
        if "onnxruntime" in backends:
            seg_path = None
            if model.seg is not None:
                seg_path = Path(tmp) / "seg.onnx"
                _seg_onnx((h, w), seg_path)
            _bench_onnxruntime(onnx_path, seg_path, images, device, threads, iters, warmup, record, notes)
        if "tensorrt" in backends:
            _bench_tensorrt(onnx_path, images, (h, w), iters, warmup, record, notes)
    summary = {"model": model_name, "input_size": [h, w], "modality": "visible", "device": device,
               "threads": threads or torch.get_num_threads(), "iters": iters, "results": rows, "notes": notes}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        for note in notes:
            click.echo(note)
