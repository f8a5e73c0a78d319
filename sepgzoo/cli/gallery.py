"""Gallery index commands: `index build`, `index add` (searched with `sepgzoo search --index`)."""

from __future__ import annotations

from pathlib import Path

import click

from sepgzoo.cli.deploy import MODALITY_HELP, backend_options, backends, modality_option, weights_sha256


@click.group("index")
def index() -> None:
    """A persistent gallery index (FAISS): embed a gallery once, then search it with `sepgzoo search --index`."""


@index.command("build")
@backend_options
@click.option("--modality", required=True, callback=modality_option, help=f"{MODALITY_HELP}: what the gallery shows.")
@click.option("--gallery", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of gallery images (searched recursively).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New index folder.")
@click.option("--kind", type=click.Choice(["exact", "hnsw"]), default="exact", show_default=True,
              help="exact: every image scored; hnsw: approximate, for galleries of millions.")
@click.option("--m", "m", type=click.IntRange(min=2), default=None, help="hnsw: graph neighbours per image [32].")
@click.option("--ef-construction", type=click.IntRange(min=1), default=None,
              help="hnsw: candidates while linking an image [40].")
@click.option("--ef-search", type=click.IntRange(min=1), default=None,
              help="hnsw: candidates per query (more: slower, closer to exact) [64].")
def build(checkpoint, model_path, device, batch_size, modality, gallery, out, kind, m, ef_construction,
          ef_search) -> None:
    """Embed every image under --gallery once and write the index folder --out (refused if it exists)."""
    from sepgzoo.deploy.gallery_index import GalleryIndex

    if out.exists():
        raise click.UsageError(f"--out {out} exists: choose a new folder, or add images with `sepgzoo index add`")
    model = backends(checkpoint, model_path, device, batch_size)(modality)
    parameters = {"m": m, "ef_construction": ef_construction, "ef_search": ef_search} if kind == "hnsw" else {}
    built = GalleryIndex.build(model, gallery, weights_sha256(checkpoint, model_path), kind, batch_size, **parameters)
    built.save(out)
    parameters = built.metadata["parameters"] or ""
    click.echo(f"{out}: {len(built)} {modality.value} images, kind {kind} {parameters}".rstrip())


@index.command("add")
@backend_options
@click.argument("index_path", metavar="INDEX", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def add(checkpoint, model_path, device, batch_size, index_path, folder) -> None:
    """Embed and append the images under FOLDER that INDEX does not hold yet (paths already indexed are skipped),
    with the model that built it."""
    from sepgzoo.deploy.gallery_index import GalleryIndex

    opened = GalleryIndex.open(index_path)
    model = backends(checkpoint, model_path, device, batch_size)(opened.metadata["modality"])
    counts = opened.add(model, folder, weights_sha256(checkpoint, model_path), batch_size)
    if counts["added"]:
        opened.save(index_path, replace=True)
    click.echo(f"{index_path}: added {counts['added']}, skipped {counts['skipped']} already indexed; "
               f"{len(opened)} images")
