"""`sepgzoo bench train` and `sepgzoo bench infer` (speed targets live here, never in tests)."""

import json
from pathlib import Path
from typing import Any

import click


@click.group()
def bench() -> None:
    """Benchmarks (speed targets live here, never in tests)."""


@bench.command(name="train")
@click.option("--model", default="sepg_resnet50", show_default=True)
@click.option("--ids", default=8, show_default=True, help="Identities per batch (P).")
@click.option("--images-per-id", default=7, show_default=True, help="Images per identity and modality (K).")
@click.option("--size", nargs=2, type=int, default=(288, 144), show_default=True)
@click.option("--steps", default=5, show_default=True, type=click.IntRange(min=1), help="Timed steps.")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0),
              help="Untimed steps first (compilation, and on a CPU the first steps' fresh memory pages).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision (CUDA only).")
@click.option("--channels-last/--no-channels-last", default=None,
              help="Model and images in channels_last (default: the recipe default, train.channels_last = true).")
@click.option("--compile/--no-compile", "compile_", default=None,
              help="torch.compile the model (default: train.compile = false); warm-up then includes compilation.")
@click.option("--json", "as_json", is_flag=True)
def bench_train(model: str, ids: int, images_per_id: int, size: tuple[int, int], steps: int, warmup: int, device: str,
                amp: bool, channels_last: bool | None, compile_: bool | None, as_json: bool) -> None:
    """Training-step throughput, peak memory, and the losses' and convolutions' shares of step time."""
    from sepgzoo.training.bench import bench_training_step
    from sepgzoo.utils.device import resolve_device

    result = bench_training_step(model, ids, images_per_id, tuple(size), steps, resolve_device(device), amp,
                                 channels_last=channels_last, compile=compile_, warmup=warmup)
    click.echo(json.dumps(result, indent=2) if as_json else "\n".join(f"{k}: {v}" for k, v in result.items()))


@bench.command("infer")
@click.option("--model", "model_name", default="sepg_resnet50", show_default=True,
              help="Registered model (random weights; speed does not depend on them).")
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), default=None,
              help="Benchmark a trained checkpoint instead of --model.")
@click.option("--export", "export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Time an export's own graphs (every precision it holds) and checked engines, both modalities, "
                   "as open_model runs them (no PyTorch needed).")
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 8, 32), show_default=True)
@click.option("--backend", "backends", type=click.Choice(["torch", "onnxruntime", "tensorrt"]), multiple=True,
              default=("torch", "onnxruntime", "tensorrt"), show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where torch and ONNX Runtime run (ORT: CPU or CUDA provider); TensorRT always runs on the GPU.")
@click.option("--iters", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch and ONNX Runtime.")
@click.option("--json", "as_json", is_flag=True)
def bench_infer(model_name, checkpoint, export_dir, batches, backends, device, iters, warmup, threads,
                as_json) -> None:
    """Images/s of the visible graph for PyTorch eager, ONNX Runtime and TensorRT, and SEG's share of its time; or
    (--export) of an export's own artifacts.

    Every row says where it ran: torch and ONNX Runtime on --device (an export's rows name the ONNX Runtime
    provider really used), TensorRT on the GPU.
    """
    def show(row: dict[str, Any]) -> None:
        share = "" if row["seg_share"] is None else f"  SEG {100 * row['seg_share']:5.1f}%"
        what = f"{row['backend']} {row.get('modality', '')}".strip()
        click.echo(f"{what:<28} {row['device']:<3} batch {row['batch']:>3}  "
                   f"{row['images_per_s']:8.1f} img/s  {row['ms_per_batch']:9.1f} ms{share}")

    if export_dir is not None:
        from sepgzoo.deploy.bench_infer import bench_export

        summary = bench_export(export_dir, batches, device, iters, warmup, threads, on_row=None if as_json else show)
    else:
        from sepgzoo.deploy.bench_infer import bench_inference, bench_model

        model, model_name = bench_model(checkpoint, model_name)
        summary = bench_inference(model, model_name, batches, backends, device, iters, warmup, threads,
                                  on_row=None if as_json else show)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        for note in summary["notes"]:
            click.echo(note)
