"""`sepgzoo data ...` commands: `synth` (write synthetic data), `stats` (split statistics), `check` (known counts,
every image decoded)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sepgzoo.data.datasets import INFRARED, VISIBLE
from sepgzoo.data.integrity import unreadable_images
from sepgzoo.data.protocols import build_protocol, valid_query_count
from sepgzoo.data.registry import DatasetSpec, build_dataset, dataset_names, get_dataset
from sepgzoo.data.synthetic import write_synthetic
from sepgzoo.errors import UserError


class DatasetName(click.ParamType):
    """A registered data set name or alias (any case) -> its `DatasetSpec`; a did-you-mean error otherwise."""

    name = "dataset"

    def convert(self, value, param, ctx) -> DatasetSpec:
        if isinstance(value, DatasetSpec):
            return value
        try:
            return get_dataset(value)
        except UserError as exc:
            self.fail(str(exc), param, ctx)


DATASET = DatasetName()


@click.group()
def data() -> None:
    """Datasets: write synthetic data, print split statistics, check a copy (known counts, every image decoded)."""


@data.command()
@click.option("--layout", type=click.Choice(["sysu", "regdb", "llcm"]), required=True, help="on-disk layout to imitate")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="new or empty output directory")
@click.option("--ids", type=int, default=48, show_default=True, help="number of identities")
@click.option("--seed", type=int, default=0, show_default=True, help="random seed (output is deterministic)")
@click.option("--images-per-camera", type=int, default=None, help="images per (identity, camera) [layout default]")
def synth(layout: str, out: Path, ids: int, seed: int, images_per_camera: int | None) -> None:
    """Write a small synthetic VI-ReID data set in an official layout."""
    summary = write_synthetic(layout, out, ids=ids, seed=seed, images_per_camera=images_per_camera)
    click.echo(f"wrote {layout} layout to {out}: " + ", ".join(f"{k}={v}" for k, v in summary.items() if k != "layout"))


@data.command()
@click.argument("dataset", type=DATASET)
@click.option("--root", type=click.Path(path_type=Path), required=True, help="dataset root directory")
@click.option("--mode", type=click.Choice(["all", "indoor"]), default="all", show_default=True, help="SYSU search mode")
@click.option("--shot", type=click.Choice(["single", "multi"]), default="single", show_default=True, help="SYSU shots")
@click.option("--sampler", type=click.Choice(["agw", "official"]), default=None,
              help="SYSU gallery sampler [agw for single-shot, official for multi-shot]")
@click.option("--trial", type=int, default=None, help="RegDB split 1..10 [1]; SYSU/LLCM gallery trial 0..9 [0]")
@click.option("--direction", type=click.Choice(["v2i", "i2v"]), default=None,
              help="RegDB/LLCM retrieval direction [regdb v2i, llcm i2v]")
@click.option("--json", "as_json", is_flag=True, help="print a JSON object instead of a table")
def stats(dataset: DatasetSpec, root: Path, mode: str, shot: str, sampler: str | None, trial: int | None,
          direction: str | None, as_json: bool) -> None:
    """Print the training and test statistics of DATASET (a registered data set) under the chosen protocol settings."""
    ds, protocol, t = _protocol(dataset, root, mode, shot, sampler, trial, direction)
    train = ds.train
    # a protocol of one split (RegDB) records it as options["split"]: that is the trial shown
    result = {"dataset": dataset.name, "protocol": protocol.name, "trial": protocol.options.get("split", t),
              "train_ids": len({s.pid for s in train}),
              "train_visible": sum(s.modality == VISIBLE for s in train),
              "train_infrared": sum(s.modality == INFRARED for s in train),
              "query": len(protocol.query_samples(t)), "gallery": len(protocol.gallery_samples(t)),
              "query_ids": len({s.pid for s in protocol.query_samples(t)}),
              "gallery_ids": len({s.pid for s in protocol.gallery_samples(t)}),
              "valid_queries": valid_query_count(protocol, t), "options": protocol.options}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(_table([(k, v) for k, v in result.items() if k != "options"], ("quantity", "value")))
        click.echo("options: " + ", ".join(f"{k}={v}" for k, v in protocol.options.items()))


def _protocol(spec: DatasetSpec, root: Path, mode: str, shot: str, sampler: str | None, trial: int | None,
              direction: str | None):
    """Build (dataset, protocol, trial index) for the stats command: the data set's `stats_protocol`, or else
    its first protocol with default options."""
    if spec.stats_protocol is not None:
        return spec.stats_protocol(root, mode=mode, shot=shot, sampler=sampler, trial=trial, direction=direction)
    if not spec.protocols:
        raise UserError(f"data set {spec.name!r} registers no protocol to show statistics for")
    ds = build_dataset(spec.name, root)
    return ds, build_protocol(next(iter(spec.protocols)), ds), trial or 0


@data.command()
@click.argument("dataset", type=DATASET)
@click.option("--root", type=click.Path(path_type=Path), required=True, help="dataset root directory")
@click.option("--fast", is_flag=True, help="compare the counts only; do not decode every image")
@click.option("--json", "as_json", is_flag=True, help="print a JSON object (counts, unreadable images), not a table")
def check(dataset: DatasetSpec, root: Path, fast: bool, as_json: bool) -> None:
    """Compare a copy of DATASET with the counts of the official release and decode every image the reader lists
    (train and test, both modalities; --fast skips decoding); exit 1 naming what differs and what does not decode."""
    name = dataset.name
    if dataset.known_counts is None:
        known = [n for n in dataset_names() if get_dataset(n).known_counts is not None]
        raise UserError(f"data set {name!r} has no known counts to check against; known for: {', '.join(known)}")
    rows = dataset.known_counts(root)
    if not as_json:
        click.echo(_table([(r["quantity"], r["expected"], r["found"], r["status"]) for r in rows],
                          ("quantity", "expected", "found", "status")))
    images = None if fast or dataset.image_files is None else dataset.image_files(root)
    unreadable = None if images is None else unreadable_images(images)
    if as_json:
        unreadable_rows = None if unreadable is None else [{"path": p, "reason": r} for p, r in unreadable]
        click.echo(json.dumps({"dataset": name, "root": str(root), "counts": rows, "decoded": images is not None,
                               "images": None if images is None else len(images), "unreadable": unreadable_rows},
                              indent=2))
    else:
        click.echo(_decoding_report(dataset, fast, images, unreadable))
    failures = _failures(name, rows, images, unreadable)
    if failures:
        raise click.ClickException(f"{root} fails the check: {'; '.join(failures)}")
    if not as_json:
        click.echo(f"{root}: all verified counts match the official {name} release"
                   + ("" if images is None else f" and all {len(images)} images decode"))


def _decoding_report(dataset: DatasetSpec, fast: bool, images: list[Path] | None,
                     unreadable: list[tuple[str, str]] | None) -> str:
    """The lines after the count table: decoding skipped (and why), all images decode, or each unreadable file."""
    if fast:
        return "images not decoded (--fast): a truncated or non-image file shows up only when it is read"
    if images is None:
        return f"images not decoded: data set {dataset.name!r} lists no image files (DatasetSpec.image_files)"
    if not unreadable:
        return f"decoded all {len(images)} images"
    lines = [f"{len(unreadable)} of {len(images)} images cannot be decoded:"]
    return "\n".join(lines + [f"  {path}: {reason}" for path, reason in unreadable])


def _failures(name: str, rows: list[dict], images: list[Path] | None,
              unreadable: list[tuple[str, str]] | None, shown: int = 3) -> list[str]:
    """One phrase per failed part of the check: the counts that differ, the images that cannot be decoded."""
    failures = []
    differing = [r for r in rows if r["status"] == "DIFFERS"]
    if differing:
        detail = "; ".join(f"{r['quantity']}: found {r['found']}, expected {r['expected']}" for r in differing)
        failures.append(f"counts differ from the official {name} release ({detail})")
    if unreadable:
        paths = ", ".join(path for path, _ in unreadable[:shown])
        more = f" and {len(unreadable) - shown} more" if len(unreadable) > shown else ""
        failures.append(f"{len(unreadable)} of {len(images)} images cannot be decoded ({paths}{more})")
    return failures


def _table(rows: list[tuple], header: tuple[str, ...]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple("-" if c is None else str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])
