"""`sepgzoo eval` and the `viz` figures."""

import json
from pathlib import Path

import click

from sepgzoo.cli.options import SET_HELP
from sepgzoo.cli.zoo import weights_option


@click.command(name="eval")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(),
              help="Run folder or its model.safetensors; repeat it to average several runs (the 10 RegDB splits).")
@click.option("--model", "export_dir", type=click.Path(file_okay=False), default=None,
              help="An export folder (sepgzoo export): evaluate the deployed graphs or engines themselves.")
@click.option("--precision", default="fp32", show_default=True,
              help="With --model: which of the export's graphs (or engines) to evaluate: fp32, fp16, int8, int8-cpu, "
                   "or dim<K> (a projected graph of `export --dim K`).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (percent).")
@click.option("--plots", type=click.Path(file_okay=False), help="Write cmc.png and tsne.png into this folder.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "tensorrt"]),
              help="Checkpoints: PyTorch's device. --model: ONNX Runtime on cpu or cuda, or the TensorRT engines.")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Keep each result in RUN/evals/ or EXPORT/evals/ (never over metrics.json or an earlier file).")
@weights_option("checkpoints")
def eval_command(checkpoints: tuple[str, ...], export_dir: str | None, precision: str, overrides: tuple[str, ...],
                 as_json: bool, plots: str | None, device: str, record: bool) -> None:
    """Evaluate a trained model, or an export (--model), with its recipe's protocol (10 trials; SYSU all and indoor).

    Several --checkpoint runs (e.g. one RegDB model per split, or several seeds) are each evaluated
    with their own recipe and the results averaged, as the papers report RegDB. Each result is recorded in
    the evals/ folder beside the model; the training's metrics.json is never changed.
    """
    if bool(checkpoints) == bool(export_dir):
        raise click.UsageError("give --checkpoint RUN (or --weights NAME.TAG), or --model EXPORT_DIR")
    from sepgzoo.evaluation.records import write_evaluation_record
    from sepgzoo.evaluation.report import format_table, json_summary

    if export_dir:
        from sepgzoo.evaluation.deployed import evaluate_export

        targets = [export_dir]
        reports = [evaluate_export(export_dir, overrides, precision, "cpu" if device == "auto" else device, plots)]
    else:
        if device == "tensorrt":
            raise click.UsageError("--device tensorrt evaluates an export: give --model EXPORT_DIR")
        from sepgzoo.evaluation.evaluate import evaluate_run
        from sepgzoo.evaluation.scoring import average_reports
        from sepgzoo.utils.device import resolve_device

        targets, torch_device = list(checkpoints), resolve_device(device)
        reports = [evaluate_run(path, overrides, device=torch_device, plots=plots if len(targets) == 1 else None)
                   for path in targets]
    recorded = [write_evaluation_record(path, report) for path, report in zip(targets, reports)] if record else []
    report = reports[0] if len(reports) == 1 else average_reports(reports, targets)
    if as_json:
        click.echo(json.dumps({**json_summary(report, default_runs=[str(targets[0])]),
                               "recorded": [str(p) for p in recorded]}, indent=2))
        return
    click.echo(format_table(report))
    for path in recorded:
        click.echo(f"recorded: {path}")


@click.group()
def viz() -> None:
    """Figures."""


@viz.command(name="seg")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="PNG to write (default IMAGE-seg.png).")
@click.option("--size", nargs=2, type=int, default=(288, 144), show_default=True, help="Resize to H W first.")
def viz_seg(image: str, out: str | None, size: tuple[int, int]) -> None:
    """The paper's Fig. 3 view of an image: RGB, grey, phase reconstruction, SEG."""
    from sepgzoo.figures.seg import seg_view

    click.echo(seg_view(image, out or str(Path(image).with_suffix("")) + "-seg.png", tuple(size)))


@viz.command(name="curves")
@click.argument("run", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), help="PNG to write (default RUN/curves.png).")
def viz_curves(run: str, out: str | None) -> None:
    """A training run's log.csv (RUN is the run folder or the file) as one PNG of training curves."""
    from sepgzoo.training.curves import plot_run_curves

    click.echo(plot_run_curves(run, out))
