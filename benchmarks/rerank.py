"""Time and memory of `sepgzoo.evaluation.rerank.re_ranking` at the test sizes of SYSU-MM01 and LLCM.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/rerank.py [--sizes sysu-single,sysu-multi,llcm-ir-vis,llcm-vis-ir]
        [--dense sysu-single,sysu-multi,llcm-ir-vis,llcm-vis-ir] [--repeat 3] [--out benchmarks/results/rerank]

Features are random and clustered: every identity is a random unit centre in 2048-d, an image is its centre plus
gaussian noise, renormalised. The noise level is fixed analytically before anything is measured: with noise
N(0, sigma^2 I), two images of one identity have cosine about 1 / (1 + sigma^2 D), so sigma^2 = (1 / 0.6 - 1) / D
gives about 0.6 (the measured mean is reported). SYSU-MM01 has 96 test identities, LLCM 351; labels are assigned
round-robin. The parent process writes each size's three distance matrices to a temporary folder; a fresh child
process loads them, then times the call. Peak memory is the child's peak resident set size during the call (VmHWM
of /proc/self/status, reset to the current size just before it through /proc/self/clear_refs) minus its resident
size before the call: result included, inputs excluded. `ru_maxrss` is not used because Linux carries the parent's
peak into the child. As a cross-check, one more call runs under tracemalloc (the peak of numpy's allocations).

`--dense` also runs, in its own child, the released algorithm with its dense (Q+G)^2 matrices (our own code, with
the same allocations: the squared float32 distances, V and its query expansion in float32, a full int64 argsort cast
to int32) and reports its time, peak and the largest difference from `re_ranking`. For the other sizes its peak is
estimated as 20 (Q+G)^2 bytes: the float32 distances, the float32 V, the int64 argsort and its int32 copy, alive
together while the neighbours are sorted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from sepgzoo.evaluation.metrics import feature_distance
from sepgzoo.evaluation.rerank import re_ranking

SIZES = {  # name: (queries, gallery, identities, what)
    "sysu-single": (3803, 301, 96, "SYSU-MM01 all-search single-shot"),
    "sysu-multi": (3803, 3010, 96, "SYSU-MM01 all-search multi-shot"),
    "llcm-ir-vis": (7166, 3159, 351, "LLCM IR->VIS"),
    "llcm-vis-ir": (3159, 8680, 351, "LLCM VIS->IR (DEEN transposition)"),
}
DIM = 2048
SAME_IDENTITY_COSINE = 0.6
NOISE_SIGMA = float(np.sqrt((1 / SAME_IDENTITY_COSINE - 1) / DIM))  # fixed before measuring, never tuned
DENSE_BYTES_PER_CELL = 20  # float32 distances + float32 V + int64 argsort + int32 ranks, per (Q+G)^2 cell
K1, K2, LAMBDA = 20, 6, 0.3


def clustered_features(num_query: int, num_gallery: int, identities: int, seed: int) -> tuple:
    """Unit-norm query and gallery features around random identity centres, and the mean same-identity cosine."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def images(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(count) % identities
        feats = centres[labels] + NOISE_SIGMA * rng.normal(size=(count, DIM)).astype(np.float32)
        return feats / np.linalg.norm(feats, axis=1, keepdims=True), labels

    (query, q_labels), (gallery, g_labels) = images(num_query), images(num_gallery)
    cosine = query @ gallery.T
    same = q_labels[:, None] == g_labels[None, :]
    return query, gallery, float(cosine[same].mean()), float(cosine[~same].mean())


def dense_reference(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int, k2: int,
                    lambda_value: float) -> np.ndarray:
    """The released algorithm with its dense matrices (our own code, same allocations; stable argsort)."""
    num_query = len(q_g)
    original = np.concatenate([np.concatenate([q_q, q_g], axis=1), np.concatenate([q_g.T, g_g], axis=1)], axis=0)
    original = np.square(original).astype(np.float32)
    original = np.transpose(original / original.max(axis=0))
    size = len(original)
    weights = np.zeros_like(original).astype(np.float32)
    rank = np.argsort(original, axis=1, kind="stable").astype(np.int32)
    half = int(np.around(k1 / 2))

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = rank[i, :k + 1]
        return forward[(rank[forward, :k + 1] == i).any(axis=1)]

    for i in range(size):
        neighbours = reciprocal(i, k1)
        expansion = [neighbours]
        for candidate in neighbours:
            candidate_set = reciprocal(candidate, half)
            if len(np.intersect1d(candidate_set, neighbours)) > 2 / 3 * len(candidate_set):
                expansion.append(candidate_set)
        expansion = np.unique(np.concatenate(expansion))
        exp_values = np.exp(-original[i, expansion])
        weights[i, expansion] = exp_values / np.sum(exp_values)
    original = original[:num_query]
    if k2 != 1:
        expanded = np.zeros_like(weights, dtype=np.float32)
        for i in range(size):
            expanded[i] = weights[rank[i, :k2]].mean(axis=0)
        weights = expanded
        del expanded
    del rank
    holders = [np.flatnonzero(weights[:, k]) for k in range(size)]
    jaccard = np.zeros_like(original, dtype=np.float32)
    for i in range(num_query):
        shared = np.zeros(size, dtype=np.float32)
        for k in np.flatnonzero(weights[i]):
            shared[holders[k]] += np.minimum(weights[i, k], weights[holders[k], k])
        jaccard[i] = 1 - shared / (2 - shared)
    final = jaccard * (1 - lambda_value) + original * lambda_value
    return final[:, num_query:]


def child(folder: Path, method: str, repeat: int) -> None:
    """Load the distances of one size, time `repeat` calls and print a JSON line (run in a fresh process)."""
    q_g, q_q, g_g = (np.load(folder / f"{name}.npy") for name in ("q_g", "q_q", "g_g"))
    function = re_ranking if method == "sparse" else dense_reference
    seconds, result, peaks = [], None, []
    for _ in range(repeat):
        result = None  # the previous call's result is freed before the next call
        before_mb = _reset_peak_rss()
        start = time.perf_counter()
        result = function(q_g, q_q, g_g, K1, K2, LAMBDA)
        seconds.append(time.perf_counter() - start)
        peaks.append(_status_mb("VmHWM") - before_mb)
    np.save(folder / f"result_{method}.npy", result)
    traced_mb = None
    if method == "sparse":  # cross-check: the peak of numpy's allocations, traced by tracemalloc (one more call)
        result = None
        tracemalloc.start()
        function(q_g, q_q, g_g, K1, K2, LAMBDA)
        traced_mb = tracemalloc.get_traced_memory()[1] / 2 ** 20
        tracemalloc.stop()
    print(json.dumps({"seconds": seconds, "peak_mb": max(peaks), "traced_peak_mb": traced_mb,
                      "inputs_mb": sum(a.nbytes for a in (q_g, q_q, g_g)) / 2 ** 20}))


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def _reset_peak_rss() -> float:
    """Reset the peak resident size to the current one (Linux >= 4.0) and return the current one, in MiB.

    `ru_maxrss` is not used: Linux carries the parent's peak into a child over fork and exec, so it would hide
    any call that needs less than the parent process held.
    """
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def run_child(folder: Path, method: str, repeat: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", str(folder), "--method", method, "--repeat",
                           str(repeat)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{method} child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, dense: bool, repeat: int, seed: int) -> dict:
    num_query, num_gallery, identities, what = SIZES[name]
    print(f"[{name}] {what}: {num_query} x {num_gallery}, {identities} ids; building features", flush=True)
    query, gallery, same_cos, other_cos = clustered_features(num_query, num_gallery, identities, seed)
    row = {"name": name, "what": what, "queries": num_query, "gallery": num_gallery, "identities": identities,
           "same_identity_cosine": round(same_cos, 4), "other_identity_cosine": round(other_cos, 4)}
    with tempfile.TemporaryDirectory(prefix="rerank-bench-") as tmp:
        folder = Path(tmp)
        for key, (a, b) in {"q_g": (query, gallery), "q_q": (query, query), "g_g": (gallery, gallery)}.items():
            np.save(folder / f"{key}.npy", feature_distance(a, b))
        del query, gallery
        sparse = run_child(folder, "sparse", repeat)
        row.update(seconds=float(np.median(sparse["seconds"])), runs=sparse["seconds"], peak_mb=sparse["peak_mb"],
                   traced_peak_mb=sparse["traced_peak_mb"], inputs_mb=sparse["inputs_mb"])
        print(f"[{name}] re_ranking: {row['seconds']:.2f} s (median of {repeat}), peak +{row['peak_mb']:.0f} MB "
              f"(tracemalloc {row['traced_peak_mb']:.0f} MB)",
              flush=True)
        cells = (num_query + num_gallery) ** 2
        row["dense_estimate_mb"] = DENSE_BYTES_PER_CELL * cells / 2 ** 20
        if dense:
            print(f"[{name}] dense reference ...", flush=True)
            measured = run_child(folder, "dense", 1)
            difference = np.abs(np.load(folder / "result_sparse.npy").astype(np.float64)
                                - np.load(folder / "result_dense.npy")).max()
            row.update(dense_seconds=measured["seconds"][0], dense_peak_mb=measured["peak_mb"],
                       max_abs_difference_vs_dense=float(difference))
            print(f"[{name}] dense: {row['dense_seconds']:.1f} s, peak +{row['dense_peak_mb']:.0f} MB, "
                  f"max |difference| {difference:.2e}", flush=True)
    return row


def write_markdown(rows: list[dict], meta: dict, path: Path) -> None:
    lines = ["# k-reciprocal re-ranking: time and memory (`python benchmarks/rerank.py`)", "",
             f"Command: `{meta['command']}`. Machine: {meta['machine']}; numpy {meta['numpy']}, "
             f"OMP_NUM_THREADS={meta['omp_num_threads']}. `re_ranking(q_g, q_q, g_g, k1={K1}, k2={K2}, "
             f"lambda_value={LAMBDA})` with its default `block_rows`, on the distances of random clustered "
             f"unit features ({DIM}-d, noise sigma {NOISE_SIGMA:.5f} fixed for a same-identity cosine of about "
             f"{SAME_IDENTITY_COSINE}; SYSU-MM01's 96 and LLCM's 351 test identities). Time: median of "
             f"{meta['repeat']} calls. Peak: the child process's peak RSS during the call (VmHWM, reset just before "
             "it) over its RSS before the call, result included, the three input matrices excluded (their size is "
             "the inputs column); tracemalloc: the peak of numpy's allocations in one more call. Dense: the released "
             "algorithm with its dense (Q+G)^2 matrices (our own code, same allocations), measured where a time is "
             f"given, otherwise estimated as {DENSE_BYTES_PER_CELL} (Q+G)^2 bytes. Raw numbers: `rerank.json`; the "
             f"whole run took {meta['total_seconds']:.0f} s.", "",
             "| size | Q x G | ids | same-id cos | seconds | peak MB | tracemalloc MB | inputs MB | dense seconds "
             "| dense peak MB | max abs diff vs dense |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        measured = "dense_seconds" in r
        dense_time = f"{r['dense_seconds']:.1f}" if measured else "-"
        dense_peak = f"{r['dense_peak_mb']:.0f}" if measured else f"~{r['dense_estimate_mb']:.0f} (estimate)"
        difference = f"{r['max_abs_difference_vs_dense']:.1e}" if measured else "-"
        lines.append(f"| {r['what']} | {r['queries']:,} x {r['gallery']:,} | {r['identities']} | "
                     f"{r['same_identity_cosine']:.3f} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | "
                     f"{r['traced_peak_mb']:.0f} | {r['inputs_mb']:.0f} | {dense_time} | {dense_peak} | {difference} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--dense", default=",".join(SIZES), help="sizes that also run the dense algorithm")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rerank")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--method", default="sparse", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.method, args.repeat)
        return
    dense = {name for name in args.dense.split(",") if name}
    started = time.perf_counter()
    rows = [measure(name, name in dense, args.repeat, args.seed) for name in args.sizes.split(",")]
    meta = {"command": "OMP_NUM_THREADS=1 python " + " ".join(["benchmarks/rerank.py", *sys.argv[1:]]),
            "machine": f"2-core CPU ({_cpu_name()})", "numpy": np.__version__, "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "repeat": args.repeat, "k1": K1, "k2": K2,
            "lambda_value": LAMBDA, "dim": DIM, "noise_sigma": NOISE_SIGMA,
            "total_seconds": round(time.perf_counter() - started, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rerank.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    write_markdown(rows, meta, args.out / "README.md")
    print(f"wrote {args.out / 'rerank.json'} and README.md in {meta['total_seconds']} s", flush=True)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
