"""Property-based tests (Hypothesis) where the code has laws: metrics, PABA, SEG, recipe parsing."""

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sepgzoo.config import load_recipe, recipe_from_dict
from sepgzoo.data.rules import CMC_VARIANTS, METRIC_RULES, REMOVALS, MetricRule, keep_mask, metric_rule
from sepgzoo.evaluation.metrics import evaluate
from sepgzoo.models.seg import SpectralEnhance, spectral_enhance
from sepgzoo.training.losses import paba_loss

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RULES = sorted(METRIC_RULES)


@st.composite
def retrieval_cases(draw):
    """Query/gallery identities and cameras (every query has at least one gallery image of its identity)."""
    ids = draw(st.integers(2, 6))
    g_pids = np.array(draw(st.lists(st.integers(0, ids - 1), min_size=ids, max_size=25)) + list(range(ids)))
    q_pids = np.array(draw(st.lists(st.integers(0, ids - 1), min_size=1, max_size=8)))
    g_cams = np.array(draw(st.lists(st.integers(1, 6), min_size=len(g_pids), max_size=len(g_pids))))
    q_cams = np.array(draw(st.lists(st.integers(1, 6), min_size=len(q_pids), max_size=len(q_pids))))
    seed = draw(st.integers(0, 2**31 - 1))
    return q_pids, g_pids, q_cams, g_cams, np.random.default_rng(seed)


def _has_match(q_pids, g_pids, q_cams, g_cams, rule) -> bool:
    """Some query keeps a true match after the removal (one without is excluded from every metric)."""
    kept = keep_mask(rule, q_pids, g_pids, q_cams, g_cams)
    return bool(((q_pids[:, None] == g_pids[None, :]) & kept).any(1).any())


@FAST
@given(retrieval_cases(), st.sampled_from(RULES))
def test_a_perfect_ranking_scores_one(case, rule):
    q_pids, g_pids, q_cams, g_cams, rng = case
    assume(_has_match(q_pids, g_pids, q_cams, g_cams, rule))
    same = q_pids[:, None] == g_pids[None, :]
    distmat = np.where(same, rng.uniform(0, 1, same.shape), rng.uniform(2, 3, same.shape))  # matches first
    result = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, rule=rule, max_rank=5)
    np.testing.assert_allclose(result["cmc"], 1.0)
    assert result["mAP"] == pytest.approx(1.0) and result["mINP"] == pytest.approx(1.0)


@FAST
@given(retrieval_cases(), st.sampled_from(RULES))
def test_permuting_the_gallery_with_its_labels_changes_nothing(case, rule):
    q_pids, g_pids, q_cams, g_cams, rng = case
    assume(_has_match(q_pids, g_pids, q_cams, g_cams, rule))
    distmat = rng.uniform(0, 1, (len(q_pids), len(g_pids)))  # continuous: no ties to break by gallery order
    order = rng.permutation(len(g_pids))
    before = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, rule=rule, max_rank=5)
    after = evaluate(distmat[:, order], q_pids, g_pids[order], q_cams, g_cams[order], rule=rule, max_rank=5)
    np.testing.assert_allclose(after["cmc"], before["cmc"])
    assert after["mAP"] == pytest.approx(before["mAP"]) and after["mINP"] == pytest.approx(before["mINP"])


@FAST
@given(retrieval_cases(), st.sampled_from(sorted(REMOVALS)))
def test_the_deduplicated_cmc_is_never_below_the_standard_one(case, removal):
    q_pids, g_pids, q_cams, g_cams, rng = case
    assume(_has_match(q_pids, g_pids, q_cams, g_cams, MetricRule(removal, "standard")))
    distmat = np.round(rng.uniform(0, 1, (len(q_pids), len(g_pids))), 1)  # ties included
    dedup = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, rule=MetricRule(removal, "dedup"), max_rank=10)
    standard = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, rule=MetricRule(removal, "standard"), max_rank=10)
    assert (dedup["cmc"] >= standard["cmc"] - 1e-12).all()
    assert dedup["cmc"][0] == pytest.approx(standard["cmc"][0])  # both agree at Rank-1
    assert dedup["mAP"] == pytest.approx(standard["mAP"])  # mAP never deduplicates


def removed_by_loop(removal: str, q_pids, g_pids, q_cams, g_cams) -> np.ndarray:
    """The removal rules of docs/protocols.md written out one (query, gallery item) pair at a time."""
    removed = np.zeros((len(q_pids), len(g_pids)), dtype=bool)
    for i in range(len(q_pids)):
        for j in range(len(g_pids)):
            if removal == "same_id_same_cam":
                removed[i, j] = q_pids[i] == g_pids[j] and q_cams[i] == g_cams[j]
            elif removal == "cam2_for_cam3":
                removed[i, j] = q_cams[i] == 3 and g_cams[j] == 2
    return removed


@FAST
@given(retrieval_cases(), st.sampled_from(sorted(REMOVALS)))
def test_keep_mask_removes_exactly_the_items_the_rule_names(case, removal):
    q_pids, g_pids, q_cams, g_cams, _ = case
    expected = ~removed_by_loop(removal, q_pids, g_pids, q_cams, g_cams)
    for cmc in CMC_VARIANTS:  # the CMC variant plays no part in what is removed
        np.testing.assert_array_equal(keep_mask(MetricRule(removal, cmc), q_pids, g_pids, q_cams, g_cams), expected)
    for name, rule in METRIC_RULES.items():  # the named rules remove what their removal says
        if rule.removal == removal:
            np.testing.assert_array_equal(keep_mask(name, q_pids, g_pids, q_cams, g_cams), expected)


def one_query(distmat, q_pids, g_pids, q_cams, g_cams, i: int, columns: np.ndarray, rule) -> dict | None:
    """Metrics of query i alone against the gallery items `columns` (None when the rule leaves it no true match)."""
    removed = removed_by_loop(metric_rule(rule).removal, q_pids[i : i + 1], g_pids[columns], q_cams[i : i + 1],
                              g_cams[columns])[0]
    if not ((g_pids[columns] == q_pids[i]) & ~removed).any():
        return None
    return evaluate(distmat[i : i + 1, columns], q_pids[i : i + 1], g_pids[columns], q_cams[i : i + 1],
                    g_cams[columns], rule=rule, max_rank=10)


@FAST
@given(retrieval_cases(), st.sampled_from(sorted(REMOVALS)), st.sampled_from(CMC_VARIANTS))
def test_a_removed_item_counts_as_if_it_were_not_in_the_gallery(case, removal, cmc):
    """Removed items are skipped, not re-ranked: each query scores as on a gallery without them, and the
    averages are over the queries that keep a true match."""
    q_pids, g_pids, q_cams, g_cams, rng = case
    distmat = np.round(rng.uniform(0, 1, (len(q_pids), len(g_pids))), 1)  # ties included: gallery order breaks them
    removed = removed_by_loop(removal, q_pids, g_pids, q_cams, g_cams)
    alone = [one_query(distmat, q_pids, g_pids, q_cams, g_cams, i, np.flatnonzero(~removed[i]),
                       MetricRule("none", cmc)) for i in range(len(q_pids))]
    alone = [r for r in alone if r is not None]
    assume(alone)  # a query without a true match left is excluded from every metric
    result = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, rule=MetricRule(removal, cmc), max_rank=10)
    assert result["num_valid_queries"] == len(alone)
    np.testing.assert_allclose(result["cmc"], np.mean([r["cmc"] for r in alone], axis=0), rtol=0, atol=1e-12)
    assert result["mAP"] == pytest.approx(np.mean([r["mAP"] for r in alone]), abs=1e-12)
    assert result["mINP"] == pytest.approx(np.mean([r["mINP"] for r in alone]), abs=1e-12)


@FAST
@given(retrieval_cases(), st.sampled_from(RULES), st.data())
def test_deleting_an_item_of_another_identity_never_lowers_a_score_and_after_the_last_match_changes_none(
        case, rule, data):
    """A wrong identity ranked before a true match only pushes matches down: without it no rank, AP or INP is
    worse. Ranked after the query's last true match it is never looked at: without it every number is the same."""
    q_pids, g_pids, q_cams, g_cams, rng = case
    distmat = np.round(rng.uniform(0, 1, (len(q_pids), len(g_pids))), 1)  # ties included: gallery order breaks them
    i = data.draw(st.integers(0, len(q_pids) - 1), label="query")
    others = np.flatnonzero(g_pids != q_pids[i])
    assume(len(others) > 0)
    j = data.draw(st.sampled_from(others.tolist()), label="deleted gallery item")
    everything = np.arange(len(g_pids))
    before = one_query(distmat, q_pids, g_pids, q_cams, g_cams, i, everything, rule)
    assume(before is not None)  # a query without a true match left is excluded from every metric
    after = one_query(distmat, q_pids, g_pids, q_cams, g_cams, i, everything[everything != j], rule)
    assert (after["cmc"] >= before["cmc"]).all()
    assert after["mAP"] >= before["mAP"] - 1e-12 and after["mINP"] >= before["mINP"] - 1e-12
    rank = np.empty(len(g_pids), dtype=int)
    rank[np.argsort(distmat[i], kind="stable")] = everything  # position in the ranked list, ties in gallery order
    removed = removed_by_loop(metric_rule(rule).removal, q_pids[i : i + 1], g_pids, q_cams[i : i + 1], g_cams)[0]
    if rank[j] > rank[(g_pids == q_pids[i]) & ~removed].max():
        np.testing.assert_array_equal(after["cmc"], before["cmc"])
        assert after["mAP"] == pytest.approx(before["mAP"], abs=1e-12)
        assert after["mINP"] == pytest.approx(before["mINP"], abs=1e-12)


@st.composite
def paba_batches(draw):
    """Identities present in both modalities, their images, part count and feature width."""
    ids = draw(st.integers(2, 5))
    per_id = draw(st.integers(1, 3))
    parts = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    return ids, per_id, parts, torch.Generator().manual_seed(seed)


@FAST
@given(paba_batches())
def test_paba_is_zero_when_each_identity_is_one_point_and_identities_are_far_apart(batch):
    ids, per_id, parts, generator = batch
    labels = torch.arange(ids).repeat_interleave(per_id)
    points = torch.eye(ids + 1)[:ids]  # one-hot: distance sqrt(2) between identities, above the 0.5 margin
    features = points[labels].expand(parts, -1, -1)
    order = torch.randperm(len(labels), generator=generator)  # the other modality in another order
    assert float(paba_loss(features, features[:, order], labels, labels[order], margin=0.5)) == 0.0


@FAST
@given(paba_batches())
def test_paba_is_symmetric_in_swapping_the_modalities_with_their_labels(batch):
    ids, per_id, parts, generator = batch
    labels_a = torch.arange(ids).repeat_interleave(per_id)
    labels_b = labels_a[torch.randperm(len(labels_a), generator=generator)]
    a = torch.randn(parts, len(labels_a), 8, generator=generator)
    b = torch.randn(parts, len(labels_b), 8, generator=generator)
    torch.testing.assert_close(paba_loss(a, b, labels_a, labels_b), paba_loss(b, a, labels_b, labels_a))


@st.composite
def images(draw):
    """[B, 3, H, W] in [0, 1]: random, constant, or with a constant channel."""
    batch, height, width = draw(st.integers(1, 3)), draw(st.integers(2, 12)), draw(st.integers(2, 12))
    kind = draw(st.sampled_from(["random", "constant", "constant_channel", "binary"]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.rand(batch, 3, height, width, generator=generator)
    if kind == "constant":
        x = torch.full_like(x, draw(st.floats(0, 1)))
    elif kind == "constant_channel":
        x[:, 1] = draw(st.floats(0, 1))
    elif kind == "binary":
        x = (x > 0.5).float()
    return x


@FAST
@given(images())
def test_seg_is_finite_and_batch_independent_for_any_image_in_the_unit_range(x):
    for seg in (spectral_enhance, SpectralEnhance(tuple(x.shape[-2:]), "matmul")):
        out = seg(x)
        assert out.shape == x.shape and torch.isfinite(out).all()
        single = torch.cat([seg(x[i : i + 1]) for i in range(len(x))])
        torch.testing.assert_close(single, out, rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(epochs=st.integers(1, 500), lr=st.floats(1e-5, 1.0, allow_nan=False), seed=st.integers(0, 10_000),
       flip=st.booleans(), parts=st.integers(1, 24), name=st.sampled_from(["synthetic", "sysu", "regdb", "llcm"]))
def test_recipe_dump_then_load_is_the_identity(epochs, lr, seed, flip, parts, name):
    milestones = [max(1, epochs // 2)] if epochs > 1 else []
    recipe = load_recipe(name, [f"train.epochs={epochs}", f"optim.lr={lr!r}", f"train.seed={seed}",
                                f"eval.flip={str(flip).lower()}", f"model.parts={parts}",
                                f"optim.milestones={milestones}"])
    again = recipe_from_dict(yaml.safe_load(recipe.to_yaml()))
    assert again == recipe and again.to_yaml() == recipe.to_yaml()
