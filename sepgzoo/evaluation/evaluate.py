"""Evaluation of a trained model: feature extraction, the recipe's protocols, the report and plots (where reports
are written: `sepgzoo.evaluation.records`)."""

from pathlib import Path
from typing import Any

import numpy as np
import torch

from sepgzoo.config import Recipe, recipe_from_dict
from sepgzoo.data.datasets import INFRARED, VISIBLE, Sample
from sepgzoo.data.registry import get_dataset
from sepgzoo.errors import UserError
from sepgzoo.evaluation.features import extract_features
from sepgzoo.evaluation.metrics import evaluate, feature_distance
from sepgzoo.evaluation.scoring import FeatureCache, evaluate_features, evaluation_report
from sepgzoo.hub.checkpoint import load_model, read_meta, resolve_model_files


def evaluate_model(model: torch.nn.Module, recipe: Recipe, device: torch.device | str = "cpu",
                   plots: str | Path | None = None, dataset=None) -> dict[str, Any]:
    """Every protocol setting of the recipe on its test data, features from the PyTorch `model`; results keyed by
    protocol name. See `evaluate_features`."""
    def embed(samples: list[Sample], modality: str) -> np.ndarray:
        return extract_features(model, samples, modality, recipe.eval.batch_size, device, recipe.eval.flip,
                                workers=recipe.data.workers, cached=recipe.data.cache)

    return evaluate_features(FeatureCache(embed), recipe, plots, dataset)


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
                 plots: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run directory or model file with its recipe (plus `--set` overrides); writes nothing.

    `sepgzoo.evaluation.records.write_evaluation_record` keeps the result beside the run, in `evals/`.
    """
    meta = read_meta(path)
    if "recipe" not in meta:
        raise UserError(f"{path}: model.json has no recipe; evaluate a run folder written by `sepgzoo train`")
    recipe = recipe_from_dict(meta["recipe"], overrides)
    check_regdb_trial(meta, recipe, Path(path))
    model, _ = load_model(path, device=device)
    results = evaluate_model(model, recipe, device, plots)
    weights, _ = resolve_model_files(path)
    return evaluation_report(results, recipe, meta["model"], meta.get("epoch"), meta.get("selection", "last epoch"),
                             weights, checkpoint=str(path), overrides=list(overrides))


