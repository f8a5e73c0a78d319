"""Time `sepgzoo.evaluation.metrics.evaluate` against an AGW-style per-query loop at SYSU multi-shot size.

Usage:
    python benchmarks/bench_metrics.py [--queries 3803] [--gallery 3010] [--repeat 3] [--loop-repeat 1]
        [--json out.json]

The loop follows the AGW-family evaluator as described in docs/protocols.md 2.7-2.8 (our own code): per
query, sort the gallery, drop cam-2 items for cam-3 queries, compute the identity-deduplicated CMC
with a unique-in-order pass, then AP and INP. Both implementations must agree before times count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from sepgzoo.evaluation.metrics import evaluate


def per_query_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20):
    """AGW-style SYSU evaluation: one argsort of all rows, then Python-level work query by query.

    Mirrors the structure of the AGW-family `eval_sysu` (docs/protocols.md 2.7-2.8) in our own code: removal of
    cam-2 items for cam-3 queries, dedup CMC via `np.unique(return_index)` put back in rank order, the
    image-level match vector, INP from the last match, AP from a per-position precision list.
    A stable sort is used so that ties agree with `evaluate`.
    """
    order_all = np.argsort(distmat, axis=1, kind="stable")
    ranked_pids_all = g_pids[order_all]
    cmc_rows, aps, inps = [], [], []
    for q in range(distmat.shape[0]):
        keep = ~((q_camids[q] == 3) & (g_camids[order_all[q]] == 2))
        ranked = ranked_pids_all[q][keep]
        match = (ranked == q_pids[q]).astype(np.int32)
        if not match.any():
            continue
        first_index = np.unique(ranked, return_index=True)[1]
        distinct = np.array([ranked[i] for i in sorted(first_index)])
        dedup = (distinct == q_pids[q]).astype(np.int32).cumsum()
        cmc_rows.append(np.pad(dedup[:max_rank], (0, max(0, max_rank - len(dedup))), mode="edge"))
        hits = match.cumsum()
        last = np.flatnonzero(match).max()
        inps.append(hits[last] / (last + 1.0))
        precision = [h / (i + 1.0) for i, h in enumerate(hits)]
        aps.append(float((np.asarray(precision) * match).sum() / match.sum()))
    return {"cmc": np.mean(cmc_rows, axis=0), "mAP": float(np.mean(aps)), "mINP": float(np.mean(inps)),
            "num_valid_queries": len(aps)}


def make_case(num_q: int, num_g: int, seed: int = 0):
    """Random SYSU-like case: 96 ids, cam-3/cam-6 queries, cam-1/2/4/5 gallery, noisy 64-d unit features."""
    rng = np.random.default_rng(seed)
    q_pids, g_pids = rng.integers(0, 96, num_q), rng.integers(0, 96, num_g)
    centres = rng.normal(size=(96, 64))
    qf = centres[q_pids] + rng.normal(scale=2.0, size=(num_q, 64))
    gf = centres[g_pids] + rng.normal(scale=2.0, size=(num_g, 64))
    qf /= np.linalg.norm(qf, axis=1, keepdims=True)
    gf /= np.linalg.norm(gf, axis=1, keepdims=True)
    distmat = np.sqrt(np.maximum(2 - 2 * qf @ gf.T, 0)).astype(np.float32)
    return distmat, q_pids, g_pids, rng.choice([3, 6], num_q), rng.choice([1, 2, 4, 5], num_g)


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3803)
    parser.add_argument("--gallery", type=int, default=3010)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs of evaluate")
    parser.add_argument("--loop-repeat", type=int, default=1, help="best of N runs of the (slow) loop")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    case = make_case(args.queries, args.gallery)
    ours = evaluate(*case, rule="dedup_drop_cam2_for_cam3", max_rank=20)
    start = time.perf_counter()
    loop = per_query_loop(*case)
    first_loop = time.perf_counter() - start
    np.testing.assert_allclose(ours["cmc"], loop["cmc"], atol=1e-6)
    assert abs(ours["mAP"] - loop["mAP"]) < 1e-6 and abs(ours["mINP"] - loop["mINP"]) < 1e-6
    t_ours = best_time(lambda: evaluate(*case, rule="dedup_drop_cam2_for_cam3", max_rank=20), args.repeat)
    t_loop = min([first_loop] + [best_time(lambda: per_query_loop(*case), 1) for _ in range(args.loop_repeat - 1)])
    result = {"queries": args.queries, "gallery": args.gallery, "evaluate_s": round(t_ours, 4),
              "per_query_loop_s": round(t_loop, 4), "speedup": round(t_loop / t_ours, 1),
              "numpy": np.__version__, "python": platform.python_version(), "machine": platform.machine(),
              "cpus": os.cpu_count()}
    print(f"{args.queries} x {args.gallery}: evaluate {t_ours:.3f} s, per-query loop {t_loop:.3f} s, "
          f"speed-up {t_loop / t_ours:.1f}x (results agree to 1e-6)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
