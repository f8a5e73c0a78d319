"""The `sepgzoo` command line: a thin click group over the library."""

import json
import sys
from pathlib import Path

import click

from sepgzoo.data.cli import data
from sepgzoo.deploy_cli import bench_infer, embed, export, search
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
    from sepgzoo.engine import train as run_training
    from sepgzoo.evaluate import format_table

    run_dir = run_training(recipe, output=output, resume=resume)
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
def recipes() -> None:
    """List the shipped recipes."""
    from sepgzoo.config import available_recipes, find_recipe

    for name in available_recipes():
        first = find_recipe(name).read_text().splitlines()[0].lstrip("# ")
        click.echo(f"{name:<16} {first}")


@main.group()
def viz() -> None:
    """Figures."""


@viz.command(name="seg")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="PNG to write (default IMAGE-seg.png).")
@click.option("--size", nargs=2, type=int, default=(288, 144), show_default=True, help="Resize to H W first.")
def viz_seg(image: str, out: str | None, size: tuple[int, int]) -> None:
    """The paper's Fig. 3 view of an image: RGB, grey, phase reconstruction, SEG."""
    from sepgzoo.viz import seg_view

    click.echo(seg_view(image, out or str(Path(image).with_suffix("")) + "-seg.png", tuple(size)))


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
@click.option("--json", "as_json", is_flag=True)
def bench_train(model: str, ids: int, images_per_id: int, size: tuple[int, int], steps: int, device: str, amp: bool,
                as_json: bool) -> None:
    """Training-step throughput, peak memory and the losses' share of step time."""
    from sepgzoo.bench import bench_training_step
    from sepgzoo.engine import resolve_device

    result = bench_training_step(model, ids, images_per_id, tuple(size), steps, resolve_device(device), amp)
    click.echo(json.dumps(result, indent=2) if as_json else "\n".join(f"{k}: {v}" for k, v in result.items()))


main.add_command(data)
main.add_command(zoo)
main.add_command(export)
main.add_command(embed)
main.add_command(search)
bench.add_command(bench_infer)

if __name__ == "__main__":
    sys.exit(main())
