"""Gallery index at scale: search latency per query and recall of the approximate kind against exact search.

Data: clustered unit vectors of dimension 6144 (sepg_resnet50's embedding size), as a ReID gallery is: identities of
20 images each, every image its identity's random unit centre plus noise of norm 0.8, renormalised (same-identity
cosine about 0.6, other identities about 0). The noise was fixed before any measurement. Queries are 100 new images
of gallery identities. Vectors are generated in chunks of 10,000 from per-chunk seeds, so 10^6 x 6144 (24.6 GB, more
than this machine's memory) never has to be held at once.

- exact, FAISS: `IndexFlatIP` (sepgzoo's `exact` kind) searched chunk by chunk with the top-k merged;
- exact, numpy: `queries @ chunk.T` and a top-k merge on the same chunks (the baseline the index must not lose to);
- approximate: sepgzoo's `ivfpq` kind (`GalleryIndex.from_embeddings` on a training sample, then `add_embeddings`),
  searched with several `nprobe` (and once with k_factor 1: the PQ codes' own order, no re-scoring); recall@10 = |approximate top-10 ∩ exact top-10| / 10, and 1-recall@10 = the
  fraction of queries whose exact nearest neighbour is in the approximate top 10 (FAISS's convention).

Usage: OMP_NUM_THREADS=2 python benchmarks/gallery_index.py --sizes 100000 1000000
Results: benchmarks/results/gallery-index/gallery-index.json and README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np

from sepgzoo.deploy.gallery_index import GalleryIndex, import_faiss, ivfpq_parameters

IMAGES_PER_ID, NOISE, CHUNK, K = 20, 0.8, 10_000, 10
OUT = Path(__file__).parent / "results" / "gallery-index"


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def centre_of(identity: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Identity -> its unit centre, regenerated from (seed, identity): no table of every centre is kept."""
    return np.stack([unit(np.random.default_rng([seed, int(i)]).standard_normal((1, dim), np.float32))[0]
                     for i in identity])


def images(identity: np.ndarray, dim: int, seed: int, chunk_seed: int) -> np.ndarray:
    noise = unit(np.random.default_rng([seed, 10**9 + chunk_seed]).standard_normal((len(identity), dim), np.float32))
    return unit(centre_of(identity, dim, seed) + NOISE * noise).astype(np.float32)


def chunk(n_total: int, c: int, dim: int, seed: int) -> np.ndarray:
    start = c * CHUNK
    identity = np.arange(start, min(start + CHUNK, n_total)) // IMAGES_PER_ID
    return images(identity, dim, seed, c)


def merge_top(scores: np.ndarray, rows: np.ndarray, new_scores: np.ndarray, new_rows: np.ndarray):
    both_s, both_r = np.concatenate([scores, new_scores], 1), np.concatenate([rows, new_rows], 1)
    order = np.argsort(-both_s, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(both_s, order, 1), np.take_along_axis(both_r, order, 1)


def exact_pass(queries: np.ndarray, n: int, dim: int, seed: int, approx=None, train_rows: int = 0) -> dict:
    """One pass over the chunks: exact top-k with FAISS and with numpy (timed separately), and the approximate index
    filled (its training sample: the first `train_rows` vectors)."""
    faiss = import_faiss()
    q = len(queries)
    best = {"faiss": (np.full((q, K), -np.inf, np.float32), np.zeros((q, K), np.int64)),
            "numpy": (np.full((q, K), -np.inf, np.float32), np.zeros((q, K), np.int64))}
    seconds = {"faiss": 0.0, "numpy": 0.0, "ivfpq_add": 0.0, "ivfpq_train": 0.0}
    pending = []
    for c in range((n + CHUNK - 1) // CHUNK):
        x = chunk(n, c, dim, seed)
        offset = c * CHUNK
        flat = faiss.IndexFlatIP(dim)
        flat.add(x)  # not timed: an index holds its rows before any search
        t = time.perf_counter()
        s, r = flat.search(queries, K)
        seconds["faiss"] += time.perf_counter() - t
        best["faiss"] = merge_top(*best["faiss"], s, r + offset)
        t = time.perf_counter()
        scores = queries @ x.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        seconds["numpy"] += time.perf_counter() - t
        best["numpy"] = merge_top(*best["numpy"], np.take_along_axis(scores, top, 1), top + offset)
        if approx is not None:
            approx, pending = _fill_approx(approx, x, offset, n, pending, train_rows, seconds)
        print(f"  chunk {c + 1}/{(n + CHUNK - 1) // CHUNK}: exact faiss {seconds['faiss']:.1f} s, numpy "
              f"{seconds['numpy']:.1f} s, ivfpq train {seconds['ivfpq_train']:.0f} s add {seconds['ivfpq_add']:.0f} s",
              flush=True)
    return {"best": best, "seconds": seconds, "approx": approx}


def _fill_approx(approx: dict, x: np.ndarray, offset: int, n: int, pending: list, train_rows: int, seconds: dict):
    """Collect the training sample, train (the kind's own code), then add every later chunk."""
    paths = [str(offset + i) for i in range(len(x))]
    if approx.get("index") is None:
        pending.append((x, paths))
        if sum(len(p[0]) for p in pending) < min(train_rows, n):
            return approx, pending
        vectors = np.concatenate([p[0] for p in pending])
        names = [name for p in pending for name in p[1]]
        t = time.perf_counter()
        approx["index"] = GalleryIndex.from_embeddings(vectors, names, {"model_sha256": "benchmark"}, kind="ivfpq",
                                                       **approx["parameters"])
        seconds["ivfpq_train"] += time.perf_counter() - t
        return approx, []
    t = time.perf_counter()
    approx["index"].add_embeddings(x, paths)
    seconds["ivfpq_add"] += time.perf_counter() - t
    return approx, pending


def recall(approx_rows: np.ndarray, exact_rows: np.ndarray) -> dict:
    at_k = np.mean([len(set(a) & set(e)) / K for a, e in zip(approx_rows, exact_rows)])
    first = np.mean([e[0] in set(a) for a, e in zip(approx_rows, exact_rows)])
    return {"recall_at_10": float(at_k), "one_recall_at_10": float(first)}


def one_size(n: int, dim: int, queries: int, nprobes: list[int], seed: int, train_rows: int) -> dict:
    rng = np.random.default_rng([seed, 7])
    q = images(rng.integers(0, n // IMAGES_PER_ID, queries), dim, seed, chunk_seed=10**6)
    parameters = ivfpq_parameters(n, dim)
    print(f"n = {n}: ivfpq {parameters}", flush=True)
    run = exact_pass(q, n, dim, seed, {"parameters": {k: parameters[k] for k in ("nlist", "m", "nbits")}},
                     train_rows)
    exact_rows = run["best"]["faiss"][1]
    agree = float(np.mean([set(a) == set(b) for a, b in zip(exact_rows, run["best"]["numpy"][1])]))
    index = run["approx"]["index"]
    rows = []
    settings = [(nprobe, parameters["k_factor"]) for nprobe in nprobes] + [(max(nprobes), 1)]  # 1: PQ order alone
    for nprobe, k_factor in settings:
        index.set_search(nprobe=nprobe, k_factor=k_factor)
        t = time.perf_counter()
        _, found = index.search(q, K)
        batch_ms = 1000 * (time.perf_counter() - t) / queries
        t = time.perf_counter()
        for i in range(min(queries, 20)):
            index.search(q[i:i + 1], K)
        single_ms = 1000 * (time.perf_counter() - t) / min(queries, 20)
        approx_rows = np.array([[int(p) for p in row] for row in found])
        rows.append({"nprobe": nprobe, "k_factor": k_factor, "ms_per_query_batched": batch_ms, "ms_per_query_single": single_ms,
                     **recall(approx_rows, exact_rows)})
        print(f"  nprobe {nprobe}: {batch_ms:.2f} ms/query (batched), {single_ms:.2f} ms single, {rows[-1]}",
              flush=True)
    exact_ms = {k: 1000 * run["seconds"][k] / queries for k in ("faiss", "numpy")}
    return {"n": n, "dim": dim, "queries": queries, "ivfpq_parameters": {**parameters, "trained_on": train_rows},
            "exact_ms_per_query_batched": exact_ms, "exact_faiss_and_numpy_agree": agree,
            "ivfpq_train_s": run["seconds"]["ivfpq_train"], "ivfpq_add_s": run["seconds"]["ivfpq_add"],
            "ivfpq_bytes_per_vector": parameters["m"] + dim, "exact_bytes_per_vector": 4 * dim,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "approximate": rows}


def write_report(results: list[dict], command: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gallery-index.json").write_text(json.dumps({"command": command, "machine": platform.processor() or
                                                        platform.machine(), "results": results}, indent=1))
    lines = ["# Gallery index: exact vs ivfpq", "", f"`{command}` (2-core CPU, 24 GB; the data are generated in "
             "chunks, see the script's docstring)", "",
             "| vectors | dim | exact FAISS ms/query | exact numpy ms/query | ivfpq (nlist, m, nprobe, k_factor) | ivfpq "
             "ms/query (batched / single) | speed-up vs exact FAISS | recall@10 | 1-recall@10 | bytes/vector exact, "
             "ivfpq |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for a in r["approximate"]:
            p = r["ivfpq_parameters"]
            lines.append(f"| {r['n']:,} | {r['dim']} | {r['exact_ms_per_query_batched']['faiss']:.1f} | "
                         f"{r['exact_ms_per_query_batched']['numpy']:.1f} | {p['nlist']}, {p['m']}, {a['nprobe']}, "
                         f"{a['k_factor']} | "
                         f"{a['ms_per_query_batched']:.2f} / {a['ms_per_query_single']:.2f} | "
                         f"{r['exact_ms_per_query_batched']['faiss'] / a['ms_per_query_batched']:.0f}x | "
                         f"{a['recall_at_10']:.3f} | {a['one_recall_at_10']:.3f} | {r['exact_bytes_per_vector']}, "
                         f"{r['ivfpq_bytes_per_vector']} |")
    (OUT / "README.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=6144)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--train", type=int, default=40_000, help="training sample of the ivfpq kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    command = "python benchmarks/gallery_index.py " + " ".join(
        f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items())
    results = []
    for n in args.sizes:
        results.append(one_size(n, args.dim, args.queries, args.nprobe, args.seed, args.train))
        write_report(results, command)
    print((OUT / "README.md").read_text())


if __name__ == "__main__":
    main()
