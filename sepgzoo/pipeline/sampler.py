"""Cross-modality identity sampler: P identities x (K visible + K infrared) per batch, DDP-aware.

The sampler yields `(visible_index, infrared_index)` pairs; `CrossModalityDataset` turns each pair into
one visible and one infrared image of the same identity, so a DataLoader with `batch_size=P*K` gives
P*K visible + P*K infrared images per step, in identity-block order (K consecutive pairs per id).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from sepgzoo.errors import UserError


def index_by_label(labels: Sequence[int]) -> dict[int, np.ndarray]:
    """Positions of every label in `labels`."""
    labels = np.asarray(labels)
    return {int(label): np.flatnonzero(labels == label) for label in np.unique(labels)}


class CrossModalitySampler(Sampler[tuple[int, int]]):
    """Identity-balanced sampler over paired visible/infrared training lists.

    Every step draws `world_size * num_ids` distinct identities (uniformly, without replacement,
    independently per step, so over an epoch identities repeat, as in AGW); rank r keeps identities
    `r*P .. r*P+P-1` of that draw, so each rank gets whole identity blocks and no identity is on two
    ranks in the same step. For each identity it draws K visible and K infrared indices, without
    replacement when the identity has at least K images of that modality, else with replacement.

    Epoch length: `steps = ceil(N / (world_size * P * K))` with N = max(#visible, #infrared), so one
    epoch shows about N pairs in total across ranks. On one process this equals AGW's
    `floor(N / (P*K)) + 1` unless N is a multiple of P*K (SYSU, P=7, K=8: 398 steps). `steps_per_epoch`
    overrides it. `len(sampler)` = steps * P * K pairs on this rank.

    The draw is a pure function of (seed, epoch): all ranks compute the same global draw and call
    `set_epoch(epoch)` before each epoch, like `DistributedSampler`.

    Args:
        visible_labels: label of every visible training sample (0..C-1 or any ints).
        infrared_labels: label of every infrared training sample; every label must occur in both.
        num_ids: P, identities per batch (per rank).
        num_instances: K, images per identity per modality.
        seed: base seed.
        rank: this process's rank.
        world_size: number of processes.
        steps_per_epoch: fixed number of steps instead of the default length.

    Example:
        >>> sampler = CrossModalitySampler([0, 0, 1, 1], [0, 1, 1, 0], num_ids=2, num_instances=2)
        >>> len(sampler), next(iter(sampler))[0] in (0, 1, 2, 3)
        (4, True)
    """

    def __init__(self, visible_labels: Sequence[int], infrared_labels: Sequence[int], num_ids: int = 8,
                 num_instances: int = 4, seed: int = 0, rank: int = 0, world_size: int = 1,
                 steps_per_epoch: int | None = None) -> None:
        self.visible = index_by_label(visible_labels)
        self.infrared = index_by_label(infrared_labels)
        unpaired = sorted(set(self.visible) ^ set(self.infrared))
        if unpaired:
            raise UserError(f"labels {unpaired[:10]} occur in only one modality; expected every label in both")
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is outside 0..{world_size - 1}")
        if num_ids < 1 or num_instances < 1:
            raise UserError(f"num_ids={num_ids} and num_instances={num_instances}; expected both >= 1")
        if world_size * num_ids > len(self.visible):
            raise UserError(f"{world_size} rank(s) x {num_ids} ids per batch need {world_size * num_ids} distinct "
                            f"identities per step; the training set has {len(self.visible)}")
        self.labels = np.array(sorted(self.visible))
        self.num_ids, self.num_instances = num_ids, num_instances
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        total = max(len(visible_labels), len(infrared_labels))
        self.steps = steps_per_epoch or max(1, -(-total // (world_size * num_ids * num_instances)))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draw the next iteration yields (call on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps * self.num_ids * self.num_instances

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(self.steps):
            # the whole global draw is made on every rank so the shared RNG stays in step
            chosen = rng.choice(self.labels, size=self.world_size * self.num_ids, replace=False)
            blocks = [(self._draw(rng, self.visible[c]), self._draw(rng, self.infrared[c])) for c in chosen]
            for vis, ir in blocks[self.rank * self.num_ids:(self.rank + 1) * self.num_ids]:
                yield from zip(vis.tolist(), ir.tolist())

    def _draw(self, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
        return rng.choice(pool, size=self.num_instances, replace=len(pool) < self.num_instances)
