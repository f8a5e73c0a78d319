"""`sepgzoo doctor`: print the environment; `--gpu` runs the GPU self-check (`sepgzoo.doctor`)."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command("doctor")
@click.option("--gpu", is_flag=True,
              help="Run the GPU self-check (CUDA only, a few minutes): training steps, CPU->GPU resume, "
                   "evaluation, export --fp16 --trt, bench infer; writes gpu-report.json and gpu-report.md.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the reports, the small run and its export [default: runs/gpu-check-<timestamp>].")
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default="cuda", hidden=True,
              help="For tests only: run the self-check's checks on CPU (needs --tiny).")
@click.option("--tiny", is_flag=True, hidden=True,
              help="For tests only: the tiny test_sepg model, 64 x 32 images, 2 steps, 12 synthetic identities.")
@click.pass_context
def doctor(ctx: click.Context, gpu: bool, output: Path | None, device: str, tiny: bool) -> None:
    """Check this machine: versions, GPUs, ONNX Runtime providers, TensorRT; `--gpu` runs the GPU self-check.

    `doctor --gpu` exits with status 1 when a check failed, or at once (writing nothing) when there is no
    CUDA device. `--device cpu --tiny` (hidden) runs the same checks on CPU at tiny sizes, for CI.
    """
    from sepgzoo.doctor.config import CheckConfig
    from sepgzoo.doctor.environment import cuda_missing, environment
    from sepgzoo.doctor.report import REPORT_JSON, REPORT_MD
    from sepgzoo.doctor.runner import run_checks

    if not gpu:
        import json

        click.echo(json.dumps(environment(), indent=2))
        return
    if device == "cuda":
        reason = cuda_missing()
        if reason:
            click.echo(f"sepgzoo doctor --gpu: {reason}; run it on a GPU machine", err=True)
            ctx.exit(1)
    elif not tiny:
        raise click.UsageError("--device cpu is for tests and needs --tiny (the full-size checks would take hours)")
    output = output or Path("runs") / f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}"
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise click.ClickException(f"output folder {output} is not empty; choose another --output")
    cfg = CheckConfig.tiny_config(output, device) if tiny else CheckConfig.gpu(output)
    status, _ = run_checks(cfg, echo=click.echo)
    click.echo("")
    click.echo((output / REPORT_MD).read_text(), nl=False)
    click.echo(f"\nwrote {output / REPORT_JSON} and {output / REPORT_MD}")
    ctx.exit(status)
