"""Evaluation of a trained model: feature extraction, the recipe's protocols, metrics.json and plots."""

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from sepgzoo.atomic import write_json
from sepgzoo.build import channels_last_inside, image_loader, loader_options, open_dataset
from sepgzoo.hub.checkpoint import load_model, read_meta, update_meta
from sepgzoo.config import Recipe, recipe_from_dict
from sepgzoo.data.datasets import INFRARED, VISIBLE, Sample
from sepgzoo.data.protocols import build_protocol
from sepgzoo.evaluation.trials import average_results, run_trials
from sepgzoo.data.registry import get_dataset
from sepgzoo.data.torchdata import ImageDataset
from sepgzoo.data.transforms import build_test_transform
from sepgzoo.errors import UserError
from sepgzoo.evaluation.metrics import evaluate, feature_distance
from sepgzoo.models.layers import join_parts


@torch.no_grad()
def extract_features(model: torch.nn.Module, samples: list[Sample], modality: str, batch_size: int = 64,
                     device: torch.device | str = "cpu", flip: bool = False, workers: int = 0,
                     cached: bool = False, channels_last: bool | None = None) -> np.ndarray:
    """Embeddings [N, D] of `samples`, all through the `modality` stem, in sample order.

    Flip test-time augmentation averages each part embedding with that of the mirrored image and
    re-normalises it (the CAJ convention; the SEPG code sums without re-normalising); the result has norm 1
    like every embedding.

    `channels_last` (default: true on a CPU device, where oneDNN ran feature extraction 1.5x faster; on CUDA
    the model and images are left as they are) runs the model in channels_last for this call only
    (`build.channels_last_inside`), with the same numbers up to float rounding.
    """
    model.eval()
    device = torch.device(device)
    dataset = ImageDataset(samples, build_test_transform(model.input_size), image_loader(cached, model.input_size))
    loader = DataLoader(dataset, batch_size=batch_size, **loader_options(device, workers, persistent=False))
    features = []
    with channels_last_inside(model, device.type == "cpu" if channels_last is None else channels_last) as fmt:
        for images, _, _ in tqdm(loader, desc=f"features ({modality})", leave=False, unit="batch"):
            images = images.to(device, non_blocking=True, memory_format=fmt)
            emb = model(images, modality=modality)
            if flip:
                both = emb + model(images.flip(-1), modality=modality)
                emb = join_parts(both.view(len(both), model.parts, -1).transpose(0, 1))
            features.append(emb.float().cpu().numpy())
    return np.concatenate(features) if features else np.zeros((0, model.num_features), np.float32)


def protocol_settings(recipe: Recipe) -> list[tuple[str, dict[str, Any]]]:
    """(protocol name, options) for every setting the recipe asks for: its data set's `settings(recipe.eval)`
    (SYSU all + indoor, both directions...)."""
    return get_dataset(recipe.data.dataset).settings(recipe.eval)


class FeatureCache:
    """Extracts each (modality, image) once, however many protocols use it."""

    def __init__(self, model, batch_size: int, device, flip: bool, cached: bool = False, workers: int = 0) -> None:
        self.model, self.batch_size, self.device, self.flip = model, batch_size, device, flip
        self.cached, self.workers = cached, workers
        self.rows: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, samples: list[Sample], modality: str) -> np.ndarray:
        missing = list(dict.fromkeys(s for s in samples if (modality, s.path) not in self.rows))
        if missing:
            feats = extract_features(self.model, missing, modality, self.batch_size, self.device, self.flip,
                                     workers=self.workers, cached=self.cached)
            self.rows.update({(modality, s.path): f for s, f in zip(missing, feats)})
        return np.stack([self.rows[(modality, s.path)] for s in samples])


def evaluate_model(model: torch.nn.Module, recipe: Recipe, device: torch.device | str = "cpu",
                   plots: str | Path | None = None) -> dict[str, Any]:
    """Every protocol setting of the recipe on its test data; results keyed by protocol name.

    With `plots`, also writes the CMC curves and a t-SNE of the first setting's trial-0 embeddings there.
    """
    dataset = open_dataset(recipe.data)
    features = FeatureCache(model, recipe.eval.batch_size, device, recipe.eval.flip, recipe.data.cache,
                            recipe.data.workers)
    results, first = {}, None
    for name, options in protocol_settings(recipe):
        protocol = build_protocol(name, dataset, **options)
        query = features(protocol.query, protocol.query_modality)
        gallery = features(protocol.gallery, protocol.gallery_modality)
        result = run_trials(protocol, query, gallery)
        result["options"].update(flip_tta=recipe.eval.flip, feature="unit-norm concatenation of L2-normalised part embeddings")
        results[name] = result
        first = first or (protocol, query, gallery)
    if plots is not None:
        from sepgzoo.evaluation import plots as plotting

        protocol, query, gallery = first
        split = protocol.trial(0)
        plotting.cmc_curves(results, Path(plots) / "cmc.png")
        plotting.tsne_by_modality(query[split.query_index], gallery[split.gallery_index], protocol.query_modality,
                                  protocol.gallery_modality, Path(plots) / "tsne.png")
    return results


def evaluate_validation(model: torch.nn.Module, samples: list[Sample], recipe: Recipe, device) -> dict[str, float]:
    """Held-out training identities: infrared queries against all their visible images (metric rule "standard":
    image-level CMC, nothing removed)."""
    query = [s for s in samples if s.modality == INFRARED]
    gallery = [s for s in samples if s.modality == VISIBLE]
    qf = extract_features(model, query, INFRARED, recipe.eval.batch_size, device, cached=recipe.data.cache)
    gf = extract_features(model, gallery, VISIBLE, recipe.eval.batch_size, device, cached=recipe.data.cache)
    pids = lambda items: np.array([s.pid for s in items])  # noqa: E731
    cams = lambda items: np.array([s.camid for s in items])  # noqa: E731
    result = evaluate(feature_distance(qf, gf), pids(query), pids(gallery), cams(query), cams(gallery), "standard")
    return {"val_R1": float(result["cmc"][0]), "val_mAP": float(result["mAP"])}


def check_regdb_trial(meta: dict[str, Any], recipe: Recipe, model_path: Path) -> None:
    """A model of a split data set (RegDB: `data.trial`, the spec's `split_option`) is only ever tested on the split
    it was trained on (docs/protocols.md 7.9)."""
    trained = meta.get("recipe", {}).get("data", {})
    spec = get_dataset(recipe.data.dataset)
    key = spec.split_option
    if key is None or trained.get("dataset") != spec.name:
        return
    if trained.get(key) != getattr(recipe.data, key):
        raise UserError(
            f"{model_path} was trained on {spec.title} {key} {trained.get(key)}; evaluating it on {key} "
            f"{getattr(recipe.data, key)} would test on its own training identities. Evaluate each {key}'s model "
            f"on its {key}."
        )


def evaluate_run(path: str | Path, overrides: list[str] | tuple[str, ...] = (), device: torch.device | str = "cpu",
                 write: bool = True, plots: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run directory or model file with its recipe (plus `--set` overrides).

    Writes `metrics.json` beside the model and records the metrics in `model.json` when `write`.
    """
    meta = read_meta(path)
    if "recipe" not in meta:
        raise UserError(f"{path}: model.json has no recipe; evaluate a run folder written by `sepgzoo train`")
    recipe = recipe_from_dict(meta["recipe"], overrides)
    check_regdb_trial(meta, recipe, Path(path))
    model, _ = load_model(path, device=device)
    results = evaluate_model(model, recipe, device, plots)
    report = {"model": meta["model"], "epoch": meta.get("epoch"), "selection": meta.get("selection", "last epoch"),
              "dataset": recipe.data.dataset, "flip_tta": recipe.eval.flip, "results": results}
    if write:
        directory = Path(path) if Path(path).is_dir() else Path(path).parent
        write_json(directory / "metrics.json", report)
        update_meta(directory, metrics=summarise(results))
    return report


def evaluate_runs(paths: list[str | Path] | tuple[str | Path, ...], overrides: list[str] | tuple[str, ...] = (),
                  device: torch.device | str = "cpu") -> dict[str, Any]:
    """Evaluate several runs, each with its own recipe (a RegDB model on its own split), and average them.

    This is how RegDB is reported: one model per split, tested on that split, the 10 results averaged.
    Every run must be evaluated on the same protocol settings.
    """
    reports = [evaluate_run(path, overrides, device=device) for path in paths]
    settings = [list(r["results"]) for r in reports]
    if any(s != settings[0] for s in settings):
        raise UserError(f"the runs were evaluated on different protocols ({settings}); average runs of one data set")
    results = {}
    for name in settings[0]:
        per_run = [r["results"][name] for r in reports]
        options = dict(per_run[0]["options"])
        if "split" in options:
            options["split"] = [r["options"]["split"] for r in per_run]
        options["averaged_runs"] = len(per_run)
        results[name] = average_results(per_run, name, options)
    return {**{k: v for k, v in reports[0].items() if k != "results"}, "results": results,
            "runs": [str(p) for p in paths], "selection": ", ".join(sorted({r["selection"] for r in reports}))}


def summarise(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per protocol: Rank-1/5/10/20, mAP, mINP in percent (what tables show)."""
    keys = {"rank1": "R1", "rank5": "R5", "rank10": "R10", "rank20": "R20", "mAP": "mAP", "mINP": "mINP"}
    return {name: {out: round(100 * r[key], 2) for out, key in keys.items()} for name, r in results.items()}


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table of a report, one row per protocol setting."""
    lines = [f"{'protocol':<22}{'R1':>7}{'R5':>7}{'R10':>7}{'R20':>7}{'mAP':>7}{'mINP':>7}  queries  trials"]
    for name, r in report["results"].items():
        row = "".join(f"{100 * r[k]:>7.2f}" for k in ("R1", "R5", "R10", "R20", "mAP", "mINP"))
        lines.append(f"{name:<22}{row}  {r['num_valid_queries']:>7}  {len(r['trials']):>6}")
    opts = next(iter(report["results"].values()))["options"]
    lines.append(f"(selection: {report['selection']}; flip TTA: {'on' if report['flip_tta'] else 'off'}; "
                 f"CMC: {opts.get('cmc')}; distance: {opts.get('distance')})")
    return "\n".join(lines)
