"""`sepgzoo data ...` commands: `synth` (write synthetic data), `stats` (split statistics), `check` (known counts)."""

from __future__ import annotations

import json
from functools import wraps
from pathlib import Path

import click

from sepgzoo.data.datasets import INFRARED, VISIBLE, build_dataset, dataset_name
from sepgzoo.data.protocols import SYSUProtocol, build_protocol, valid_query_count
from sepgzoo.data.synthetic import write_synthetic
from sepgzoo.errors import UserError

DATASET_CHOICE = click.Choice(["sysu", "regdb", "llcm", "sysu_mm01"], case_sensitive=False)
#: (quantity, expected, verified) of protocols.md section 2.3 / 3.2 / 4.1
SYSU_KNOWN = [("train_ids", 395, True), ("train_visible", 22258, False), ("train_infrared", 11909, False),
              ("test_ids", 96, True), ("query", 3803, True), ("gallery_all_single", 301, True),
              ("gallery_all_multi", 3010, True), ("gallery_indoor_single", 112, True),
              ("gallery_indoor_multi", 1120, True), ("valid_queries_all", 3803, True),
              ("valid_queries_indoor", 2208, True)]
REGDB_KNOWN = [("train_ids", 206), ("test_ids", 206), ("train_visible", 2060), ("train_infrared", 2060),
               ("test_visible", 2060), ("test_infrared", 2060)]
LLCM_KNOWN = [("train_ids", 713, True)]


def user_errors(func):
    """Turn `UserError` into a one-line `click.ClickException` (no traceback)."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


@click.group()
def data() -> None:
    """Datasets: write synthetic data, print split statistics, check a copy against the known counts."""


@data.command()
@click.option("--layout", type=click.Choice(["sysu", "regdb", "llcm"]), required=True, help="on-disk layout to imitate")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="new or empty output directory")
@click.option("--ids", type=int, default=48, show_default=True, help="number of identities")
@click.option("--seed", type=int, default=0, show_default=True, help="random seed (output is deterministic)")
@click.option("--images-per-camera", type=int, default=None, help="images per (identity, camera) [layout default]")
@user_errors
def synth(layout: str, out: Path, ids: int, seed: int, images_per_camera: int | None) -> None:
    """Write a small synthetic VI-ReID data set in an official layout."""
    summary = write_synthetic(layout, out, ids=ids, seed=seed, images_per_camera=images_per_camera)
    click.echo(f"wrote {layout} layout to {out}: " + ", ".join(f"{k}={v}" for k, v in summary.items() if k != "layout"))


@data.command()
@click.argument("dataset", type=DATASET_CHOICE)
@click.option("--root", type=click.Path(path_type=Path), required=True, help="dataset root directory")
@click.option("--mode", type=click.Choice(["all", "indoor"]), default="all", show_default=True, help="SYSU search mode")
@click.option("--shot", type=click.Choice(["single", "multi"]), default="single", show_default=True, help="SYSU shots")
@click.option("--sampler", type=click.Choice(["agw", "official"]), default=None,
              help="SYSU gallery sampler [agw for single-shot, official for multi-shot]")
@click.option("--trial", type=int, default=None, help="RegDB split 1..10 [1]; SYSU/LLCM gallery trial 0..9 [0]")
@click.option("--direction", type=click.Choice(["v2i", "i2v"]), default=None,
              help="RegDB/LLCM retrieval direction [regdb v2i, llcm i2v]")
@click.option("--json", "as_json", is_flag=True, help="print a JSON object instead of a table")
@user_errors
def stats(dataset: str, root: Path, mode: str, shot: str, sampler: str | None, trial: int | None,
          direction: str | None, as_json: bool) -> None:
    """Print the training and test statistics of DATASET under the chosen protocol settings."""
    name = dataset_name(dataset)
    ds, protocol, t = _protocol(name, root, mode, shot, sampler, trial, direction)
    train = ds.train
    result = {"dataset": name, "protocol": protocol.name, "trial": ds.trial if name == "regdb" else t,
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


def _protocol(name: str, root: Path, mode: str, shot: str, sampler: str | None, trial: int | None,
              direction: str | None):
    """Build (dataset, protocol, trial index) for the stats command."""
    if name == "regdb":
        ds = build_dataset(name, root, trial=1 if trial is None else trial)
        protocol, t = build_protocol(name, ds, direction=direction or "v2i"), 0
    elif name == "llcm":
        ds = build_dataset(name, root)
        protocol, t = build_protocol(name, ds, direction=direction or "i2v"), trial or 0
    else:
        if direction not in (None, "i2v"):
            raise UserError(f"--direction {direction}: SYSU-MM01 is evaluated infrared -> visible only (i2v)")
        ds = build_dataset(name, root)
        sampler = sampler or ("agw" if shot == "single" else "official")
        protocol, t = build_protocol(name, ds, mode=mode, shot=shot, sampler=sampler), trial or 0
    return ds, protocol, t


@data.command()
@click.argument("dataset", type=DATASET_CHOICE)
@click.option("--root", type=click.Path(path_type=Path), required=True, help="dataset root directory")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list of rows instead of a table")
@user_errors
def check(dataset: str, root: Path, as_json: bool) -> None:
    """Compare a copy of DATASET with the counts of the official release; exit 1 naming what differs."""
    name = dataset_name(dataset)
    rows = {"sysu": _check_sysu, "regdb": _check_regdb, "llcm": _check_llcm}[name](root)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(_table([(r["quantity"], r["expected"], r["found"], r["status"]) for r in rows],
                          ("quantity", "expected", "found", "status")))
    failed = [r for r in rows if r["status"] == "DIFFERS"]
    if failed:
        detail = "; ".join(f"{r['quantity']}: found {r['found']}, expected {r['expected']}" for r in failed)
        raise click.ClickException(f"{root} differs from the official {name} release: {detail}")
    click.echo(f"{root}: all verified counts match the official {name} release")


def _row(quantity: str, expected: int | None, found: int, verified: bool = True) -> dict:
    if expected is None:
        status = "info"
    elif found == expected:
        status = "ok"
    else:
        status = "DIFFERS" if verified else "differs (reported figure, unverified)"
    return {"quantity": quantity, "expected": expected, "found": found, "status": status}


def _check_sysu(root: Path) -> list[dict]:
    ds = build_dataset("sysu", root)
    found = {"train_ids": len({s.pid for s in ds.train}), "test_ids": len(ds.test_ids), "query": len(ds.query),
             "train_visible": sum(s.modality == VISIBLE for s in ds.train),
             "train_infrared": sum(s.modality == INFRARED for s in ds.train)}
    for mode in ("all", "indoor"):
        protocol = SYSUProtocol(ds, mode=mode, shot="single", sampler="agw", num_trials=1)
        sizes = [len(group) for group in protocol.groups]
        found[f"gallery_{mode}_single"] = len(sizes)
        found[f"gallery_{mode}_multi"] = sum(min(n, 10) for n in sizes)
        found[f"valid_queries_{mode}"] = valid_query_count(protocol, 0)
    rows = [_row(q, expected, found[q], verified) for q, expected, verified in SYSU_KNOWN]
    has_perm = (Path(root) / "exp" / "rand_perm_cam.mat").is_file()
    return rows + [_row("exp/rand_perm_cam.mat present (official sampler)", None, int(has_perm))]


def _check_regdb(root: Path) -> list[dict]:
    rows = []
    for split in range(1, 11):
        ds = build_dataset("regdb", root, trial=split)
        train_ids = {s.pid for s in ds.train}
        found = {"train_ids": len(train_ids), "test_ids": len({s.pid for s in ds.test_visible + ds.test_infrared}),
                 "train_visible": sum(s.modality == VISIBLE for s in ds.train),
                 "train_infrared": sum(s.modality == INFRARED for s in ds.train),
                 "test_visible": len(ds.test_visible), "test_infrared": len(ds.test_infrared)}
        rows += [_row(f"split {split}: {q}", expected, found[q]) for q, expected in REGDB_KNOWN]
    return rows


def _check_llcm(root: Path) -> list[dict]:
    ds = build_dataset("llcm", root)
    found = {"train_ids": len({s.pid for s in ds.train})}
    rows = [_row(q, expected, found[q], verified) for q, expected, verified in LLCM_KNOWN]
    rows.append(_row("train_visible", None, sum(s.modality == VISIBLE for s in ds.train)))
    rows.append(_row("train_infrared", None, sum(s.modality == INFRARED for s in ds.train)))
    rows.append(_row("test_ids", None, len(ds.test_ids)))
    for modality in (VISIBLE, INFRARED):
        rows.append(_row(f"test_{modality}", None, len(ds.test_samples(modality))))
    return rows


def _table(rows: list[tuple], header: tuple[str, ...]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple("-" if c is None else str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])
