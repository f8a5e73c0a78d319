"""The `sepgzoo` command line: a thin click group over the library."""

import json
import sys
from pathlib import Path

import click

from sepgzoo.data.cli import data
from sepgzoo.deploy_cli import bench_infer, embed, export, search
from sepgzoo.doctor_cli import doctor
from sepgzoo.errors import UserError
from sepgzoo.zoo_cli import weights_option, zoo

SET_HELP = "Override a recipe key, e.g. --set train.epochs=5 (repeatable; values are YAML scalars or lists)."


class Group(click.Group):
    """Reports UserError as a one-line error (exit 2), never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            raise click.ClickException(str(err)) from None


@click.group(cls=Group)
@click.version_option(package_name="sepgzoo")
def main() -> None:
    """SEPG-Net for visible-infrared person re-identification: train, evaluate, export."""


@main.command()
@click.option("--recipe", "recipe_name", default="synthetic", show_default=True,
              help="Recipe name (see `sepgzoo recipes`) or a YAML file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--output", type=click.Path(file_okay=False), help="Run folder (default runs/<recipe>-<timestamp>).")
@click.option("--resume", type=click.Path(), help="Continue a run folder (or its last.pt) at the next epoch.")
@click.option("--print-recipe", is_flag=True, help="Print the resolved recipe and exit.")
def train(recipe_name: str, overrides: tuple[str, ...], output: str | None, resume: str | None,
          print_recipe: bool) -> None:
    """Train SEPG-Net; evaluates the last epoch on the recipe's test protocol at the end."""
    from sepgzoo.config import load_recipe

    recipe = load_recipe(recipe_name, overrides)
    if print_recipe:
        click.echo(recipe.to_yaml(), nl=False)
        return
    if resume and overrides:
        raise UserError("--resume continues a run with its own recipe; --set cannot be combined with it")
    from sepgzoo.training.distributed import is_main_process
    from sepgzoo.engine import train as run_training
    from sepgzoo.evaluate import format_table

    run_dir = run_training(recipe, output=output, resume=resume)
    if not is_main_process():  # under torchrun, rank 0 alone reports
        return
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        click.echo(format_table(json.loads(metrics.read_text())))
    click.echo(f"run folder: {run_dir}")


@main.command(name="eval")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(),
              help="Run folder or its model.safetensors; repeat it to average several runs (the 10 RegDB splits).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (percent).")
@click.option("--plots", type=click.Path(file_okay=False), help="Write cmc.png and tsne.png into this folder.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@weights_option("checkpoints")
def eval_command(checkpoints: tuple[str, ...], overrides: tuple[str, ...], as_json: bool, plots: str | None,
                 device: str) -> None:
    """Evaluate a trained model with its recipe's protocol (10 trials; SYSU all and indoor).

    Several --checkpoint runs (e.g. one RegDB model per split, or several seeds) are each evaluated
    with their own recipe and the results averaged, as the papers report RegDB.
    """
    if not checkpoints:
        raise click.UsageError("give --checkpoint RUN or --weights NAME.TAG")
    from sepgzoo.engine import resolve_device
    from sepgzoo.evaluate import evaluate_run, evaluate_runs, format_table, summarise

    if len(checkpoints) == 1:
        report = evaluate_run(checkpoints[0], overrides, device=resolve_device(device), plots=plots)
    else:
        report = evaluate_runs(checkpoints, overrides, device=resolve_device(device))
    if not as_json:
        click.echo(format_table(report))
        return
    settings = summarise(report["results"])
    first = next(iter(report["results"]))
    out = {**settings[first], "protocol": first, "options": report["results"][first]["options"],
           "selection": report["selection"], "runs": report.get("runs", [str(checkpoints[0])]), "settings": {
               name: {**values, "options": report["results"][name]["options"]} for name, values in settings.items()}}
    click.echo(json.dumps(out, indent=2))


@main.command()
@click.option("--backbone", default="test_resnet", show_default=True,
              help="timm backbone to pretrain (that of the model you fine-tune; sepg_tiny uses test_resnet).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Weights file to write (.safetensors); a summary .json is written beside it.")
@click.option("--ids", default=400, show_default=True, help="Pretraining identities (classes).")
@click.option("--images-per-id", default=16, show_default=True, help="Visible images per identity.")
@click.option("--epochs", default=30, show_default=True, help="Passes over the images (cosine decay to 0).")
@click.option("--seed", default=1, show_default=True, help="Seed of the pretraining identities, images and training.")
@click.option("--size", nargs=2, type=int, default=(64, 32), show_default=True,
              help="Image H W (the recipe's data.height, data.width).")
@click.option("--exclude-ids", default=48, show_default=True,
              help="data.synthetic_ids of the evaluation data set, whose identities pretraining never sees.")
@click.option("--exclude-seed", default=0, show_default=True, help="Seed of the evaluation data set (recipes: 0).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def pretrain(backbone: str, out: str, ids: int, images_per_id: int, epochs: int, seed: int, size: tuple[int, int],
             exclude_ids: int, exclude_seed: int, device: str, force: bool) -> None:
    """Pretrain a backbone offline (an ImageNet stand-in) on synthetic people disjoint from the evaluation set."""
    from sepgzoo.engine import resolve_device
    from sepgzoo.training.pretrain import pretrain_backbone, summary_path

    weights = pretrain_backbone(backbone, out, ids=ids, seed=seed, exclude_ids=exclude_ids, exclude_seed=exclude_seed,
                                epochs=epochs, height=size[0], width=size[1], images_per_id=images_per_id,
                                device=resolve_device(device), force=force)
    summary = json.loads(summary_path(weights).read_text())
    click.echo(f"weights: {weights} (train accuracy {summary['train_accuracy']:.1%}, {summary['seconds']} s)")
    click.echo(f"summary: {summary_path(weights)}")
    custom = f"RECIPE --set model.name=sepg --set model.backbone={backbone}"
    recipe = "synthetic" if backbone == "test_resnet" else custom
    click.echo(f"next: sepgzoo train --recipe {recipe} --set model.pretrained={weights}")


@main.command()
def recipes() -> None:
    """List the shipped recipes."""
    from sepgzoo.config import available_recipes, find_recipe

    for name in available_recipes():
        first = find_recipe(name).read_text().splitlines()[0].lstrip("# ")
        click.echo(f"{name:<16} {first}")


@main.command()
@click.option("--recipe", "recipe_name", default="synthetic", show_default=True, help="Recipe to ablate.")
@click.option("--rows", default=",".join(("baseline", "se", "se_cc", "se_paba")), show_default=True,
              help="Comma-separated row overlays (recipes/ablation/NAME.yaml) or YAML files.")
@click.option("--seeds", default=3, show_default=True, help="Seeds per row (train.seed = 0..N-1).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--output", type=click.Path(file_okay=False), help="Ablation folder (default runs/ablate-<recipe>).")
def ablate(recipe_name: str, rows: str, seeds: int, overrides: tuple[str, ...], output: str | None) -> None:
    """Train the Table II rows with one budget and several seeds; print mean +- std (resumes finished rows)."""
    from sepgzoo.training.ablation import ablate as run_ablation

    result = run_ablation(recipe_name, [r.strip() for r in rows.split(",") if r.strip()], seeds, list(overrides),
                          output)
    click.echo(result["markdown"])
    click.echo(f"ablation folder: {result['output']} (ablation.json, ablation.md, ablation.png)")


@main.group()
def viz() -> None:
    """Figures."""


@viz.command(name="seg")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="PNG to write (default IMAGE-seg.png).")
@click.option("--size", nargs=2, type=int, default=(288, 144), show_default=True, help="Resize to H W first.")
def viz_seg(image: str, out: str | None, size: tuple[int, int]) -> None:
    """The paper's Fig. 3 view of an image: RGB, grey, phase reconstruction, SEG."""
    from sepgzoo.evaluation.seg_view import seg_view

    click.echo(seg_view(image, out or str(Path(image).with_suffix("")) + "-seg.png", tuple(size)))


@viz.command(name="curves")
@click.argument("run", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), help="PNG to write (default RUN/curves.png).")
def viz_curves(run: str, out: str | None) -> None:
    """A training run's log.csv (RUN is the run folder or the file) as one PNG of training curves."""
    from sepgzoo.training.curves import plot_run_curves

    click.echo(plot_run_curves(run, out))


@main.group()
def bench() -> None:
    """Benchmarks (speed targets live here, never in tests)."""


@bench.command(name="train")
@click.option("--model", default="sepg_resnet50", show_default=True)
@click.option("--ids", default=8, show_default=True, help="Identities per batch (P).")
@click.option("--images-per-id", default=7, show_default=True, help="Images per identity and modality (K).")
@click.option("--size", nargs=2, type=int, default=(288, 144), show_default=True)
@click.option("--steps", default=5, show_default=True, help="Timed steps (after 2 warm-up steps).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision (CUDA only).")
@click.option("--channels-last/--no-channels-last", default=None,
              help="Model and images in channels_last (default: the recipe default, train.channels_last = true).")
@click.option("--compile/--no-compile", "compile_", default=None,
              help="torch.compile the model (default: train.compile = false); warm-up then includes compilation.")
@click.option("--json", "as_json", is_flag=True)
def bench_train(model: str, ids: int, images_per_id: int, size: tuple[int, int], steps: int, device: str, amp: bool,
                channels_last: bool | None, compile_: bool | None, as_json: bool) -> None:
    """Training-step throughput, peak memory and the losses' share of step time."""
    from sepgzoo.bench import bench_training_step
    from sepgzoo.engine import resolve_device

    result = bench_training_step(model, ids, images_per_id, tuple(size), steps, resolve_device(device), amp,
                                 channels_last=channels_last, compile=compile_)
    click.echo(json.dumps(result, indent=2) if as_json else "\n".join(f"{k}: {v}" for k, v in result.items()))


main.add_command(data)
main.add_command(zoo)
main.add_command(export)
main.add_command(embed)
main.add_command(search)
bench.add_command(bench_infer)
main.add_command(doctor)

if __name__ == "__main__":
    sys.exit(main())
