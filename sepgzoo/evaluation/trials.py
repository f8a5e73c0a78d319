"""Scoring a protocol: every trial's CMC, mAP and mINP from the features of its query and gallery pools, and the
community's averages over trials (or over RegDB's splits)."""

from __future__ import annotations

import numpy as np

from sepgzoo.data.protocols import Protocol
from sepgzoo.errors import UserError
from sepgzoo.evaluation.metrics import evaluate, feature_distance
from sepgzoo.evaluation.rerank import rerank_features

REPORTED_RANKS = (1, 5, 10, 20)


def run_trials(protocol: Protocol, query_features: np.ndarray, gallery_features: np.ndarray,
               trials: list[int] | None = None, max_rank: int = 20, rerank: dict | None = None) -> dict:
    """Evaluate every trial of a protocol and average CMC, mAP and mINP over trials.

    Args:
        protocol: the protocol.
        query_features: [len(protocol.query), D] features of the whole query pool, in pool order.
        gallery_features: [len(protocol.gallery), D] features of the whole gallery pool.
        trials: trial numbers to run (default: all); e.g. [0] for quick in-training checks.
        max_rank: CMC length (at least 20 so R20 can be reported).
        rerank: k-reciprocal re-ranking parameters (`k1`, `k2`, `lambda_value`): each trial is also scored on
            re-ranked distances, reported under "reranked", beside the plain numbers (never instead of them).

    Returns:
        dict with "protocol", "R1", "R5", "R10", "R20", "mAP", "mINP" (fractions, trial means), "cmc" (mean
        curve as a list), "num_valid_queries" (rounded trial mean), "num_query"/"num_gallery" (trial 0),
        "trials", "per_trial" and "options" (the protocol's options plus `evaluated_trials` and `rerank`); with
        `rerank`, also "reranked": the same metrics on re-ranked distances.

    Example:
        >>> result = run_trials(proto, qf, gf)  # doctest: +SKIP
        >>> round(100 * result["R1"], 2), result["options"]["sampler"]  # doctest: +SKIP
    """
    query_features, gallery_features = np.asarray(query_features), np.asarray(gallery_features)
    pools = (("query", query_features, protocol.query), ("gallery", gallery_features, protocol.gallery))
    for what, feats, pool in pools:
        if feats.ndim != 2 or len(feats) != len(pool):
            raise UserError(f"{protocol.name}: {what} features have shape {feats.shape}; expected [{len(pool)}, D]")
    trials = list(range(protocol.num_trials)) if trials is None else [int(t) for t in trials]
    per_trial = [_one_trial(protocol, t, query_features, gallery_features, max(max_rank, 20), rerank) for t in trials]
    options = {**protocol.options, "evaluated_trials": trials, "rerank": _rerank_label(rerank)}
    result = average_results(per_trial, protocol.name, options)
    if rerank:
        result["reranked"] = average_reranked(per_trial, protocol.name, options)
    return result


def average_reranked(per_trial: list[dict], name: str, options: dict) -> dict:
    """The mean of the trials' (or runs') re-ranked results, without their per-trial lists and options (the plain
    result beside it holds those)."""
    reranked = average_results([r["reranked"] for r in per_trial], name, options)
    return {k: v for k, v in reranked.items() if k not in ("per_trial", "options")}


def _rerank_label(rerank: dict | None) -> dict | bool:
    """What the options record: False, or the method and its parameters."""
    return {"method": "k-reciprocal (Zhong et al. 2017)", **rerank} if rerank else False


def _one_trial(protocol: Protocol, t: int, query_features: np.ndarray, gallery_features: np.ndarray,
               max_rank: int, rerank: dict | None = None) -> dict:
    split = protocol.trial(t)
    query = [protocol.query[i] for i in split.query_index]
    gallery = [protocol.gallery[i] for i in split.gallery_index]
    q, g = query_features[split.query_index], gallery_features[split.gallery_index]
    labels = (np.array([s.pid for s in query]), np.array([s.pid for s in gallery]),
              np.array([s.camid for s in query]), np.array([s.camid for s in gallery]))
    scored = _scores(evaluate(feature_distance(q, g), *labels, rule=protocol.metric, max_rank=max_rank))
    if rerank:
        reranked = evaluate(rerank_features(q, g, **rerank), *labels, rule=protocol.metric, max_rank=max_rank)
        scored["reranked"] = {"trial": t, **_scores(reranked), "num_query": len(query), "num_gallery": len(gallery)}
    return {"trial": t, **scored, "num_query": len(query), "num_gallery": len(gallery)}


def _scores(result: dict) -> dict:
    return {"cmc": result["cmc"].tolist(), "mAP": result["mAP"], "mINP": result["mINP"],
            "num_valid_queries": result["num_valid_queries"],
            **{f"R{k}": float(result["cmc"][k - 1]) for k in REPORTED_RANKS}}


def average_results(per_trial: list[dict], name: str, options: dict) -> dict:
    """Arithmetic mean of per-trial (or, for RegDB, per-split) results: the community's reported figure."""
    if not per_trial:
        raise UserError(f"{name}: no trials to average")
    cmc = np.mean([r["cmc"] for r in per_trial], axis=0)
    mean = {key: float(np.mean([r[key] for r in per_trial])) for key in ("mAP", "mINP")}
    return {"protocol": name, **{f"R{k}": float(cmc[k - 1]) for k in REPORTED_RANKS}, **mean,
            "cmc": cmc.tolist(), "num_valid_queries": int(round(np.mean([r["num_valid_queries"] for r in per_trial]))),
            "num_query": per_trial[0]["num_query"], "num_gallery": per_trial[0]["num_gallery"],
            "trials": [r.get("trial") for r in per_trial], "per_trial": per_trial, "options": options}
