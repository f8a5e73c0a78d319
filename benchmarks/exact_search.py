"""Exact search in memory: the gallery index's `exact` kind (FAISS `IndexFlatIP`) against a numpy matrix product
with a top-k partition, on the same 10^5 x 6144 clustered unit vectors as benchmarks/gallery_index.py, with 1 and 2
threads, on an otherwise idle machine. Median of 5 searches of 100 queries each.

Usage: python benchmarks/exact_search.py   (results: benchmarks/results/gallery-index/exact-search.json)
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
from gallery_index import CHUNK, OUT, K, chunk, images

from sepgzoo.deploy.gallery_index import import_faiss


def median_seconds(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(n: int = 100_000, dim: int = 6144, queries: int = 100, seed: int = 0) -> None:
    faiss = import_faiss()
    from threadpoolctl import threadpool_limits

    x = np.concatenate([chunk(n, c, dim, seed) for c in range((n + CHUNK - 1) // CHUNK)])
    q = images(np.random.default_rng([seed, 7]).integers(0, n // 20, queries), dim, seed, chunk_seed=10**6)
    index = faiss.IndexFlatIP(dim)
    index.add(x)
    rows = []
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        with threadpool_limits(threads):
            faiss_s = median_seconds(lambda: index.search(q, K))
            numpy_s = median_seconds(lambda: np.argpartition(-(q @ x.T), K, axis=1)[:, :K])
        rows.append({"threads": threads, "faiss_ms_per_query": 1000 * faiss_s / queries,
                     "numpy_ms_per_query": 1000 * numpy_s / queries, "faiss_over_numpy": faiss_s / numpy_s})
        print(rows[-1], flush=True)
    Path(OUT).mkdir(parents=True, exist_ok=True)
    (OUT / "exact-search.json").write_text(json.dumps({"n": n, "dim": dim, "queries": queries, "results": rows},
                                                      indent=1))


if __name__ == "__main__":
    main()
