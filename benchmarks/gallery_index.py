"""Gallery index at scale: search latency per query and recall of the approximate kind (hnsw) against exact search.

Data: clustered unit vectors of dimension 6144 (sepg_resnet50's embedding size), as a ReID gallery is: identities of
20 images each, every image its identity's random unit centre plus noise of norm 0.8, renormalised (same-identity
cosine about 0.6, other identities about 0). The noise was fixed before any measurement. Queries are 100 new images
of gallery identities. Vectors are generated in chunks of 10,000 from per-chunk seeds, so 10^6 x 6144 (24.6 GB, more
than this machine's memory) never has to be held at once.

- exact, FAISS: `IndexFlatIP` (sepgzoo's `exact` kind) searched chunk by chunk with the top-k merged;
- exact, numpy: `queries @ chunk.T` and a top-k merge on the same chunks (the baseline the index must not lose to);
- approximate: sepgzoo's `hnsw` kind (`GalleryIndex.from_embeddings` on the first chunk, then `add_embeddings`),
  searched with several `ef_search`; recall@10 = |approximate top-10 ∩ exact top-10| / 10, and 1-recall@10 = the
  fraction of queries whose exact nearest neighbour is in the approximate top 10 (FAISS's convention).

Exact timings: each chunk is searched twice by FAISS and twice by numpy, in alternating order, and the faster of
each pair is summed (the machine runs other work; the minimum is the least disturbed). An IVF-PQ kind measured with
an earlier version of this script is in results/gallery-index/ivfpq/ (why the approximate kind is HNSW).

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

from sepgzoo.deploy.gallery_index import GalleryIndex, hnsw_parameters, import_faiss

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


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def exact_chunk(queries: np.ndarray, x: np.ndarray) -> dict:
    """Top-k of one chunk by FAISS and by numpy: (best seconds of two, (scores, rows)) each, in alternating order."""
    faiss = import_faiss()
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)  # not timed: an index holds its rows before any search

    def with_numpy():
        scores = queries @ x.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        return np.take_along_axis(scores, top, 1), top

    runs = {"faiss": [], "numpy": []}
    for order in (("faiss", "numpy"), ("numpy", "faiss")):
        for name in order:
            runs[name].append(timed(lambda: flat.search(queries, K) if name == "faiss" else with_numpy()))
    return {name: (min(r[0] for r in pair), pair[0][1]) for name, pair in runs.items()}


def build_pass(queries: np.ndarray, n: int, dim: int, seed: int, parameters: dict) -> dict:
    """One pass over the chunks: exact top-k with FAISS and with numpy (timed separately), and the approximate index
    built (the first chunk trains its 8-bit codes, every later chunk is added)."""
    q = len(queries)
    best = {name: (np.full((q, K), -np.inf, np.float32), np.zeros((q, K), np.int64)) for name in ("faiss", "numpy")}
    seconds = {"faiss": 0.0, "numpy": 0.0, "hnsw_build": 0.0}
    index, chunks = None, (n + CHUNK - 1) // CHUNK
    for c in range(chunks):
        x, offset = chunk(n, c, dim, seed), c * CHUNK
        for name, (spent, (scores, rows)) in exact_chunk(queries, x).items():
            seconds[name] += spent
            best[name] = merge_top(*best[name], scores, rows + offset)
        paths = [str(offset + i) for i in range(len(x))]
        if index is None:
            spent, index = timed(lambda: GalleryIndex.from_embeddings(x, paths, {"model_sha256": "benchmark"},
                                                                      kind="hnsw", **parameters))
        else:
            spent, _ = timed(lambda: index.add_embeddings(x, paths))
        seconds["hnsw_build"] += spent
        print(f"  chunk {c + 1}/{chunks}: exact faiss {seconds['faiss']:.1f} s, numpy {seconds['numpy']:.1f} s, "
              f"hnsw build {seconds['hnsw_build']:.0f} s", flush=True)
    return {"best": best, "seconds": seconds, "index": index}


def recall(approx_rows: np.ndarray, exact_rows: np.ndarray) -> dict:
    at_k = np.mean([len(set(a) & set(e)) / K for a, e in zip(approx_rows, exact_rows)])
    first = np.mean([e[0] in set(a) for a, e in zip(approx_rows, exact_rows)])
    return {"recall_at_10": float(at_k), "one_recall_at_10": float(first)}


def one_size(n: int, dim: int, queries: int, ef_searches: list[int], seed: int) -> dict:
    rng = np.random.default_rng([seed, 7])
    q = images(rng.integers(0, n // IMAGES_PER_ID, queries), dim, seed, chunk_seed=10**6)
    parameters = hnsw_parameters()
    print(f"n = {n}: hnsw {parameters}", flush=True)
    run = build_pass(q, n, dim, seed, {k: parameters[k] for k in ("m", "ef_construction")})
    exact_rows = run["best"]["faiss"][1]
    agree = float(np.mean([set(a) == set(b) for a, b in zip(exact_rows, run["best"]["numpy"][1])]))
    index, rows = run["index"], []
    for ef in ef_searches:
        index.set_search(ef_search=ef)
        batch_s, (_, found) = timed(lambda: index.search(q, K))
        single_s, _ = timed(lambda: [index.search(q[i:i + 1], K) for i in range(min(queries, 20))])
        approx_rows = np.array([[int(p) for p in row] for row in found])
        rows.append({"ef_search": ef, "ms_per_query_batched": 1000 * batch_s / queries,
                     "ms_per_query_single": 1000 * single_s / min(queries, 20), **recall(approx_rows, exact_rows)})
        print(f"  ef_search {ef}: {rows[-1]}", flush=True)
    return {"n": n, "dim": dim, "queries": queries, "hnsw_parameters": parameters,
            "exact_ms_per_query_batched": {k: 1000 * run["seconds"][k] / queries for k in ("faiss", "numpy")},
            "exact_faiss_and_numpy_agree": agree, "hnsw_build_s": run["seconds"]["hnsw_build"],
            "hnsw_bytes_per_vector": dim + 2 * 4 * parameters["m"], "exact_bytes_per_vector": 4 * dim,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "approximate": rows}


def write_report(results: list[dict], command: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gallery-index.json").write_text(json.dumps({"command": command, "machine": platform.processor() or
                                                        platform.machine(), "results": results}, indent=1))
    lines = ["# Gallery index: exact vs hnsw", "", f"`{command}` (2-core CPU, 24 GB; the data are generated in "
             "chunks, see the script's docstring)", "",
             "| vectors | dim | exact FAISS ms/query | exact numpy ms/query | hnsw ef_search | hnsw ms/query "
             "(batched / single) | speed-up vs exact FAISS | recall@10 | 1-recall@10 | hnsw build s | bytes/vector "
             "exact, hnsw |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        exact = r["exact_ms_per_query_batched"]
        for a in r["approximate"]:
            lines.append(f"| {r['n']:,} | {r['dim']} | {exact['faiss']:.1f} | {exact['numpy']:.1f} | "
                         f"{a['ef_search']} | "
                         f"{a['ms_per_query_batched']:.2f} / {a['ms_per_query_single']:.2f} | "
                         f"{exact['faiss'] / a['ms_per_query_batched']:.0f}x | {a['recall_at_10']:.3f} | "
                         f"{a['one_recall_at_10']:.3f} | {r['hnsw_build_s']:.0f} | {r['exact_bytes_per_vector']}, "
                         f"{r['hnsw_bytes_per_vector']} |")
    (OUT / "README.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=6144)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    command = "python benchmarks/gallery_index.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items())
    results = []
    for n in args.sizes:
        results.append(one_size(n, args.dim, args.queries, args.ef_search, args.seed))
        write_report(results, command)
    print((OUT / "README.md").read_text())


if __name__ == "__main__":
    main()
