"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017).

`re_ranking` reproduces the authors' released `re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)` (the
one torchreid ships as `torchreid/utils/rerank.py`) to float tolerance: on random inputs the two agree within 1e-6
(`tests/test_rerank.py` checks it against a literal loop version of that algorithm). The algorithm is the same; the
computation is not:

* the released code builds the dense (Q+G) x (Q+G) distance matrix and keeps several dense matrices of that size at
  once (the squared distances, a full argsort of every row, V and its query expansion). Here the rows of the scaled
  distance matrix are built a block at a time from the three inputs, only the max(k1 + 1, k2) nearest of each row
  are kept (a partition, then a sort of those), and V, which has at most (k1 + 1) * (round(k1 / 2) + 2) non-zeros per
  row, is held sparse (CSR-style index/value arrays of our own: numpy only, so the torch-free runtime, which does
  not install scipy, can use it);
* the Jaccard distance is only computed for the gallery columns that are returned, query block by query block, from
  the sparse rows (every query weight joined with the gallery weights on the same image, the minimum of each pair
  summed with `np.bincount`).

Memory: besides the inputs and the float32 [Q, G] result, a call needs the [Q+G, max(k1+1, k2)] neighbour table,
the sparse V before and after query expansion (about 8 bytes a non-zero) and one block at a time: about 16 bytes an
entry of a `block_rows` x (Q+G) block of distances, and at most `_PAIR_BUDGET` query-gallery weight pairs of the
Jaccard step, about 50 bytes each. Measured by `benchmarks/rerank.py` (defaults, 2048-d clustered unit features, one
thread; peak resident size over the call, result included): SYSU-MM01 single-shot (3,803 x 301) 18 MB in 0.2 s,
multi-shot (3,803 x 3,010) 84 MB in 0.5 s, LLCM IR->VIS (7,166 x 3,159) 129 MB in 0.9 s, VIS->IR (3,159 x 8,680)
175 MB in 1.5 s. The dense algorithm peaks at 20 (Q+G)^2 bytes (the float32 distances and V, the int64 argsort and
its int32 copy): 321 MB, 885 MB, 2.0 GB and 2.7 GB at those sizes, in 4 to 31 s.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sepgzoo.errors import UserError
from sepgzoo.evaluation.metrics import feature_distance

# Most query-gallery weight pairs the Jaccard step expands at once (about 50 bytes each while a block is summed).
_PAIR_BUDGET = 1 << 20


class _SparseRows(NamedTuple):
    """Rows of a sparse matrix in CSR form: row r holds `data[indptr[r]:indptr[r + 1]]` at columns `indices[...]`."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


def re_ranking(q_g_dist: np.ndarray, q_q_dist: np.ndarray, g_g_dist: np.ndarray, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3, block_rows: int = 256) -> np.ndarray:
    """Re-rank query-gallery distances with k-reciprocal encoding (Zhong et al., CVPR 2017).

    Same algorithm and result as the authors' released `re_ranking` (module docstring): the squared distances are
    scaled by each image's maximum, every image gets a weight vector V over its expanded k-reciprocal neighbours,
    V is averaged over the k2 nearest neighbours (query expansion, when k2 > 1), and the final distance mixes the
    Jaccard distance of the weight vectors with the scaled original distance:
    `(1 - lambda_value) * jaccard + lambda_value * original`.

    Neighbours are ordered by a stable sort (ties broken by the lower index, like `np.argsort(kind="stable")`);
    exact ties may therefore be ordered differently from the released code, which uses numpy's default quicksort.

    Args:
        q_g_dist: [Q, G] query-gallery distances.
        q_q_dist: [Q, Q] query-query distances.
        g_g_dist: [G, G] gallery-gallery distances. Distances are squared in their own (common) dtype, like the
            released code; integer inputs are taken as float64.
        k1: size of the k-reciprocal neighbourhood (>= 1; 20 in the paper).
        k2: neighbours averaged by the query expansion (>= 1; 1 turns it off; 6 in the paper).
        lambda_value: weight of the original distance in [0, 1] (0.3 in the paper).
        block_rows: rows of the (Q+G)-wide distance matrix built at once; bounds the working memory, not the result.

    Returns:
        float32 [Q, G] re-ranked distances (smaller is closer).

    Raises:
        UserError: a distance matrix has the wrong shape or non-finite values, or a parameter is out of range.

    Example:
        >>> q, g = np.array([[0.0], [3.0]]), np.array([[0.1], [2.9], [6.0]])
        >>> d = re_ranking(np.abs(q - g.T), np.abs(q - q.T), np.abs(g - g.T), k1=2, k2=1)
        >>> d.shape, d.dtype.name, d.argmin(axis=1).tolist()
        ((2, 3), 'float32', [0, 1])
    """
    original = _OriginalDistances(*_checked_distances(q_g_dist, q_q_dist, g_g_dist))
    _check_parameters(k1, k2, lambda_value, block_rows)
    lambda_value = float(lambda_value)  # a Python float keeps the float32 arithmetic of the released code
    nearest = _nearest_neighbours(original, max(k1 + 1, k2), block_rows)
    weights = _kreciprocal_weights(original, nearest, k1, block_rows)
    if k2 != 1:
        weights = _query_expansion(weights, nearest[:, :k2], block_rows)
    return _final_distances(original, weights, lambda_value, block_rows)


def rerank_features(query: np.ndarray, gallery: np.ndarray, k1: int = 20, k2: int = 6,
                    lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked query-gallery distances of two feature sets, from their Euclidean distances.

    The three distance matrices (query-gallery, query-query, gallery-gallery) come from
    `sepgzoo.evaluation.metrics.feature_distance`, which L2-normalises the rows first (unit-norm features are
    left as they are), so the ranking before re-ranking is the evaluator's.

    Args:
        query: [Q, D] query features.
        gallery: [G, D] gallery features.
        k1: size of the k-reciprocal neighbourhood.
        k2: neighbours averaged by the query expansion (1 turns it off).
        lambda_value: weight of the original distance in [0, 1].

    Returns:
        float32 [Q, G] re-ranked distances (smaller is closer).

    Raises:
        UserError: the features are not 2-D with the same width, or a parameter is out of range.

    Example:
        >>> d = rerank_features(np.eye(3)[:2], np.eye(3), k1=2, k2=1)
        >>> d.argmin(axis=1).tolist()
        [0, 1]
    """
    query, gallery = np.asarray(query), np.asarray(gallery)
    if query.ndim != 2:
        raise UserError(f"query features must be 2-D [Q, D], got shape {query.shape}")
    if gallery.ndim != 2 or gallery.shape[1] != query.shape[1]:
        raise UserError(f"gallery features have shape {gallery.shape}; expected [G, {query.shape[1]}] like the query")
    _check_parameters(k1, k2, lambda_value, 1)
    return re_ranking(feature_distance(query, gallery), feature_distance(query, query),
                      feature_distance(gallery, gallery), k1=k1, k2=k2, lambda_value=lambda_value)


class _OriginalDistances:
    """The released code's `original_dist`, read in pieces instead of held dense.

    With A = [[q_q, q_g], [q_g^T, g_g]] (an image's distances to all Q+G images in its column), row i is column i
    of A, squared in the input dtype, cast to float32 and divided by its maximum (its `row_max[i]`).
    """

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray):
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.num_query, self.num_gallery = q_g.shape
        self.size = self.num_query + self.num_gallery
        self.row_max = np.empty(self.size, dtype=np.float32)  # filled by `squared_rows` as each block is built

    def squared_rows(self, start: int, stop: int) -> np.ndarray:
        """float32 [stop - start, Q+G] squared distances (unscaled) of images start..stop-1, all queries or all
        gallery; also records their maxima."""
        query = self.num_query
        rows = np.empty((stop - start, self.size), dtype=np.float32)
        if stop <= query:
            rows[:, :query] = np.square(self.q_q[:, start:stop].T)
            rows[:, query:] = np.square(self.q_g[start:stop])
        else:
            rows[:, :query] = np.square(self.q_g[:, start - query:stop - query].T)
            rows[:, query:] = np.square(self.g_g[:, start - query:stop - query].T)
        self.row_max[start:stop] = rows.max(axis=1)
        return rows

    def entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """float32 scaled distances original[rows, cols] (index arrays of equal length; `row_max` must be known)."""
        query = self.num_query
        values = np.empty(len(rows), dtype=self.q_g.dtype)
        row_is_query, col_is_query = rows < query, cols < query
        for pick, matrix, first, second in ((row_is_query & col_is_query, self.q_q, cols, rows),
                                            (row_is_query & ~col_is_query, self.q_g, rows, cols - query),
                                            (~row_is_query & col_is_query, self.q_g, cols, rows - query),
                                            (~row_is_query & ~col_is_query, self.g_g, cols - query, rows - query)):
            values[pick] = matrix[first[pick], second[pick]]
        return np.square(values).astype(np.float32) / self.row_max[rows]

    def query_gallery(self, start: int, stop: int) -> np.ndarray:
        """float32 scaled distances of queries start..stop-1 to every gallery image."""
        return np.square(self.q_g[start:stop]).astype(np.float32) / self.row_max[start:stop, None]


def _row_blocks(num_query: int, size: int, block_rows: int):
    """(start, stop) blocks of at most `block_rows` rows covering 0..size-1, none straddling the query/gallery edge."""
    for first, last in ((0, num_query), (num_query, size)):
        for start in range(first, last, block_rows):
            yield start, min(start + block_rows, last)


def _nearest_neighbours(original: _OriginalDistances, count: int, block_rows: int) -> np.ndarray:
    """int32 [Q+G, min(count, Q+G)]: each image's nearest images by scaled distance, in stable ascending order."""
    count = min(count, original.size)
    nearest = np.empty((original.size, count), dtype=np.int32)
    for start, stop in _row_blocks(original.num_query, original.size, block_rows):
        rows = original.squared_rows(start, stop)
        rows /= original.row_max[start:stop, None]
        nearest[start:stop] = _smallest_stable(rows, count)
    return nearest


def _smallest_stable(rows: np.ndarray, count: int) -> np.ndarray:
    """Column indices of the `count` smallest entries of each row, in the order of a stable sort.

    The entries are non-negative float32 (squares), which order like their bit patterns read as integers; each is
    packed with its column index into one unique uint64 key, so a plain partition and sort of the keys give the
    stable order, ties broken by the lower index.
    """
    keys = rows.view(np.uint32).astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= np.arange(rows.shape[1], dtype=np.uint64)
    if count < rows.shape[1]:
        keys.partition(count - 1, axis=1)
    keys = np.sort(keys[:, :count], axis=1)
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.int32)


def _reciprocal_mask(nearest: np.ndarray, rows: np.ndarray, width: int) -> np.ndarray:
    """bool [len(rows), width]: which of each row's `width` nearest have that row among their own `width` nearest."""
    forward = nearest[rows, :width]
    return (nearest[forward, :width] == rows[:, None, None]).any(axis=2)


def _kreciprocal_weights(original: _OriginalDistances, nearest: np.ndarray, k1: int, block_rows: int) -> _SparseRows:
    """Sparse V: row i holds exp(-original[i, j]) / (their sum) on i's expanded k-reciprocal set E(i).

    E(i) is R(i) = i's k-reciprocal neighbours among its k1 + 1 nearest, plus the half set R(c) (round(k1 / 2) + 1
    nearest) of every candidate c in R(i) that shares more than two thirds of its members with R(i).
    """
    size = original.size
    width, half_width = min(k1 + 1, size), min(int(np.around(k1 / 2)) + 1, size)
    everyone = np.arange(size)
    half_sets = nearest[:, :half_width]
    half_mask = _reciprocal_mask(nearest, everyone, half_width)
    half_sizes = half_mask.sum(axis=1)
    lengths, indices, data = [], [], []
    for start, stop in _row_blocks(original.num_query, size, block_rows):
        rows = everyone[start:stop]
        forward, mask = nearest[rows, :width], _reciprocal_mask(nearest, rows, width)
        candidate_sets, candidate_mask = half_sets[forward], half_mask[forward]  # [rows, width, half_width]
        in_reciprocal = ((candidate_sets[..., None] == forward[:, None, None, :]) & mask[:, None, None, :]).any(axis=3)
        shared = (candidate_mask & in_reciprocal).sum(axis=2)
        accepted = mask & (shared > 2.0 / 3 * half_sizes[forward])
        members = np.concatenate([forward, candidate_sets.reshape(len(rows), -1)], axis=1)
        keep = np.concatenate([mask, (candidate_mask & accepted[..., None]).reshape(len(rows), -1)], axis=1)
        local_rows, cols = _unique_per_row(members, keep, size)
        weights = np.exp(-original.entries(rows[local_rows], cols))
        totals = np.bincount(local_rows, weights=weights, minlength=len(rows)).astype(np.float32)
        lengths.append(np.bincount(local_rows, minlength=len(rows)))
        indices.append(cols)
        data.append(weights / totals[local_rows])
    return _SparseRows(_indptr(np.concatenate(lengths)), np.concatenate(indices).astype(np.int32),
                       np.concatenate(data).astype(np.float32))


def _unique_per_row(members: np.ndarray, keep: np.ndarray, sentinel: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, value) pairs of the distinct kept values of each row, rows in order and values ascending."""
    values = np.where(keep, members, sentinel)
    values.sort(axis=1)
    first = values != sentinel
    first[:, 1:] &= values[:, 1:] != values[:, :-1]
    rows, cols = np.nonzero(first)
    return rows, values[rows, cols]


def _indptr(lengths: np.ndarray) -> np.ndarray:
    """CSR row pointer of rows of the given lengths."""
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _gather(indptr: np.ndarray, selected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the entries of the selected rows of a CSR, and the index in `selected` each belongs to."""
    starts, lengths = indptr[selected], indptr[selected + 1] - indptr[selected]
    owner = np.repeat(np.arange(len(selected)), lengths)
    positions = np.arange(len(owner)) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return owner, positions


def _query_expansion(weights: _SparseRows, neighbours: np.ndarray, block_rows: int) -> _SparseRows:
    """Sparse V_qe: row i is the float32 mean of the V rows of i's k2 nearest images (`neighbours[i]`)."""
    size, count = neighbours.shape
    lengths, indices, data = [], [], []
    for start in range(0, size, block_rows):
        block = neighbours[start:start + block_rows]
        owner, positions = _gather(weights.indptr, block.ravel())
        keys = (owner // count) * size + weights.indices[positions]
        unique_keys, slot = np.unique(keys, return_inverse=True)
        sums = np.bincount(slot, weights=weights.data[positions]).astype(np.float32)
        lengths.append(np.bincount(unique_keys // size, minlength=len(block)))
        indices.append((unique_keys % size).astype(np.int32))
        data.append(sums / np.float32(count))
    return _SparseRows(_indptr(np.concatenate(lengths)), np.concatenate(indices), np.concatenate(data))


def _gallery_columns(weights: _SparseRows, num_query: int) -> _SparseRows:
    """The gallery rows of V by column: entry list k holds (gallery index, weight) of every gallery image with a
    non-zero weight on image k."""
    first = weights.indptr[num_query]
    owner = np.repeat(np.arange(len(weights.indptr) - 1 - num_query), np.diff(weights.indptr[num_query:]))
    cols = weights.indices[first:]
    order = np.argsort(cols, kind="stable")
    lengths = np.bincount(cols, minlength=len(weights.indptr) - 1)
    return _SparseRows(_indptr(lengths), owner[order].astype(np.int32), weights.data[first:][order])


def _final_distances(original: _OriginalDistances, weights: _SparseRows, lambda_value: float,
                     block_rows: int) -> np.ndarray:
    """float32 [Q, G]: (1 - lambda) * Jaccard distance of the V rows + lambda * scaled original distance.

    The Jaccard distance of query i and gallery j is 1 - t / (2 - t), t = sum_k min(V[i, k], V[j, k]); t is summed
    over the images k on which both have weight, per block of queries whose weight pairs fit `_PAIR_BUDGET`.
    """
    num_query, num_gallery = original.num_query, original.num_gallery
    by_column = _gallery_columns(weights, num_query)
    column_lengths = np.diff(by_column.indptr)
    pairs_before = np.concatenate([[0], np.cumsum(column_lengths[weights.indices[:weights.indptr[num_query]]])])
    pairs_per_query = pairs_before[weights.indptr[1:num_query + 1]] - pairs_before[weights.indptr[:num_query]]
    final = np.empty((num_query, num_gallery), dtype=np.float32)
    for start, stop in _pair_blocks(pairs_per_query, block_rows):
        shared = _shared_weight(weights, by_column, start, stop, num_gallery)
        jaccard = 1 - shared / (2 - shared)
        final[start:stop] = jaccard * (1 - lambda_value) + original.query_gallery(start, stop) * lambda_value
    return final


def _pair_blocks(pairs_per_query: np.ndarray, block_rows: int):
    """(start, stop) query blocks of at most `block_rows` queries and (unless one query alone has more) at most
    `_PAIR_BUDGET` weight pairs."""
    cumulative = np.concatenate([[0], np.cumsum(pairs_per_query)])
    start = 0
    while start < len(pairs_per_query):
        fits = int(np.searchsorted(cumulative, cumulative[start] + _PAIR_BUDGET, side="right")) - 1
        stop = min(max(fits, start + 1), start + block_rows)
        yield start, stop
        start = stop


def _shared_weight(weights: _SparseRows, by_column: _SparseRows, start: int, stop: int,
                   num_gallery: int) -> np.ndarray:
    """float32 [stop - start, G]: t[i, j] = sum_k min(V[i, k], V[j, k]) for queries start..stop-1."""
    first, last = weights.indptr[start], weights.indptr[stop]
    query = np.repeat(np.arange(stop - start), np.diff(weights.indptr[start:stop + 1]))
    entry, positions = _gather(by_column.indptr, weights.indices[first:last])
    overlap = np.minimum(weights.data[first:last][entry], by_column.data[positions])
    cells = query[entry] * num_gallery + by_column.indices[positions]
    shared = np.bincount(cells, weights=overlap, minlength=(stop - start) * num_gallery)
    return shared.astype(np.float32).reshape(stop - start, num_gallery)


def _checked_distances(q_g_dist, q_q_dist, g_g_dist) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three distance matrices as arrays of one floating dtype, after checking their shapes and values."""
    q_g, q_q, g_g = np.asarray(q_g_dist), np.asarray(q_q_dist), np.asarray(g_g_dist)
    if q_g.ndim != 2 or 0 in q_g.shape:
        raise UserError(f"q_g_dist must be a non-empty 2-D [Q, G] query-gallery matrix, got shape {q_g.shape}")
    num_query, num_gallery = q_g.shape
    for name, matrix, side, letter in (("q_q_dist", q_q, num_query, "Q"), ("g_g_dist", g_g, num_gallery, "G")):
        if matrix.shape != (side, side):
            raise UserError(f"{name} has shape {matrix.shape}; expected [{letter}, {letter}] = [{side}, {side}] "
                            f"to match q_g_dist {q_g.shape}")
    for name, matrix in (("q_g_dist", q_g), ("q_q_dist", q_q), ("g_g_dist", g_g)):
        if matrix.dtype.kind not in "fiu":
            raise UserError(f"{name} must hold real numbers, got dtype {matrix.dtype}")
        if matrix.dtype.kind == "f" and not np.isfinite(matrix).all():
            raise UserError(f"{name} has NaN or infinite values; expected finite distances")
    dtype = np.result_type(q_g, q_q, g_g)
    dtype = dtype if dtype.kind == "f" else np.dtype(np.float64)
    return q_g.astype(dtype, copy=False), q_q.astype(dtype, copy=False), g_g.astype(dtype, copy=False)


def _check_parameters(k1, k2, lambda_value, block_rows) -> None:
    for name, value in (("k1", k1), ("k2", k2), ("block_rows", block_rows)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise UserError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(lambda_value, bool) or not isinstance(lambda_value, (int, float, np.integer, np.floating)) \
            or not 0.0 <= lambda_value <= 1.0:
        raise UserError(f"lambda_value must be a number in [0, 1], got {lambda_value!r}")
