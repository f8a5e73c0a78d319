"""The model zoo: `weights/manifest.json` entries named `model.tag`, verified loading, publishing, the README table.

An entry records where the weights are (a file in `weights/` or a URL for large release assets),
their sha256 and size, the input contract, the embedding size, the recipe, the dataset, protocol and
metrics, the training hardware and sepgzoo version, and a licence note. Weights are always hashed
before they are loaded.
"""

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sepgzoo.errors import UserError
from sepgzoo.hub.checkpoint import FORMAT as MODEL_FORMAT
from sepgzoo.hub.checkpoint import META_NAME, WEIGHTS_NAME, load_model, read_meta, resolve_model_files
from sepgzoo.hub.layout import TRAINING_RECORD
from sepgzoo.preprocess import contract
from sepgzoo.utils.atomic import atomic_path, read_json, write_json, write_text
from sepgzoo.utils.cache import cache_dir
from sepgzoo.utils.hashing import sha256_file
from sepgzoo.utils.resources import shipped_folder

MANIFEST_FORMAT = "sepgzoo-zoo/1"
MANIFEST_NAME = "manifest.json"
HONEST_SELECTIONS = ("last epoch", "best on validation split")


@dataclass(frozen=True)
class ZooEntry:
    """One released set of weights, `name` = `model.tag`."""

    name: str
    model: str
    tag: str
    sha256: str
    size_bytes: int
    model_args: dict[str, Any]
    input: dict[str, Any]  # height, width, mean, std (RGB in [0, 1]; the model normalises and applies SEG itself)
    embedding_dim: int
    recipe: str
    recipe_resolved: dict[str, Any]
    dataset: str
    protocol: dict[str, Any]  # setting -> every evaluation option
    metrics: dict[str, dict[str, float]]  # setting -> rank1, rank5, rank10, rank20, mAP, mINP (percent)
    selection: str
    epoch: int
    hardware: str
    sepgzoo_version: str
    license: str
    file: str | None = None  # in weights/
    url: str | None = None  # a release asset, downloaded into the cache
    notes: str = ""
    versions: dict[str, str] = field(default_factory=dict)


# -- the manifest -----------------------------------------------------------------------------------------------------
def weights_dir() -> Path:
    """The shipped weights folder (top-level `weights/`, installed as `sepgzoo.weights`)."""
    return shipped_folder("sepgzoo.weights", "weights")


def load_manifest(directory: Path | None = None) -> dict[str, ZooEntry]:
    path = (directory or weights_dir()) / MANIFEST_NAME
    if not path.is_file():
        return {}
    data = read_json(path, MANIFEST_FORMAT)
    try:
        return {name: ZooEntry(name=name, **entry) for name, entry in data["models"].items()}
    except TypeError as err:
        raise UserError(f"{path}: an entry does not match the zoo schema ({err})") from err


def save_manifest(entries: dict[str, ZooEntry], directory: Path) -> None:
    models = {name: {k: v for k, v in asdict(e).items() if k != "name"} for name, e in sorted(entries.items())}
    write_json(directory / MANIFEST_NAME, {"format": MANIFEST_FORMAT, "models": models})
    write_text(directory / "README.md", render_readme(entries))


def get_entry(name: str, directory: Path | None = None) -> ZooEntry:
    entries = load_manifest(directory)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise UserError(f"no released weights named {name!r}; available: {known} (see `sepgzoo zoo list`)")
    return entries[name]


# -- the README table -------------------------------------------------------------------------------------------------
def render_readme(entries: dict[str, ZooEntry]) -> str:
    """`weights/README.md`, generated from the manifest (a test fails when the two drift)."""
    lines = [
        "# sepgzoo model zoo",
        "",
        "Generated from `manifest.json` by `sepgzoo zoo publish` (or `sepgzoo zoo readme`); do not edit by hand.",
        "Load a model with `sepgzoo.create_model(\"NAME\", pretrained=True)` or `--weights NAME` on `eval`,",
        "`export`, `embed` and `search`. Metrics are percent, mean of the protocol's trials.",
        "",
        "| name | dataset | setting | Rank-1 | mAP | mINP | selection | input | dim | size | sha256 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in sorted(entries.items()):
        for setting, m in e.metrics.items():
            lines.append(
                f"| `{name}` | {e.dataset} | {setting} | {m['rank1']:.2f} | {m['mAP']:.2f} | {m['mINP']:.2f} | "
                f"{e.selection} | {e.input['height']}x{e.input['width']} | {e.embedding_dim} | "
                f"{e.size_bytes / 2**20:.1f} MiB | `{e.sha256[:12]}` |"
            )
    lines.append("")
    for name, e in sorted(entries.items()):
        options = "; ".join(f"{s}: " + ", ".join(f"{k}={v}" for k, v in o.items()) for s, o in e.protocol.items())
        lines += [f"## `{name}`", "", f"- recipe: `{e.recipe}`; trained {e.epoch} epochs on {e.hardware} "
                  f"(sepgzoo {e.sepgzoo_version})", f"- weights: {e.file or e.url}", f"- evaluation: {options}",
                  f"- licence: {e.license}"]
        if e.notes:
            lines.append(f"- notes: {e.notes}")
        lines.append("")
    return "\n".join(lines)


# -- verified loading -------------------------------------------------------------------------------------------------
def _fetch(entry: ZooEntry, directory: Path | None) -> Path:
    """The weights file of an entry: the shipped file, or a download into the cache (users' machines)."""
    if entry.file:
        path = (directory or weights_dir()) / entry.file
        if not path.is_file():
            raise UserError(f"weights file {path} of {entry.name} is missing (the manifest lists it)")
        return path

    path = cache_dir() / "weights" / f"{entry.name}.safetensors"
    if not path.is_file():
        import torch.hub

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            try:
                torch.hub.download_url_to_file(entry.url, str(tmp), progress=True)
            except Exception as err:
                raise UserError(f"could not download {entry.name} from {entry.url}: {err}") from err
    return path


def materialise(name: str, directory: Path | None = None) -> Path:
    """A model folder (`model.safetensors` + `model.json`) for a zoo name, after checking the weights' sha256.

    The folder lives in the cache; every sepgzoo command that takes `--checkpoint` can read it. The weights are
    hashed and copied once: `model.json` is written last, so a folder holding it is complete and is reused.
    """
    entry = get_entry(name, directory)
    folder = cache_dir() / "zoo" / f"{name}-{entry.sha256[:12]}"
    meta = {"format": MODEL_FORMAT, "model": entry.model, "model_args": entry.model_args,
            "num_classes": entry.model_args.get("num_classes", 0), "embedding_dim": entry.embedding_dim,
            "input_size": [entry.input["height"], entry.input["width"]], "mean": entry.input["mean"],
            "std": entry.input["std"], "preprocess": contract((entry.input["height"], entry.input["width"])), "recipe": entry.recipe_resolved,
            "epoch": entry.epoch, "selection": entry.selection, "metrics": entry.metrics, "hardware": entry.hardware,
            "zoo": name,
            "versions": entry.versions}
    if (folder / WEIGHTS_NAME).is_file() and _read_if_json(folder / META_NAME) == meta:
        return folder
    weights = _fetch(entry, directory)
    actual = sha256_file(weights)
    if actual != entry.sha256:
        raise UserError(f"{weights}: sha256 {actual} does not match the manifest's {entry.sha256} for {name}; "
                        "the file is corrupt or was replaced")
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        shutil.copyfile(weights, tmp)
    write_json(folder / META_NAME, meta)
    return folder


def _read_if_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_pretrained(name: str, device: str = "cpu", directory: Path | None = None, **overrides: Any):
    """The model of a zoo entry with its verified weights, in eval mode; refuses weights that do not fit."""

    entry = get_entry(name, directory)
    model, _ = load_model(materialise(name, directory), device=device, **overrides)
    if model.num_features != entry.embedding_dim:
        raise UserError(f"{name}: the model gives {model.num_features}-d embeddings, the manifest says "
                        f"{entry.embedding_dim}")
    return model


# -- publishing -------------------------------------------------------------------------------------------------------
def publish(run: str | Path, tag: str, directory: Path | None = None, url: str | None = None,
            license_note: str = "Apache-2.0 (weights); check the training data set's own licence",
            notes: str = "", allow_test_selected: bool = False) -> ZooEntry:
    """Turn a finished, evaluated run into a manifest entry (and a weights file in `directory` unless `url`)."""
    directory = directory or weights_dir()
    weights_path, _ = resolve_model_files(run)
    meta = read_meta(run)
    metrics_path = weights_path.parent / TRAINING_RECORD
    if not metrics_path.is_file() or "metrics" not in meta:
        raise UserError(f"{run} has no training evaluation ({TRAINING_RECORD}, written once at the end of "
                        "`sepgzoo train` unless train.evaluate is false); the zoo publishes a run's own final "
                        "evaluation, never a later `sepgzoo eval`")
    selection = meta.get("selection", "last epoch")
    if selection not in HONEST_SELECTIONS and not allow_test_selected:
        raise UserError(f"{run} was selected by {selection!r}; publish it only with --allow-test-selected, "
                        "which labels the entry as test-selected")
    report = json.loads(metrics_path.read_text())
    recorded_sha = report.get("weights_sha256")
    if recorded_sha is not None and recorded_sha != sha256_file(weights_path):
        raise UserError(f"{metrics_path} records weights sha256 {recorded_sha[:12]}..., but {weights_path} has "
                        f"{sha256_file(weights_path)[:12]}...: the record is not of these weights")
    name = f"{meta['model']}.{tag}"
    recipe = meta["recipe"]
    entry = ZooEntry(
        name=name, model=meta["model"], tag=tag, sha256=sha256_file(weights_path),
        size_bytes=weights_path.stat().st_size, model_args=meta["model_args"],
        input={"height": meta["input_size"][0], "width": meta["input_size"][1], "mean": meta["mean"],
               "std": meta["std"]},
        embedding_dim=meta["embedding_dim"], recipe=recipe.get("name", "custom"), recipe_resolved=recipe,
        dataset=recipe["data"]["dataset"],
        protocol={setting: result["options"] for setting, result in report["results"].items()},
        metrics=meta["metrics"],
        selection=selection if selection in HONEST_SELECTIONS else f"{selection} (test-selected)",
        epoch=meta.get("epoch", 0), hardware=meta.get("hardware", "unknown"),
        sepgzoo_version=meta.get("versions", {}).get("sepgzoo", "unknown"), license=license_note,
        file=None if url else f"{name}.safetensors", url=url, notes=notes, versions=meta.get("versions", {}),
    )
    if not url:
        with atomic_path(directory / entry.file) as tmp:
            shutil.copyfile(weights_path, tmp)
    entries = load_manifest(directory)
    entries[name] = entry
    save_manifest(entries, directory)
    return entry
