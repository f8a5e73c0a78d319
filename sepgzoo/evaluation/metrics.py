"""Retrieval metrics for VI-ReID: CMC (standard or identity-deduplicated), mAP and mINP, vectorised numpy.

Definitions follow `docs/protocols.md` section 5. Features are compared by Euclidean distance after L2
normalisation, which ranks exactly like cosine similarity (||a - b||^2 = 2 - 2 cos(a, b)).
"""

from __future__ import annotations

import numpy as np

from sepgzoo.data.rules import MetricRule, metric_rule
from sepgzoo.errors import UserError


def l2_normalize(features: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Scale every row to unit L2 norm.

    Args:
        features: [N, D] feature matrix.
        eps: floor on the norm, so an all-zero row stays zero instead of becoming NaN.

    Returns:
        float32 [N, D] array of unit rows.
    """
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, eps)


def feature_distance(query_features: np.ndarray, gallery_features: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Euclidean distance between L2-normalised features (same ranking as cosine similarity).

    On unit vectors ||q - g|| = sqrt(2 - 2 cos(q, g)), so ranking by this distance equals ranking by
    descending cosine similarity, as the AGW-family evaluators do (docs/protocols.md 1 and 7.6).

    Args:
        query_features: [Q, D] query features.
        gallery_features: [G, D] gallery features.
        normalize: L2-normalise both sides first (keep True unless they already are).

    Returns:
        float32 [Q, G] distance matrix (smaller is closer).

    Example:
        >>> d = feature_distance(np.eye(2), np.array([[1.0, 0.0]]))
        >>> [[round(float(x), 3) for x in row] for row in d]
        [[0.0], [1.414]]
    """
    q = l2_normalize(query_features) if normalize else np.asarray(query_features, dtype=np.float32)
    g = l2_normalize(gallery_features) if normalize else np.asarray(gallery_features, dtype=np.float32)
    sq = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * (q @ g.T)
    return np.sqrt(np.maximum(sq, 0.0))


def evaluate(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
             g_camids: np.ndarray, rule: str | MetricRule = "dedup_drop_cam2_for_cam3", max_rank: int = 20) -> dict:
    """CMC, mAP and mINP of a query x gallery distance matrix under a metric rule (removal + CMC variant).

    Each row is ordered once with a **stable** sort (`np.argsort(kind="stable")`), so exact ties keep
    gallery order, like MATLAB's `sort` in the official SYSU evaluator (AGW's default quicksort does
    not guarantee that). Removed gallery items are skipped, not re-ranked. The CMC is
    identity-deduplicated for cmc "dedup" (rank-k = the true identity is among the first k distinct
    identities) and the image-level CMC for "standard". mAP and mINP always use the image-level list
    after removal. Queries with no true match left are excluded from every average.

    Args:
        distmat: [Q, G] distances, smaller is closer.
        q_pids: [Q] query identities.
        g_pids: [G] gallery identities.
        q_camids: [Q] query cameras.
        g_camids: [G] gallery cameras.
        rule: metric rule: a name of `METRIC_RULES` ("standard", "dedup_drop_same_id_same_cam",
            "dedup_drop_cam2_for_cam3") or a `MetricRule` (both in `sepgzoo.data.rules`).
        max_rank: length of the returned CMC curve.

    Returns:
        dict with "cmc" (float64 array [max_rank] of fractions), "mAP" and "mINP" (fractions),
        "num_valid_queries", "cmc_type" ("dedup" or "standard") and "rule".

    Raises:
        UserError: shapes disagree, the metric rule is unknown or no query has a true match.

    Example:
        >>> r = evaluate(np.array([[0.1, 0.9]]), np.array([1]), np.array([1, 2]), np.array([3]),
        ...              np.array([1, 4]), rule="dedup_drop_cam2_for_cam3", max_rank=2)
        >>> r["cmc"].tolist(), r["mAP"]
        ([1.0, 1.0], 1.0)
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    cmc_type = metric_rule(rule).cmc
    order = stable_argsort(distmat)
    ids, g_codes = np.unique(g_pids, return_inverse=True)
    codes_sorted = g_codes.astype(np.int32)[order]  # identity code of every ranked gallery item
    match = codes_sorted == _query_codes(ids, q_pids)[:, None]
    removed = _removed_sorted(rule, order, match, q_camids, g_camids)
    if removed is not None:
        match &= ~removed
    rows, cols = np.nonzero(match)  # true matches, row-major: per query in rank order
    num_matches = np.bincount(rows, minlength=len(q_pids))
    valid = num_matches > 0
    if not valid.any():
        raise UserError("no query has a true match in the gallery after the removal rule; expected at least one")
    position = cols + 1  # 1-based position in the list that remains after removal
    if removed is not None:
        position -= _count_before(removed, rows, cols)
    starts = np.cumsum(num_matches) - num_matches
    hit_number = np.arange(len(rows)) - starts[rows] + 1
    ap = np.bincount(rows, weights=hit_number / position, minlength=len(q_pids))[valid] / num_matches[valid]
    inp = num_matches[valid] / position[(starts + num_matches - 1)[valid]]
    if cmc_type == "dedup":
        first_col = np.zeros(len(q_pids), dtype=np.int64)
        first_col[valid] = cols[starts[valid]]
        ranks = _dedup_ranks(codes_sorted, removed, first_col, len(ids))[valid]
    else:
        ranks = position[starts[valid]]
    cmc = (ranks[:, None] <= np.arange(1, max_rank + 1)[None, :]).mean(0)
    return {"cmc": cmc, "mAP": float(ap.mean()), "mINP": float(inp.mean()),
            "num_valid_queries": int(valid.sum()), "cmc_type": cmc_type, "rule": rule if isinstance(rule, str) else str(rule)}


def stable_argsort(distmat: np.ndarray) -> np.ndarray:
    """Row-wise stable argsort (ties keep column order); fast path for float32/float16 distances.

    A stable sort is only needed to break exact ties. For 32-bit (or narrower) floats each value is
    mapped to an order-preserving unsigned integer and packed with its column index into one uint64
    key; keys are unique, so numpy's fast (SIMD) value sort gives exactly the stable order, about
    twice as fast as `np.argsort(kind="stable")`. Other dtypes use `np.argsort(kind="stable")`.

    Returns:
        [Q, G] integer array of column indices, each row in ascending distance order.
    """
    if distmat.dtype not in (np.float32, np.float16) or distmat.shape[1] >= 2 ** 32:
        return np.argsort(distmat, axis=1, kind="stable")
    values = distmat.astype(np.float32) + np.float32(0.0)  # copy; -0.0 becomes +0.0 (they tie in a float sort)
    bits = values.view(np.uint32)
    keys = (bits ^ np.where(bits >> np.uint32(31), np.uint32(0xFFFFFFFF), np.uint32(0x80000000))).astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= np.arange(distmat.shape[1], dtype=np.uint64)
    keys.sort(axis=1)
    return keys.astype(np.uint32)  # the low 32 bits: the column index


def _query_codes(ids: np.ndarray, q_pids: np.ndarray) -> np.ndarray:
    """Position of each query identity in the sorted gallery identities; -1 when absent from the gallery."""
    where = np.minimum(np.searchsorted(ids, q_pids), len(ids) - 1)
    return np.where(ids[where] == q_pids, where, -1).astype(np.int32)


def _removed_sorted(rule: str | MetricRule, order: np.ndarray, match: np.ndarray, q_camids: np.ndarray,
                    g_camids: np.ndarray) -> np.ndarray | None:
    """Removal mask in rank order (None when nothing is removed); the rules of `keep_mask`."""
    removal = metric_rule(rule).removal
    if removal == "cam2_for_cam3":
        cam3 = q_camids == 3
        if not cam3.any() or not (g_camids == 2).any():
            return None
        removed = np.zeros(order.shape, dtype=bool)
        removed[cam3] = (g_camids == 2)[order[cam3]]
        return removed
    if removal == "same_id_same_cam":
        removed = match & (g_camids[order] == q_camids[:, None])
        return removed if removed.any() else None
    return None


def _count_before(removed: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Number of removed items ranked before each (row, col) match; cumulative sums only on rows with removals."""
    affected = np.flatnonzero(removed.any(1))
    cum = np.cumsum(removed[affected], axis=1, dtype=np.int32)
    slot = np.full(removed.shape[0], -1)
    slot[affected] = np.arange(len(affected))
    counts = np.zeros(len(rows), dtype=np.int64)
    hit = slot[rows] >= 0
    counts[hit] = cum[slot[rows[hit]], cols[hit]]
    return counts


def _dedup_ranks(codes_sorted: np.ndarray, removed: np.ndarray | None, first_col: np.ndarray,
                 num_ids: int) -> np.ndarray:
    """Rank of the true identity among the distinct identities of each ranked list (order of first appearance).

    It is 1 + the number of distinct identities among the kept items ranked before the first true match.
    """
    before = np.arange(codes_sorted.shape[1])[None, :] < first_col[:, None]
    if removed is not None:
        before &= ~removed
    rows, cols = np.nonzero(before)
    seen = np.zeros((codes_sorted.shape[0], num_ids), dtype=bool)
    seen[rows, codes_sorted[rows, cols]] = True
    return seen.sum(1) + 1


def _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids) -> tuple[np.ndarray, ...]:
    distmat = np.asarray(distmat)
    if distmat.dtype.kind not in "fiu":
        raise UserError(f"distmat must hold real numbers, got dtype {distmat.dtype}")
    if distmat.dtype.kind == "f" and np.isnan(distmat).any():
        raise UserError("distmat contains NaN; expected finite distances (check the features for NaN)")
    arrays = [np.asarray(a).reshape(-1) for a in (q_pids, g_pids, q_camids, g_camids)]
    if distmat.ndim != 2:
        raise UserError(f"distmat must be 2-D [num_query, num_gallery], got shape {distmat.shape}")
    expected = (distmat.shape[0], distmat.shape[1], distmat.shape[0], distmat.shape[1])
    names = ("q_pids", "g_pids", "q_camids", "g_camids")
    for name, array, size in zip(names, arrays, expected):
        if len(array) != size:
            raise UserError(f"{name} has {len(array)} entries, expected {size} to match distmat {distmat.shape}")
    return (distmat, *arrays)


