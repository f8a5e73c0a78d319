"""Evaluation protocols: seeded gallery sampling, official permutations, directions, trial averaging."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

from sepgzoo.data.datasets import INFRARED, VISIBLE
from sepgzoo.data.llcm import LLCMProtocol
from sepgzoo.data.protocols import build_protocol, valid_query_count
from sepgzoo.data.regdb import RegDBProtocol
from sepgzoo.data.registry import build_dataset
from sepgzoo.data.sysu import SYSUProtocol
from sepgzoo.errors import UserError
from sepgzoo.evaluation.metrics import evaluate, feature_distance
from sepgzoo.evaluation.trials import run_trials


@pytest.fixture(scope="module")
def sysu(sysu_root):
    return build_dataset("sysu", sysu_root)


def agw_reference(root: Path, test_ids: list[int], cams: tuple[int, ...], trial: int) -> list[str]:
    """The AGW-family walk written plainly with the global `random` module."""
    random.seed(trial)
    chosen = []
    for pid in sorted(test_ids):
        for cam in cams:
            folder = os.path.join(root, f"cam{cam}", f"{pid:04d}")
            if os.path.isdir(folder):
                files = sorted(os.path.join(folder, name) for name in os.listdir(folder))
                chosen.append(random.choice(files))
    return chosen


@pytest.mark.parametrize("mode,cams", [("all", (1, 2, 4, 5)), ("indoor", (1, 2))])
def test_agw_sampler_matches_plain_reimplementation(sysu, sysu_root, mode, cams):
    protocol = SYSUProtocol(sysu, mode=mode)
    for trial in (0, 3, 9):
        expected = agw_reference(sysu_root, sysu.test_ids, cams, trial)
        assert [s.path for s in protocol.gallery_samples(trial)] == expected
    again = SYSUProtocol(sysu, mode)
    assert [s.path for s in protocol.gallery_samples(2)] == [s.path for s in again.gallery_samples(2)]
    assert protocol.gallery_samples(0) != protocol.gallery_samples(1)


def test_agw_sampler_leaves_global_random_alone(sysu):
    random.seed(123)
    expected = random.random()
    random.seed(123)
    SYSUProtocol(sysu).gallery_samples(5)
    assert random.random() == expected


def test_sysu_sizes_and_valid_queries(sysu, sysu_root):
    def has(pid, cam):
        return any((sysu_root / f"cam{cam}" / f"{pid:04d}").glob("*.jpg"))

    for mode, cams in (("all", (1, 2, 4, 5)), ("indoor", (1, 2))):
        protocol = build_protocol(f"sysu_{mode}_single", sysu)
        pairs = [(pid, cam) for pid in sysu.test_ids for cam in cams if has(pid, cam)]
        assert len(protocol.gallery_samples(0)) == len(pairs)
        assert {(s.pid, s.camid) for s in protocol.gallery_samples(0)} == set(pairs)
        assert len(protocol.query_samples(0)) == len(sysu.query)
        # a cam-3 query may only match cam-1 (and, outdoors, cam-4/5) images
        usable = {3: [c for c in cams if c != 2], 6: list(cams)}
        expected_valid = sum(any(has(s.pid, c) for c in usable[s.camid]) for s in sysu.query)
        assert valid_query_count(protocol, 0) == expected_valid
        assert protocol.options["sampler"] == "agw" and protocol.metric == "dedup_drop_cam2_for_cam3"


def write_rand_perm(sysu_root: Path, path: Path, trials: int = 10) -> None:
    """A rand_perm_cam.mat in the official shape: 6 cells x per-identity [trials, n] 1-based permutations."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    max_id = max(int(p.name) for cam in range(1, 7) for p in (sysu_root / f"cam{cam}").iterdir())
    cams = np.empty((1, 6), dtype=object)
    for c in range(6):
        per_id = np.empty((1, max_id), dtype=object)
        for p in range(max_id):
            n = len(list((sysu_root / f"cam{c + 1}" / f"{p + 1:04d}").glob("*.jpg")))
            per_id[0, p] = np.array([rng.permutation(n) + 1 for _ in range(trials)], dtype=float).reshape(trials, n)
        cams[0, c] = per_id
    savemat(str(path), {"rand_perm_cam": cams})


def test_official_sampler_reads_rand_perm(sysu, sysu_root, tmp_path):
    pytest.importorskip("scipy")
    mat = sysu_root / "exp" / "rand_perm_cam.mat"
    write_rand_perm(sysu_root, mat)
    try:
        from scipy.io import loadmat
        perms = loadmat(str(mat))["rand_perm_cam"]
        single = SYSUProtocol(sysu, "all", "single", "official")
        multi = SYSUProtocol(sysu, "indoor", "multi", "official")
        for trial in (0, 4):
            expected = [f"cam{c}/{p:04d}/{int(perms[0, c - 1][0, p - 1][trial, 0]):04d}.jpg"
                        for p in sysu.test_ids for c in (1, 2, 4, 5) if perms[0, c - 1][0, p - 1].size]
            got = ["/".join(Path(s.path).parts[-3:]) for s in single.gallery_samples(trial)]
            assert got == expected
        sizes = [len(list((sysu_root / f"cam{c}" / f"{p:04d}").glob("*.jpg"))) for p in sysu.test_ids for c in (1, 2)]
        assert len(multi.gallery_samples(0)) == sum(min(n, 10) for n in sizes)
        assert single.options["sampler"] == "official"
    finally:
        mat.unlink()


def test_sampler_errors(sysu):
    with pytest.raises(UserError, match="single-shot only"):
        SYSUProtocol(sysu, shot="multi")
    with pytest.raises(UserError, match="rand_perm_cam.mat not found"):
        SYSUProtocol(sysu, sampler="official")
    with pytest.raises(UserError, match="mode='outdoor'"):
        SYSUProtocol(sysu, mode="outdoor")
    with pytest.raises(UserError, match="trial 10 is out of range"):
        SYSUProtocol(sysu).trial(10)
    with pytest.raises(UserError, match="needs a 'regdb' dataset"):
        build_protocol("regdb_v2i", sysu)
    with pytest.raises(UserError, match="unknown protocol 'sysu_al_single' \\(did you mean 'sysu_all_single'"):
        build_protocol("sysu_al_single", sysu)


def noisy_features(protocol, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Query and gallery pool features: each identity's random centre plus noise (so ranks are imperfect)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, 16))
    return tuple(np.stack([centres[s.pid] + rng.normal(scale=1.5, size=16) for s in pool])
                 for pool in (protocol.query, protocol.gallery))


def trial_metrics(protocol, t: int, distances) -> dict:
    """The metric of one trial, from `distances(query_features, gallery_features)` of its pools' rows."""
    q, g = protocol.query_samples(t), protocol.gallery_samples(t)
    return evaluate(distances(protocol.trial(t)), [s.pid for s in q], [s.pid for s in g], [s.camid for s in q],
                    [s.camid for s in g], "dedup_drop_cam2_for_cam3")


def test_run_trials_averages_per_trial_evaluations(sysu):
    protocol = SYSUProtocol(sysu, num_trials=3)
    qf, gf = noisy_features(protocol, 0)
    result = run_trials(protocol, qf, gf)
    per = [trial_metrics(protocol, t, lambda split: feature_distance(qf[split.query_index], gf[split.gallery_index]))
           for t in range(3)]
    assert result["R1"] == pytest.approx(np.mean([r["cmc"][0] for r in per]))
    assert result["R10"] == pytest.approx(np.mean([r["cmc"][9] for r in per]))
    assert result["mAP"] == pytest.approx(np.mean([r["mAP"] for r in per]))
    assert result["mINP"] == pytest.approx(np.mean([r["mINP"] for r in per]))
    assert result["num_valid_queries"] == per[0]["num_valid_queries"] and result["trials"] == [0, 1, 2]
    assert result["options"]["mode"] == "all" and result["options"]["evaluated_trials"] == [0, 1, 2]
    perfect = np.eye(1000)
    best = run_trials(protocol, perfect[[s.pid for s in protocol.query]], perfect[[s.pid for s in protocol.gallery]])
    assert best["R1"] == best["mAP"] == best["mINP"] == 1.0
    with pytest.raises(UserError, match="query features have shape"):
        run_trials(protocol, qf[:-1], gf)


def test_rerank_is_scored_per_trial_and_reported_beside_the_plain_numbers(sysu):
    from sepgzoo.evaluation.records import evaluation_name
    from sepgzoo.evaluation.report import format_table, summarise
    from sepgzoo.evaluation.rerank import re_ranking

    protocol = SYSUProtocol(sysu, num_trials=2)
    qf, gf = noisy_features(protocol, 1)
    parameters = {"k1": 5, "k2": 3, "lambda_value": 0.3}
    plain, both = run_trials(protocol, qf, gf), run_trials(protocol, qf, gf, rerank=parameters)
    assert {k: both[k] for k in ("R1", "mAP", "mINP")} == {k: plain[k] for k in ("R1", "mAP", "mINP")}

    def reranked(split):  # independently: the re-ranking function on this trial's distances
        q, g = qf[split.query_index], gf[split.gallery_index]
        return re_ranking(feature_distance(q, g), feature_distance(q, q), feature_distance(g, g), 5, 3, 0.3)

    per = [trial_metrics(protocol, t, reranked) for t in range(2)]
    assert both["reranked"]["R1"] == pytest.approx(np.mean([r["cmc"][0] for r in per]))
    assert both["reranked"]["mAP"] == pytest.approx(np.mean([r["mAP"] for r in per]))
    assert both["reranked"]["mAP"] != pytest.approx(plain["mAP"])  # it did re-rank
    assert both["options"]["rerank"]["k1"] == 5 and plain["options"]["rerank"] is False
    report = {"results": {"sysu_all_single": both}, "selection": "last", "flip_tta": False, "weights_sha256": "0" * 64,
              "epoch": 1}
    assert list(summarise(report["results"])) == ["sysu_all_single", "sysu_all_single re-ranked"]
    table = format_table(report)
    assert "sysu_all_single re-ranked" in table and "k1=5, k2=3, lambda=0.3" in table
    assert evaluation_name(report).endswith("flip-off.rerank-k1-5-k2-3-lambda0.3.epoch1-00000000")


def test_regdb_directions(regdb_root):
    ds = build_dataset("regdb", regdb_root, trial=2)
    v2i, i2v = RegDBProtocol(ds, "v2i"), build_protocol("regdb_i2v", ds)
    assert v2i.query == ds.test_visible and v2i.gallery == ds.test_infrared
    assert (v2i.query_modality, v2i.gallery_modality) == (VISIBLE, INFRARED)
    assert i2v.query == ds.test_infrared and i2v.query_modality == INFRARED
    assert v2i.num_trials == 1 and v2i.options["split"] == 2 and v2i.metric == "standard"
    assert len(v2i.gallery_samples(0)) == len(ds.test_infrared)


def test_llcm_directions_and_deen_switch(llcm_root):
    ds = build_dataset("llcm", llcm_root)
    i2v = LLCMProtocol(ds, "i2v")
    pairs = {(s.pid, s.camid) for s in ds.test_samples(VISIBLE)}
    assert len(i2v.gallery_samples(0)) == len(pairs) and len(i2v.query_samples(0)) == len(ds.test_samples(INFRARED))
    deen = LLCMProtocol(ds, "v2i", deen_compatible=True)
    assert deen.query_modality == INFRARED and len(deen.gallery_samples(0)) == len(ds.test_samples(VISIBLE))
    assert len(deen.query_samples(0)) == len({(s.pid, s.camid) for s in ds.test_samples(INFRARED)})
    true_v2i = LLCMProtocol(ds, "v2i", deen_compatible=False)
    assert true_v2i.query_modality == VISIBLE and len(true_v2i.query_samples(0)) == len(ds.test_samples(VISIBLE))
    assert true_v2i.options["deen_compatible"] is False
    assert true_v2i.metric == "dedup_drop_same_id_same_cam"
