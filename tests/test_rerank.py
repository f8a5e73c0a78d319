"""k-reciprocal re-ranking (`sepgzoo.evaluation.rerank`) against a literal loop version of the released algorithm."""

from __future__ import annotations

import numpy as np
import pytest

from sepgzoo.errors import UserError
from sepgzoo.evaluation.metrics import feature_distance
from sepgzoo.evaluation.rerank import re_ranking, rerank_features

TOLERANCE = 1e-6


def loop_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value, stats=None):
    """The released algorithm step by step, dense and with Python loops (our own code, written from its description).

    Differs from the released code only in using a stable full argsort, so that exact ties have a defined order.
    `stats["expanded"]` counts the candidate half sets that were added to an expansion set.
    """
    num_query = q_g.shape[0]
    all_dist = np.block([[q_q, q_g], [q_g.T, g_g]])
    squared = np.square(all_dist).astype(np.float32)
    original = (squared / squared.max(axis=0)).T
    size = original.shape[0]
    rank = np.argsort(original, axis=1, kind="stable")
    half = int(np.around(k1 / 2))
    expanded = 0

    def reciprocal(i, k):
        forward = rank[i, :k + 1]
        return np.array([f for f in forward if i in rank[f, :k + 1]], dtype=np.int64)

    weights = np.zeros((size, size), dtype=np.float32)
    for i in range(size):
        neighbours = reciprocal(i, k1)
        expansion = list(neighbours)
        for candidate in neighbours:
            candidate_set = reciprocal(candidate, half)
            if len(np.intersect1d(candidate_set, neighbours)) > 2 / 3 * len(candidate_set):
                expansion.extend(candidate_set)
                expanded += 1
        expansion = np.unique(np.array(expansion, dtype=np.int64))
        exp_values = np.exp(-original[i, expansion])
        weights[i, expansion] = exp_values / np.sum(exp_values)
    original = original[:num_query]
    if k2 != 1:
        weights = np.stack([weights[rank[i, :k2]].mean(axis=0) for i in range(size)]).astype(np.float32)
    jaccard = np.zeros((num_query, size), dtype=np.float32)
    for i in range(num_query):
        for j in range(size):
            shared = np.minimum(weights[i], weights[j]).sum()
            jaccard[i, j] = 1 - shared / (2 - shared)
    if stats is not None:
        stats["expanded"] = expanded
    final = jaccard * (1 - lambda_value) + original * lambda_value
    return final[:, num_query:]


def euclidean_case(num_query, num_gallery, dim=16, seed=0, clusters=None, dtype=np.float32):
    """Distances of random unit features (optionally clustered around `clusters` identity centres)."""
    rng = np.random.default_rng(seed)
    if clusters:
        centres = rng.normal(size=(clusters, dim))
        qf = centres[rng.integers(0, clusters, num_query)] + 0.5 * rng.normal(size=(num_query, dim))
        gf = centres[rng.integers(0, clusters, num_gallery)] + 0.5 * rng.normal(size=(num_gallery, dim))
    else:
        qf, gf = rng.normal(size=(num_query, dim)), rng.normal(size=(num_gallery, dim))
    return tuple(feature_distance(a, b).astype(dtype) for a, b in ((qf, gf), (qf, qf), (gf, gf)))


def random_matrix_case(num_query, num_gallery, seed=0, query_query_low=0.1):
    """Uniform random matrices: not symmetric, non-zero diagonals; q_q from [query_query_low, 2] (a low value makes
    queries neighbours of queries)."""
    rng = np.random.default_rng(seed)
    lows = (0.1, query_query_low, 0.1)
    return tuple(rng.uniform(low, 2.0, size=shape).astype(np.float32)
                 for low, shape in zip(lows, ((num_query, num_gallery), (num_query, num_query),
                                              (num_gallery, num_gallery))))


CASES = [
    # (name, distances, k1, k2, lambda, block_rows)
    ("Q < k1, many blocks", euclidean_case(12, 70, seed=1), 20, 6, 0.3, 5),
    ("clustered, defaults", euclidean_case(40, 110, seed=2, clusters=8), 20, 6, 0.3, 256),
    ("no query expansion, lambda 0", euclidean_case(30, 90, seed=3, clusters=12), 10, 1, 0.0, 16),
    ("k1 odd, lambda 1", euclidean_case(25, 60, seed=4, clusters=6), 5, 3, 1.0, 9),
    ("k2 > k1 + 1", euclidean_case(20, 50, seed=5, clusters=5), 3, 8, 0.5, 11),
    ("k1 = 1", euclidean_case(15, 40, seed=6), 1, 2, 0.3, 64),
    ("fewer images than k1 + 1", euclidean_case(5, 10, seed=7), 20, 6, 0.3, 3),
    ("non-symmetric matrices", random_matrix_case(20, 70, seed=8), 8, 4, 0.3, 6),
    ("non-symmetric, close queries", random_matrix_case(30, 25, seed=16, query_query_low=0.0), 6, 3, 0.3, 7),
    ("float64 inputs", euclidean_case(25, 70, seed=9, clusters=7, dtype=np.float64), 12, 5, 0.2, 10),
]


@pytest.mark.parametrize("name, distances, k1, k2, lambda_value, block_rows", CASES, ids=[c[0] for c in CASES])
def test_matches_the_loop_reference(name, distances, k1, k2, lambda_value, block_rows):
    expected = loop_re_ranking(*distances, k1, k2, lambda_value)
    got = re_ranking(*distances, k1=k1, k2=k2, lambda_value=lambda_value, block_rows=block_rows)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got.astype(np.float64) - expected).max() <= TOLERANCE


def test_clustered_case_exercises_the_expansion():
    """The comparison above would miss a wrong expansion rule if no candidate set were ever added."""
    stats = {}
    distances = CASES[1][1]
    loop_re_ranking(*distances, 20, 6, 0.3, stats=stats)
    assert stats["expanded"] > 0


def test_exact_ties_follow_the_stable_order():
    """Distances with many exact ties: the stable order is reproduced exactly, not just approximately."""
    rng = np.random.default_rng(10)
    q_g, q_q, g_g = (rng.integers(1, 5, size=s).astype(np.float32) for s in ((15, 45), (15, 15), (45, 45)))
    expected = loop_re_ranking(q_g, q_q, g_g, 6, 3, 0.3)
    got = re_ranking(q_g, q_q, g_g, k1=6, k2=3, lambda_value=0.3, block_rows=4)
    assert np.abs(got - expected).max() <= TOLERANCE


def test_mixed_dtypes_are_squared_in_the_common_dtype():
    q_g, q_q, g_g = euclidean_case(10, 30, seed=11, clusters=4, dtype=np.float64)
    q_q = q_q.astype(np.float32)
    expected = loop_re_ranking(q_g, q_q, g_g, 6, 3, 0.3)
    assert np.abs(re_ranking(q_g, q_q, g_g, k1=6, k2=3) - expected).max() <= TOLERANCE


def test_lambda_one_gives_the_scaled_squared_distances():
    q_g, q_q, g_g = random_matrix_case(20, 50, seed=12)
    # Image i's scale is the largest squared distance in column i of [[q_q, q_g], [q_g^T, g_g]].
    scale = np.maximum(np.square(q_q).max(axis=0), np.square(q_g).max(axis=1))
    expected = np.square(q_g) / scale[:, None]
    got = re_ranking(q_g, q_q, g_g, lambda_value=1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)


def test_shape_dtype_and_identical_image_first():
    rng = np.random.default_rng(13)
    query, gallery = rng.normal(size=(30, 64)), rng.normal(size=(120, 64))
    query[7] = gallery[41]
    got = rerank_features(query, gallery)
    assert got.shape == (30, 120) and got.dtype == np.float32
    assert got[7].argmin() == 41


def test_rerank_features_is_re_ranking_of_feature_distances():
    rng = np.random.default_rng(14)
    query, gallery = rng.normal(size=(12, 8)), rng.normal(size=(40, 8))
    distances = (feature_distance(query, gallery), feature_distance(query, query), feature_distance(gallery, gallery))
    np.testing.assert_array_equal(rerank_features(query, gallery, k1=7, k2=2, lambda_value=0.4),
                                  re_ranking(*distances, k1=7, k2=2, lambda_value=0.4))


def test_re_ranking_changes_the_ranking_towards_the_neighbourhood():
    """Re-ranking is not the identity: with lambda < 1 the clustered case's order differs from the original."""
    q_g, q_q, g_g = CASES[1][1]
    assert (re_ranking(q_g, q_q, g_g).argsort(axis=1) != q_g.argsort(axis=1)).any()


GOOD = euclidean_case(4, 6, seed=15)


@pytest.mark.parametrize("arguments, named", [
    ((GOOD[0][0], GOOD[1], GOOD[2]), "q_g_dist"),
    ((np.zeros((4, 0)), GOOD[1], np.zeros((0, 0))), "q_g_dist"),
    ((GOOD[0], GOOD[1][:3], GOOD[2]), "q_q_dist"),
    ((GOOD[0], GOOD[1], GOOD[2][:, :5]), "g_g_dist"),
    ((GOOD[0].T, GOOD[1], GOOD[2]), "q_q_dist"),
    ((GOOD[0], GOOD[1], np.where(np.eye(6) > 0, np.nan, GOOD[2])), "g_g_dist"),
    ((GOOD[0].astype(str), GOOD[1], GOOD[2]), "q_g_dist"),
])
def test_bad_matrices_are_refused_by_name(arguments, named):
    with pytest.raises(UserError, match=named):
        re_ranking(*arguments)


@pytest.mark.parametrize("keywords, named", [
    ({"k1": 0}, "k1"), ({"k1": 2.5}, "k1"), ({"k2": 0}, "k2"), ({"k2": True}, "k2"),
    ({"lambda_value": -0.1}, "lambda_value"), ({"lambda_value": 1.5}, "lambda_value"),
    ({"lambda_value": "0.3"}, "lambda_value"), ({"block_rows": 0}, "block_rows"),
])
def test_bad_parameters_are_refused_by_name(keywords, named):
    with pytest.raises(UserError, match=named):
        re_ranking(*GOOD, **keywords)


def test_bad_features_are_refused():
    with pytest.raises(UserError, match="query"):
        rerank_features(np.zeros(5), np.zeros((3, 5)))
    with pytest.raises(UserError, match="gallery"):
        rerank_features(np.zeros((2, 5)), np.zeros((3, 4)))
    with pytest.raises(UserError, match="lambda_value"):
        rerank_features(np.ones((2, 5)), np.ones((3, 5)), lambda_value=2)
