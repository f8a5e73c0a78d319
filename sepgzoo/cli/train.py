"""`sepgzoo train`, `pretrain`, `recipes`, `ablate`: training commands."""

import json

import click

from sepgzoo.cli.options import SET_HELP
from sepgzoo.errors import UserError


@click.command()
@click.option("--recipe", "recipe_name", default="synthetic", show_default=True,
              help="Recipe name (see `sepgzoo recipes`) or a YAML file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--output", type=click.Path(file_okay=False), help="Run folder (default runs/<recipe>-<timestamp>).")
@click.option("--resume", type=click.Path(), help="Continue a run folder (or its last.pt) at the next epoch.")
@click.option("--print-recipe", is_flag=True, help="Print the resolved recipe and exit.")
@click.option("--dry-run", is_flag=True,
              help="Check everything (data, one batch, model, a timed step, evaluation set-up, output folder), print "
                   "the plan with a time estimate, write nothing.")
def train(recipe_name: str, overrides: tuple[str, ...], output: str | None, resume: str | None,
          print_recipe: bool, dry_run: bool) -> None:
    """Train SEPG-Net; evaluates the last epoch on the recipe's test protocol at the end (RUN/metrics.json)."""
    from sepgzoo.config import load_recipe

    recipe = load_recipe(recipe_name, overrides)
    if print_recipe:
        click.echo(recipe.to_yaml(), nl=False)
        return
    if resume and overrides:
        raise UserError("--resume continues a run with its own recipe; --set cannot be combined with it")
    if dry_run:
        if resume:
            raise UserError("--dry-run checks a new run; it cannot be combined with --resume")
        from sepgzoo.training.dry_run import dry_run as check_run
        from sepgzoo.training.dry_run import format_plan

        click.echo(format_plan(check_run(recipe, output)))
        return
    from sepgzoo.evaluation.report import format_table
    from sepgzoo.training.distributed import is_main_process
    from sepgzoo.training.engine import train as run_training

    run_dir = run_training(recipe, output=output, resume=resume)
    if not is_main_process():  # under torchrun, rank 0 alone reports
        return
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        click.echo(format_table(json.loads(metrics.read_text())))
        click.echo(f"recorded: {metrics}")
    click.echo(f"run folder: {run_dir}")


@click.command()
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
    from sepgzoo.training.pretrain import pretrain_backbone, summary_path
    from sepgzoo.utils.device import resolve_device

    weights = pretrain_backbone(backbone, out, ids=ids, seed=seed, exclude_ids=exclude_ids, exclude_seed=exclude_seed,
                                epochs=epochs, height=size[0], width=size[1], images_per_id=images_per_id,
                                device=resolve_device(device), force=force)
    summary = json.loads(summary_path(weights).read_text())
    click.echo(f"weights: {weights} (train accuracy {summary['train_accuracy']:.1%}, {summary['seconds']} s)")
    click.echo(f"summary: {summary_path(weights)}")
    custom = f"RECIPE --set model.name=sepg --set model.backbone={backbone}"
    recipe = "synthetic" if backbone == "test_resnet" else custom
    click.echo(f"next: sepgzoo train --recipe {recipe} --set model.pretrained={weights}")


@click.command()
@click.option("--keys", is_flag=True, help="List every recipe key with its default, what it may be, and its meaning.")
def recipes(keys: bool) -> None:
    """List the shipped recipes (or, with --keys, every recipe key)."""
    from sepgzoo.config import available_recipes, find_recipe, recipe_keys

    if keys:
        for row in recipe_keys():
            click.echo(f"{row['key']:<24} {row['default']:<14} {row['allowed']:<42} {row['description']}")
        return
    for name in available_recipes():
        first = find_recipe(name).read_text().splitlines()[0].lstrip("# ")
        click.echo(f"{name:<16} {first}")


@click.command()
@click.option("--recipe", "recipe_name", default="synthetic", show_default=True, help="Recipe to ablate.")
@click.option("--rows", default=",".join(("baseline", "se", "se_cc", "se_paba")), show_default=True,
              help="Comma-separated Table II rows (the keys recipes/sysu_ROW.yaml sets over sysu.yaml) or YAML files.")
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
