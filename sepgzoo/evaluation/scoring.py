"""A recipe's evaluation protocols scored from any feature source: a PyTorch model (`evaluate.py`) or a deployed
artifact (`deployed.py`). Torch-free, so an export is evaluated where PyTorch is not installed."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.config import Recipe
from sepgzoo.data.datasets import Sample
from sepgzoo.data.protocols import Protocol, build_protocol
from sepgzoo.data.registry import get_dataset
from sepgzoo.data.sources import open_dataset
from sepgzoo.errors import UserError
from sepgzoo.evaluation.trials import average_reranked, average_results, run_trials
from sepgzoo.utils.hashing import sha256_file
from sepgzoo.version import __version__


def protocol_settings(recipe: Recipe) -> list[tuple[str, dict[str, Any]]]:
    """(protocol name, options) for every setting the recipe asks for: its data set's `settings(recipe.eval)`
    (SYSU all + indoor, both directions...)."""
    return get_dataset(recipe.data.dataset).settings(recipe.eval)


def rerank_parameters(recipe: Recipe) -> dict[str, Any] | None:
    """The `re_ranking` arguments of `eval.rerank_*`, or None when `eval.rerank` is off."""
    ev = recipe.eval
    return {"k1": ev.rerank_k1, "k2": ev.rerank_k2, "lambda_value": ev.rerank_lambda} if ev.rerank else None


def build_protocols(recipe: Recipe, dataset) -> list[Protocol]:
    """Every evaluation protocol of the recipe on its parsed data set, each trial drawn once.

    The one place a recipe's `eval` section becomes protocols: a run checks it at start-up
    (`sepgzoo.training.preflight`) and evaluates with it at the end, so no setting can pass the start and fail
    after the last epoch (a sampler that cannot draw a trial fails here).
    """
    protocols = []
    for name, options in protocol_settings(recipe):
        protocol = build_protocol(name, dataset, **options)
        for t in range(protocol.num_trials):
            protocol.trial(t)
        protocols.append(protocol)
    return protocols


class FeatureCache:
    """`(samples, modality) -> [N, D]` features, each (modality, image) embedded once by `embed`, however many
    protocols use it. `embed(samples, modality)` is a PyTorch model's extraction (`evaluate.py`) or a deployed
    artifact's runtime (`deployed.py`)."""

    def __init__(self, embed: Callable[[list[Sample], str], np.ndarray]) -> None:
        self.embed = embed
        self.rows: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, samples: list[Sample], modality: str) -> np.ndarray:
        missing = list(dict.fromkeys(s for s in samples if (modality, s.path) not in self.rows))
        if missing:
            self.rows.update({(modality, s.path): f for s, f in zip(missing, self.embed(missing, modality))})
        return np.stack([self.rows[(modality, s.path)] for s in samples])


def evaluate_features(features: Callable[[list[Sample], str], np.ndarray], recipe: Recipe,
                      plots: str | Path | None = None, dataset=None) -> dict[str, Any]:
    """Every protocol setting of the recipe on its test data; results keyed by protocol name.

    Args:
        features: `(samples, modality) -> [N, D]` unit-norm embeddings, a `FeatureCache` over a PyTorch model
            (`evaluate.py`) or a deployed artifact (`deployed.py`).
        recipe: whose data set and `eval` section define the protocols.
        plots: a folder for the CMC curves and a t-SNE of the first setting's trial-0 embeddings.
        dataset: the parsed data set when the caller already holds it (opened from the recipe otherwise).
    """
    dataset = dataset if dataset is not None else open_dataset(recipe.data)
    results, first = {}, None
    for protocol in build_protocols(recipe, dataset):
        query = features(protocol.query, protocol.query_modality)
        gallery = features(protocol.gallery, protocol.gallery_modality)
        result = run_trials(protocol, query, gallery, rerank=rerank_parameters(recipe))
        result["options"].update(flip_tta=recipe.eval.flip,
                                 feature="unit-norm concatenation of L2-normalised part embeddings")
        results[protocol.name] = result
        first = first or (protocol, query, gallery)
    if plots is not None:
        from sepgzoo.figures import retrieval as plotting

        protocol, query, gallery = first
        split = protocol.trial(0)
        plotting.cmc_curves(results, Path(plots) / "cmc.png")
        plotting.tsne_by_modality(query[split.query_index], gallery[split.gallery_index], protocol.query_modality,
                                  protocol.gallery_modality, Path(plots) / "tsne.png")
    return results


def evaluation_report(results: dict[str, Any], recipe: Recipe, model_name: str, epoch: int | None,
                      selection: str, weights: Path, **extra: Any) -> dict[str, Any]:
    """What a record holds: the model and checkpoint evaluated (weights sha256), the recipe's data set and flip
    setting, every protocol's results, and `extra` (the overrides of a later `sepgzoo eval`)."""
    return {"model": model_name, "epoch": epoch, "selection": selection, "dataset": recipe.data.dataset,
            "flip_tta": recipe.eval.flip, "weights_sha256": sha256_file(weights), **extra, "results": results,
            "versions": {"sepgzoo": __version__}}


def average_reports(reports: list[dict[str, Any]], paths: list[str | Path] | tuple[str | Path, ...]) -> dict[str, Any]:
    """The average of several runs' reports, each evaluated with its own recipe (a RegDB model on its own split).

    This is how RegDB is reported: one model per split, tested on that split, the 10 results averaged.
    Every run must be evaluated on the same protocol settings.
    """
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
        if all("reranked" in r for r in per_run):  # each run re-ranked its own split: averaged the same way
            results[name]["reranked"] = average_reranked(per_run, name, options)
    return {**{k: v for k, v in reports[0].items() if k != "results"}, "results": results,
            "runs": [str(p) for p in paths], "selection": ", ".join(sorted({r["selection"] for r in reports}))}
