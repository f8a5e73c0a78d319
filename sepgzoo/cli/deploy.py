"""Deployment commands: `export`, `embed`, `search`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sepgzoo.cli.zoo import weights_option
from sepgzoo.deploy.contract import ENGINE_SUFFIXES
from sepgzoo.deploy.runtime import open_model, rank
from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality
from sepgzoo.preprocess import IMAGE_SUFFIXES, list_images

MODALITY_HELP = "visible or infrared"


def modality_option(ctx, param, value):
    if value is None:
        return None
    try:
        return as_modality(value)
    except UserError as err:
        raise click.BadParameter(str(err)) from None


def _one_backend(checkpoint: Path | None, model_path: Path | None) -> None:
    if (checkpoint is None) == (model_path is None):
        raise click.UsageError("give exactly one of --checkpoint RUN (PyTorch) or --model FILE|DIR (exported)")


def backends(checkpoint: Path | None, model_path: Path | None, device: str,
              batch_size: int) -> Callable[[Modality], Any]:
    """A function modality -> embedder, for exactly one of --checkpoint / --model."""
    _one_backend(checkpoint, model_path)
    if checkpoint is not None:
        from sepgzoo.hub.checkpoint import load_model

        torch_device = "cuda" if device in ("cuda", "tensorrt") else device
        model, _ = load_model(checkpoint, torch_device)
        from sepgzoo.deploy.torch_embedder import TorchEmbedder

        return lambda modality: TorchEmbedder(model, modality, batch_size)
    backend = "tensorrt" if model_path.suffix.lower() in ENGINE_SUFFIXES else "onnxruntime"
    return lambda modality: open_model(model_path, modality, backend=backend, providers=device)


def weights_sha256(checkpoint: Path | None, model_path: Path | None) -> str | None:
    """The sha256 of the trained weights behind --checkpoint or --model (None for a bare .onnx file: its own
    metadata says, and the index reads it there)."""
    if checkpoint is not None:
        from sepgzoo.hub.checkpoint import resolve_model_files
        from sepgzoo.utils.hashing import sha256_file

        return sha256_file(resolve_model_files(checkpoint)[0])
    folder = model_path if model_path.is_dir() else model_path.parent
    if model_path.is_dir() or model_path.suffix.lower() in ENGINE_SUFFIXES:
        from sepgzoo.deploy.contract import read_export_json

        return read_export_json(folder).get("weights_sha256")
    return None


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


def _default_output(checkpoint: Path, meta: dict[str, Any]) -> Path:
    """`./<zoo name>-export` for a folder that `--weights` materialised, else `<checkpoint dir>/export`."""
    zoo_name = meta.get("zoo")
    if zoo_name:
        return Path(f"{zoo_name}-export")
    return (checkpoint if checkpoint.is_dir() else checkpoint.parent) / "export"


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------
@click.command("export")
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path),
              help="Run directory, model.safetensors or model.json.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Export directory [default: <checkpoint dir>/export; with --weights: ./<name>-export].")
@click.option("--trt", is_flag=True, help="Also build TensorRT engines of each precision written: fp32, or the fp16 "
                                         "and int8 ones with --fp16 / --int8 (or print the trtexec commands).")
@click.option("--fp16", is_flag=True, help="Also write fp16 graphs (SEG and the L2 norm stay fp32); fp16 engines.")
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Largest batch: parity check and TensorRT profile maximum.")
@click.option("--opt-batch", type=click.IntRange(min=1), default=None,
              help="Batch TensorRT tunes for [default: max-batch / 2, at most 16].")
@click.option("--opset", type=click.IntRange(min=7), default=18, show_default=True)
@click.option("--int8", is_flag=True,
              help="Also write INT8 Q/DQ graphs (int8: TensorRT's symmetric form; int8-cpu: ONNX Runtime's), kept only "
                   "if Rank-1 and mAP stay within 1 point of fp32 on the recipe's test split.")
@click.option("--dim", type=click.IntRange(min=1), default=None,
              help="Also write graphs whose embeddings are projected to DIM dimensions (PCA fitted on the training "
                   "split, folded into the graph), kept only within 1 point of fp32 like --int8.")
@click.option("--calib-images", type=click.IntRange(min=1), default=256, show_default=True,
              help="With --int8 / --dim: calibration (fitting) images per modality, from the recipe's training split.")
@click.option("--calib-seed", type=int, default=0, show_default=True,
              help="With --int8 / --dim: which images are drawn.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="With --int8 / --dim: recipe overrides for calibration and the gate, e.g. "
                   "data.root=/data/SYSU-MM01.")
@click.option("--deepstream", is_flag=True, help="Also write EXPORT/deepstream/: float NCHW graphs, nvinfer and "
                                                 "tracker configs (DeepStream 7.1).")
@click.option("--triton", "triton_repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write a Triton model repository here (ONNX models, plus checked TensorRT plans).")
@weights_option()
def export(checkpoint: Path | None, output: Path | None, trt: bool, fp16: bool, max_batch: int,
           opt_batch: int | None, opset: int, int8: bool, dim: int | None, calib_images: int, calib_seed: int,
           overrides: tuple[str, ...], deepstream: bool, triton_repo: Path | None) -> None:
    """Export a trained model to ONNX (one graph per modality) with parity checks; optionally INT8 graphs, TensorRT
    engines, DeepStream files and a Triton model repository."""
    from sepgzoo.deploy.onnx_export import export_model, load_for_export
    from sepgzoo.deploy.tensorrt_build import build_engines

    if checkpoint is None:
        raise click.UsageError("give --checkpoint RUN or --weights NAME.TAG")
    if opt_batch is not None and opt_batch > max_batch:
        raise click.BadParameter(f"--opt-batch {opt_batch} is larger than --max-batch {max_batch}")
    model, meta = load_for_export(checkpoint)  # the one read of model.json, passed down
    output = output or _default_output(checkpoint, meta)
    record = export_model(model, meta, checkpoint, output, fp16=fp16, max_batch=max_batch, opset=opset)
    for modality, per in record["parity"].items():
        for precision, parity in per.items():
            click.echo(f"{output / record['files'][modality][precision]}: parity vs PyTorch min cosine "
                       f"{min(parity['min_cosine'].values()):.6f} at batches {parity['batches']} "
                       f"(>= {parity['threshold']})")
    if int8:
        from sepgzoo.evaluation.deployed import export_int8

        _echo_gate(export_int8(output, calib_images, calib_seed, overrides)["int8_gate"])
    if dim is not None:
        from sepgzoo.deploy.projection import projection_name
        from sepgzoo.evaluation.deployed import export_projection

        projection = export_projection(output, dim, calib_images, calib_seed, overrides)["projections"]
        about = projection[projection_name(dim)]
        click.echo(f"{projection_name(dim)}: PCA to {dim} of {about['from_dim']} dimensions, explained variance "
                   f"{about['explained_variance']:.3f}")
        _echo_gate(about["gate"])
    click.echo(f"{output / 'export.json'}")
    if deepstream:
        from sepgzoo.deploy.contract import parity_images
        from sepgzoo.deploy.deepstream import write_deepstream

        click.echo(f"{write_deepstream(output, parity_images(8, tuple(record['input_size'])))}: float NCHW graphs "
                   "(equal to the uint8 graphs to 1e-5), nvinfer and tracker configs")
    if trt:
        for precision in engine_precisions(fp16, int8):
            _echo_engines(output, build_engines(output, precision, max_batch=max_batch, opt_batch=opt_batch))
    if triton_repo is not None:
        from sepgzoo.deploy.triton import write_triton_repository

        models = write_triton_repository(output, triton_repo)
        click.echo(f"{triton_repo}: Triton model repository ({', '.join(models)})")


def engine_precisions(fp16: bool, int8: bool) -> list[str]:
    """The engines `--trt` builds: one per lower precision asked for, else fp32."""
    return [p for p, asked in (("fp16", fp16), ("int8", int8)) if asked] or ["fp32"]


def _echo_engines(export_dir: Path, engines: dict[str, Any]) -> None:
    for info in engines.values():
        click.echo(f"{export_dir / info['engine']}: TensorRT {info['tensorrt_version']} {info['precision']} on "
                   f"{info['gpu_name']}, parity vs ONNX Runtime fp32 min cosine "
                   f"{min(info['parity']['min_cosine'].values()):.6f} (>= {info['parity']['threshold']})")


def _echo_gate(gate: dict[str, Any]) -> None:
    """Each gated precision's Rank-1 and mAP beside fp32's, per setting."""
    gate = gate["metrics_percent"]
    for precision in (p for p in gate if p != "fp32"):
        for setting, values in gate[precision].items():
            fp32 = gate["fp32"][setting]
            click.echo(f"{precision} {setting}: R1 {values['rank1']:.2f} (fp32 {fp32['rank1']:.2f}), "
                       f"mAP {values['mAP']:.2f} (fp32 {fp32['mAP']:.2f})")


@click.group("engine")
def engine() -> None:
    """TensorRT engines of an export, built where they run (needs TensorRT, never PyTorch)."""


@engine.command("build")
@click.argument("export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--fp16", "precision", flag_value="fp16", help="Build from the fp16 graphs (export with --fp16).")
@click.option("--int8", "precision", flag_value="int8",
              help="Build from the symmetric INT8 Q/DQ graphs (export with --int8): explicit quantization.")
@click.option("--max-batch", type=click.IntRange(min=1), default=None, help="Profile maximum [the export's].")
@click.option("--opt-batch", type=click.IntRange(min=1), default=None,
              help="Batch TensorRT tunes for [default: max-batch / 2, at most 16].")
def engine_build(export_dir: Path, precision: str | None, max_batch: int | None, opt_batch: int | None) -> None:
    """Build and check one engine per modality in EXPORT_DIR (fp32 unless --fp16 or --int8); without TensorRT, write
    the trtexec script and say so."""
    from sepgzoo.deploy.tensorrt_build import build_engines

    _echo_engines(export_dir, build_engines(export_dir, precision or "fp32", max_batch=max_batch, opt_batch=opt_batch))


# ---------------------------------------------------------------------------------------------------------------
# embed
# ---------------------------------------------------------------------------------------------------------------
@click.command("embed")
@backend_options
@click.option("--modality", callback=modality_option, help=f"{MODALITY_HELP} (required with --checkpoint or an export "
              "directory; checked against an exported file).")
@click.option("--json", "as_json", is_flag=True, help='Print {"paths": [...], "embeddings": [[...], ...]}.')
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def embed(checkpoint, model_path, device, batch_size, modality, as_json, images) -> None:
    """Print the unit-norm embeddings of IMAGE files (decoded and resized as in evaluation: sepgzoo.preprocess)."""
    def body():
        _one_backend(checkpoint, model_path)
        if modality is None and (checkpoint is not None or (model_path is not None and model_path.is_dir())):
            raise UserError("--modality is required with --checkpoint or an export directory (visible or infrared)")
        embedder = backends(checkpoint, model_path, device, batch_size)(modality)
        return embedder.embed_paths(list(images), batch_size)

    embeddings = body()
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
@click.option("--gallery", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of gallery images (searched recursively), embedded on every call.")
@click.option("--gallery-modality", callback=modality_option, help=f"{MODALITY_HELP} (with --gallery).")
@click.option("--index", "index_path", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A gallery index (`sepgzoo index build`) instead of --gallery: only the queries are embedded, "
                   "with the model that built it.")
@click.option("--query", "queries", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Query image (repeatable).")
@click.option("--query-modality", required=True, callback=modality_option, help=MODALITY_HELP)
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw each query with its top-k matches into this PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the ranking as JSON.")
def search(checkpoint, model_path, device, batch_size, gallery, gallery_modality, index_path, queries, query_modality,
           top_k, out, as_json) -> None:
    """Rank a gallery of your own images (a folder, or a gallery index) for each query image, by cosine similarity
    of the embeddings."""
    if (gallery is None) == (index_path is None):
        raise click.UsageError("give exactly one of --gallery DIR (with --gallery-modality) or --index INDEX")
    if gallery is not None and gallery_modality is None:
        raise click.UsageError("--gallery needs --gallery-modality (visible or infrared)")
    make = backends(checkpoint, model_path, device, batch_size)
    if index_path is not None:
        gallery_modality, matches = _search_index(index_path, make(query_modality), list(queries), top_k,
                                                  weights_sha256(checkpoint, model_path), batch_size)
    else:
        matches = _search_folder(gallery, make, gallery_modality, query_modality, list(queries), top_k, batch_size)
    results = [{"query": str(q), "matches": [{"path": path, "cosine": float(s)} for path, s in m]}
               for q, m in zip(queries, matches)]
    if as_json:
        click.echo(json.dumps({"query_modality": query_modality.value, "gallery_modality": gallery_modality.value,
                               "results": results}))
    else:
        for result in results:
            click.echo(f"query {result['query']}")
            for k, match in enumerate(result["matches"], 1):
                click.echo(f"  {k:>3}  {match['cosine']:.4f}  {match['path']}")
    if out is not None:
        from sepgzoo.figures.retrieval import draw_ranking

        draw_ranking(results, out)
        if not as_json:
            click.echo(f"wrote {out}")


def _search_folder(gallery: Path, make, gallery_modality: Modality, query_modality: Modality, queries: list[Path],
                   top_k: int, batch_size: int) -> list[list[tuple[str, float]]]:
    """Embed the gallery folder and the queries, rank densely: (path, cosine) best first, per query."""
    gallery_paths = list_images(gallery, recursive=True)
    if not gallery_paths:
        raise UserError(f"no images ({' '.join(IMAGE_SUFFIXES)}) found under {gallery} (or it is not a folder)")
    gallery_emb = make(gallery_modality).embed_paths(gallery_paths, batch_size)
    order, scores = rank(make(query_modality).embed_paths(queries, batch_size), gallery_emb, top_k)
    return [[(str(gallery_paths[i]), s) for i, s in zip(row, row_scores)] for row, row_scores in zip(order, scores)]


def _search_index(index_path: Path, model, queries: list[Path], top_k: int, model_sha256: str | None,
                  batch_size: int) -> tuple[Modality, list[list[tuple[str, float]]]]:
    """Search a gallery index (memory-mapped) with the queries' embeddings, after checking the model is the
    index's; returns the index's modality and (path, cosine) best first, per query."""
    from sepgzoo.deploy.gallery_index import GalleryIndex, weights_of

    index = GalleryIndex.open(index_path, mmap=True)
    index.check_model(model_sha256 or weights_of(model))
    scores, paths = index.search(model.embed_paths(queries, batch_size), top_k)
    return as_modality(index.metadata["modality"]), [list(zip(p, s)) for p, s in zip(paths, scores)]
