"""`sepgzoo zoo list | publish | readme`, and the `--weights NAME.TAG` option of eval, export, embed and search."""

import functools
import json
from pathlib import Path

import click


def weights_option(target: str = "checkpoint"):
    """Add `--weights NAME.TAG`: a zoo model, sha256-verified and handed to the command as its `target` argument
    (a path, or a one-element tuple where the command takes several checkpoints)."""

    def decorate(command):
        @click.option("--weights", "zoo_name", default=None, metavar="NAME.TAG",
                      help="Released weights from the model zoo (see `sepgzoo zoo list`) instead of --checkpoint.")
        @functools.wraps(command)
        def wrapper(*args, zoo_name: str | None = None, **kwargs):
            if zoo_name is not None:
                given = kwargs.get(target)
                if given:
                    raise click.UsageError("give either --checkpoint or --weights, not both")
                from sepgzoo.hub.zoo import materialise

                folder = materialise(zoo_name)
                kwargs[target] = (folder,) if isinstance(given, tuple) else folder
            return command(*args, **kwargs)

        return wrapper

    return decorate


@click.group()
def zoo() -> None:
    """The model zoo: released weights with their recipe, protocol and metrics."""


@zoo.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a list of entries (each with name and sha256).")
def list_command(as_json: bool) -> None:
    """Name, dataset, protocol setting, Rank-1/mAP and size of every released model."""
    from dataclasses import asdict

    from sepgzoo.hub.zoo import load_manifest

    entries = load_manifest()
    if as_json:
        click.echo(json.dumps([asdict(e) for e in entries.values()], indent=2))
        return
    click.echo(f"{'name':<30}{'dataset':<12}{'setting':<22}{'Rank-1':>8}{'mAP':>8}{'size':>10}")
    for name, e in entries.items():
        for setting, m in e.metrics.items():
            click.echo(f"{name:<30}{e.dataset:<12}{setting:<22}{m['rank1']:>8.2f}{m['mAP']:>8.2f}"
                       f"{e.size_bytes / 2**20:>8.1f}MB")


@zoo.command()
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.option("--tag", required=True, help="Weights tag: the entry is named <model>.<tag>, e.g. sepg_resnet50.sysu.")
@click.option("--url", default=None, help="Release-asset URL for large weights (the file is then not copied).")
@click.option("--license", "license_note", default=None, help="Licence note for the weights.")
@click.option("--notes", default="", help="Free text shown in the zoo README.")
@click.option("--allow-test-selected", is_flag=True, help="Publish test-selected numbers, labelled as such.")
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Zoo folder to write [default: the package's weights/].")
def publish(run: Path, tag: str, url: str | None, license_note: str | None, notes: str, allow_test_selected: bool,
            weights_dir: Path | None) -> None:
    """Turn a finished, evaluated RUN into a zoo entry and a weights file, with its sha256."""
    from sepgzoo.hub.zoo import publish as publish_run

    kwargs = {"license_note": license_note} if license_note else {}
    entry = publish_run(run, tag, directory=weights_dir, url=url, notes=notes,
                        allow_test_selected=allow_test_selected, **kwargs)
    folder = run if run.is_dir() else run.parent
    click.echo(f"published {entry.name} (sha256 {entry.sha256}) with the metrics of the training's own evaluation "
               f"(epoch {entry.epoch}): {folder / 'metrics.json'}")


@zoo.command()
@click.option("--check", is_flag=True, help="Exit 1 when weights/README.md differs from the manifest.")
def readme(check: bool) -> None:
    """Regenerate weights/README.md from weights/manifest.json."""
    from sepgzoo.hub.zoo import load_manifest, render_readme, weights_dir

    path = weights_dir() / "README.md"
    text = render_readme(load_manifest())
    if check:
        if not path.is_file() or path.read_text() != text:
            raise click.ClickException(f"{path} is out of date; run `sepgzoo zoo readme`")
        return
    from sepgzoo.utils.atomic import write_text

    write_text(path, text)
    click.echo(path)
