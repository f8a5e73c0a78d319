"""Vectorised metrics against a plain per-query loop written from the definitions (docs/protocols.md section 5)."""

from __future__ import annotations

import numpy as np
import pytest

from sepgzoo.data.rules import METRIC_RULES, MetricRule
from sepgzoo.errors import UserError
from sepgzoo.evaluation.metrics import evaluate, feature_distance, l2_normalize, stable_argsort

#: what each named rule does, written out independently: (removal, CMC variant)
RULES = {"standard": ("none", "standard"), "dedup_drop_same_id_same_cam": ("same_id_same_cam", "dedup"),
         "dedup_drop_cam2_for_cam3": ("cam2_for_cam3", "dedup")}


def removed(removal: str, q_pid: int, q_cam: int, g_pid: int, g_cam: int) -> bool:
    if removal == "cam2_for_cam3":
        return q_cam == 3 and g_cam == 2
    if removal == "same_id_same_cam":
        return q_pid == g_pid and q_cam == g_cam
    return False


def brute_force(distmat, q_pids, g_pids, q_cams, g_cams, rule, max_rank):
    """One query at a time, list operations only; stable order = sort by (distance, gallery index)."""
    removal, cmc = RULES[rule] if isinstance(rule, str) else (rule.removal, rule.cmc)
    cmc_rows, aps, inps = [], [], []
    for q in range(len(q_pids)):
        ranked = sorted(range(len(g_pids)), key=lambda g: (distmat[q][g], g))
        ranked = [g for g in ranked if not removed(removal, q_pids[q], q_cams[q], g_pids[g], g_cams[g])]
        hits = [i + 1 for i, g in enumerate(ranked) if g_pids[g] == q_pids[q]]
        if not hits:
            continue
        if cmc == "standard":
            first = hits[0]
        else:
            distinct = []
            for g in ranked:
                if g_pids[g] not in distinct:
                    distinct.append(g_pids[g])
            first = distinct.index(q_pids[q]) + 1
        cmc_rows.append([1.0 if first <= k else 0.0 for k in range(1, max_rank + 1)])
        aps.append(sum((j + 1) / p for j, p in enumerate(hits)) / len(hits))
        inps.append(len(hits) / hits[-1])
    return np.mean(cmc_rows, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(aps)


def random_case(rng, num_q=40, num_g=60, num_ids=8, cams=(1, 2, 3, 4, 5, 6), quantize=None):
    distmat = rng.random((num_q, num_g))
    if quantize:  # many exact ties
        distmat = np.round(distmat * quantize) / quantize
    return (distmat, rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g),
            rng.choice([3, 6], num_q) if 3 in cams else rng.choice(cams, num_q), rng.choice(cams, num_g))


# the named rules and a combination no built-in data set uses (Market-1501 style)
@pytest.mark.parametrize("rule", [*RULES, MetricRule("same_id_same_cam", "standard")], ids=str)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("quantize", [None, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_brute_force(rule, seed, quantize, dtype):
    rng = np.random.default_rng(seed)
    distmat, *ids = random_case(rng, quantize=quantize)
    case = (distmat.astype(dtype), *ids)
    result = evaluate(*case, rule=rule, max_rank=20)
    cmc, mean_ap, minp, valid = brute_force(*case, rule=rule, max_rank=20)
    np.testing.assert_allclose(result["cmc"], cmc, atol=1e-6)
    assert result["mAP"] == pytest.approx(mean_ap, abs=1e-6)
    assert result["mINP"] == pytest.approx(minp, abs=1e-6)
    assert result["num_valid_queries"] == valid


def test_dedup_cmc_at_least_standard_and_equal_at_rank1():
    rng = np.random.default_rng(7)
    distmat, q_pids, g_pids, _, _ = random_case(rng, num_q=50, num_g=80)
    cams_q, cams_g = np.ones(50, int), np.full(80, 2)  # no camera collision: removal rules change nothing
    dedup = evaluate(distmat, q_pids, g_pids, cams_q, cams_g, rule="dedup_drop_same_id_same_cam")
    standard = evaluate(distmat, q_pids, g_pids, cams_q, cams_g, rule="standard")
    assert np.all(dedup["cmc"] >= standard["cmc"] - 1e-12)
    assert dedup["cmc"][0] == standard["cmc"][0]
    assert np.any(dedup["cmc"] > standard["cmc"])
    assert dedup["mAP"] == standard["mAP"]


def test_hand_built_dedup_standard_ap_inp():
    # gallery ranked: id 5, id 5, id 7, id 1 (true), id 9, id 1 (true)
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    g_pids, g_cams = np.array([5, 5, 7, 1, 9, 1]), np.ones(6, int)
    args = (distmat, np.array([1]), g_pids, np.array([2]), g_cams)
    standard = evaluate(*args, rule="standard", max_rank=6)
    dedup = evaluate(*args, rule="dedup_drop_cam2_for_cam3", max_rank=6)
    assert standard["cmc"].tolist() == [0, 0, 0, 1, 1, 1]
    assert dedup["cmc"].tolist() == [0, 0, 1, 1, 1, 1]  # distinct ids: 5, 7, 1
    assert standard["mAP"] == pytest.approx((1 / 4 + 2 / 6) / 2)
    assert standard["mINP"] == pytest.approx(2 / 6)


def test_stable_sort_on_ties():
    # all distances equal: the gallery order decides; the true match is at index 2
    args = (np.zeros((1, 4)), np.array([1]), np.array([0, 3, 1, 1]), np.array([6]), np.array([1, 1, 1, 1]))
    result = evaluate(*args, rule="standard", max_rank=4)
    assert result["cmc"].tolist() == [0, 0, 1, 1]
    assert result["mAP"] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_sysu_cam3_query_ignores_all_cam2_gallery_items():
    # cam-2 items of *another* identity are nearer; they are dropped for the cam-3 query only
    distmat = np.array([[0.1, 0.2, 0.9, 0.5], [0.1, 0.2, 0.9, 0.5]])
    g_pids, g_cams = np.array([4, 8, 1, 1]), np.array([2, 2, 2, 1])
    rule = "dedup_drop_cam2_for_cam3"
    cam3 = evaluate(distmat[:1], np.array([1]), g_pids, np.array([3]), g_cams, rule=rule, max_rank=3)
    cam6 = evaluate(distmat[1:], np.array([1]), g_pids, np.array([6]), g_cams, rule=rule, max_rank=3)
    assert cam3["cmc"].tolist() == [1, 1, 1] and cam3["mAP"] == 1.0  # only gallery item 3 (cam 1) remains
    assert cam6["cmc"].tolist() == [0, 0, 1]
    assert cam6["mAP"] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_llcm_drops_same_identity_same_camera_only():
    distmat = np.array([[0.1, 0.2, 0.3]])
    result = evaluate(distmat, np.array([1]), np.array([1, 2, 1]), np.array([4]), np.array([4, 4, 5]),
                      rule="dedup_drop_same_id_same_cam", max_rank=2)
    assert result["cmc"].tolist() == [0, 1]  # id 1 @ cam 4 removed, id 2 @ cam 4 kept
    assert result["mAP"] == pytest.approx(1 / 2)


def test_queries_without_true_match_are_skipped():
    distmat = np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.5]])
    q_pids, g_pids = np.array([1, 2, 3]), np.array([1, 2])
    result = evaluate(distmat, q_pids, g_pids, np.array([6, 6, 6]), np.array([1, 1]),
                      rule="dedup_drop_cam2_for_cam3", max_rank=2)
    assert result["num_valid_queries"] == 2
    assert result["cmc"].tolist() == [1, 1] and result["mAP"] == 1.0
    # a cam-3 query whose only true match is in cam 2 becomes invalid and is excluded
    both = evaluate(np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]), np.array([1, 2]), np.array([1, 2, 2]),
                    np.array([3, 6]), np.array([2, 1, 4]), rule="dedup_drop_cam2_for_cam3", max_rank=1)
    assert both["num_valid_queries"] == 1 and both["cmc"].tolist() == [1.0]
    with pytest.raises(UserError, match="no query has a true match"):
        evaluate(np.array([[0.1, 0.2]]), np.array([1]), np.array([1, 2]), np.array([3]), np.array([2, 1]),
                 rule="dedup_drop_cam2_for_cam3")


def test_bad_inputs_are_named():
    with pytest.raises(UserError, match="g_pids has 3 entries"):
        evaluate(np.zeros((2, 2)), [1, 2], [1, 2, 3], [1, 1], [2, 2])
    with pytest.raises(UserError, match="unknown metric rule 'market'; expected one of .*'standard'"):
        evaluate(np.zeros((1, 1)), [1], [1], [1], [2], rule="market")
    with pytest.raises(UserError, match="expected removal in"):
        MetricRule("same_camera", "dedup")


def test_rule_names_say_what_they_do():
    assert {name: (rule.removal, rule.cmc) for name, rule in METRIC_RULES.items()} == RULES
    with pytest.raises(UserError, match="unknown metric rule 'sysu'"):  # data-set names are not rules
        evaluate(np.zeros((1, 1)), np.array([1]), np.array([1]), np.array([1]), np.array([2]), rule="sysu")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
def test_stable_argsort_equals_numpy_stable(dtype):
    rng = np.random.default_rng(5)
    values = np.round(rng.normal(size=(30, 50)) * 3).astype(dtype)  # many ties
    if dtype != np.int32:
        values[0, :6] = [0.0, -0.0, np.inf, -np.inf, 0.0, -0.0]
    np.testing.assert_array_equal(stable_argsort(values), np.argsort(values, axis=1, kind="stable"))


def test_nan_distances_are_rejected():
    with pytest.raises(UserError, match="NaN"):
        evaluate(np.array([[np.nan, 0.1]]), [1], [1, 2], [3], [1, 1])


def test_feature_distance_ranks_like_cosine():
    rng = np.random.default_rng(3)
    q, g = rng.normal(size=(5, 16)), rng.normal(size=(9, 16)) * rng.uniform(0.1, 10, (9, 1))
    cosine = l2_normalize(q) @ l2_normalize(g).T
    dist = feature_distance(q, g)
    np.testing.assert_allclose(dist ** 2, 2 - 2 * cosine, atol=1e-5)
    assert (np.argsort(dist, 1, kind="stable") == np.argsort(-cosine, 1, kind="stable")).all()
