"""Cross-modality identity sampler: batch composition, identity-block order, epoch length, DDP sharding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sepgzoo.errors import UserError
from sepgzoo.pipeline.sampler import CrossModalitySampler


def labels(num_ids: int, per_id_vis: int, per_id_ir: int, seed: int = 0) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    vis = [i for i in range(num_ids) for _ in range(per_id_vis)]
    ir = [i for i in range(num_ids) for _ in range(per_id_ir)]
    return list(rng.permutation(vis)), list(rng.permutation(ir))


def batches(sampler: CrossModalitySampler, batch: int) -> list[list[tuple[int, int]]]:
    pairs = list(sampler)
    assert len(pairs) == len(sampler) and len(pairs) % batch == 0
    return [pairs[i:i + batch] for i in range(0, len(pairs), batch)]


def test_batch_composition_and_identity_block_order():
    vis, ir = labels(20, 6, 3)
    p, k = 4, 5
    sampler = CrossModalitySampler(vis, ir, num_ids=p, num_instances=k, seed=3)
    for batch in batches(sampler, p * k):
        vis_labels = [vis[v] for v, _ in batch]
        ir_labels = [ir[i] for _, i in batch]
        assert vis_labels == ir_labels  # each pair is one identity
        blocks = [vis_labels[j * k:(j + 1) * k] for j in range(p)]
        assert all(len(set(b)) == 1 for b in blocks)  # K consecutive pairs per identity
        assert len({b[0] for b in blocks}) == p  # P distinct identities
        # visible draws are without replacement (6 >= K); infrared (3 < K) with replacement
        for j in range(p):
            assert len({v for v, _ in batch[j * k:(j + 1) * k]}) == k


def test_epoch_length():
    vis, ir = labels(10, 7, 4)  # N = max(70, 40) = 70
    sampler = CrossModalitySampler(vis, ir, num_ids=2, num_instances=4)
    assert sampler.steps == math.ceil(70 / 8) == 9 and len(sampler) == 72
    assert CrossModalitySampler(vis, ir, 2, 4, world_size=2, rank=1).steps == math.ceil(70 / 16)
    assert CrossModalitySampler(vis, ir, 2, 4, steps_per_epoch=3).steps == 3
    assert math.ceil(22258 / 56) == math.floor(22258 / 56) + 1 == 398  # SYSU, P=7, K=8: AGW's 398


def test_deterministic_and_epoch_dependent():
    vis, ir = labels(12, 5, 5)
    a = CrossModalitySampler(vis, ir, 3, 2, seed=7)
    b = CrossModalitySampler(vis, ir, 3, 2, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)


def test_ranks_get_whole_blocks_and_distinct_identities():
    vis, ir = labels(16, 4, 4)
    p, k, world = 3, 2, 2
    per_rank = [batches(CrossModalitySampler(vis, ir, p, k, seed=1, rank=r, world_size=world), p * k)
                for r in range(world)]
    single = CrossModalitySampler(vis, ir, p, k, seed=1)
    assert len(per_rank[0]) == len(per_rank[1])
    for step in zip(*per_rank):
        ids = [[vis[v] for v, _ in batch] for batch in step]
        for rank_ids in ids:
            assert all(len(set(rank_ids[j * k:(j + 1) * k])) == 1 for j in range(p))
        assert not set(ids[0]) & set(ids[1])  # no identity on two ranks in the same step
    assert single.steps >= per_rank[0].__len__()


def test_bad_configurations():
    with pytest.raises(UserError, match=r"labels \[2\] occur in only one modality"):
        CrossModalitySampler([0, 1, 2], [0, 1], 1, 1)
    with pytest.raises(UserError, match="need 6 distinct identities"):
        CrossModalitySampler([0, 1, 2], [0, 1, 2], num_ids=3, num_instances=1, world_size=2)
    with pytest.raises(UserError, match="rank 2"):
        CrossModalitySampler([0, 1], [0, 1], 1, 1, rank=2, world_size=2)
