"""VI-ReID evaluation protocols: the `Protocol` base, shared samplers, building by name, and the trial runner.

A protocol owns fixed query and gallery *pools* (sample lists whose features are extracted once) and,
for each trial t, the indices into those pools that form that trial's queries and gallery. The
metric rule (removal, CMC variant) is named by `protocol.metric` and applied by
`sepgzoo.evaluation.metrics.evaluate`. Each data set's own protocols live in its module (`sysu.py`, `regdb.py`,
`llcm.py`) and are found by name through the registry. Facts: `docs/protocols.md` sections 2.5-2.9, 3.3,
4.3 and 8.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sepgzoo.data.datasets import Sample
from sepgzoo.data.registry import find_protocol
from sepgzoo.data.rules import MetricRule, keep_mask
from sepgzoo.errors import UserError

DISTANCE = "euclidean on L2-normalised features (ranks like cosine similarity)"



@dataclass(frozen=True)
class Trial:
    """Indices into a protocol's query and gallery pools for one trial."""

    query_index: np.ndarray
    gallery_index: np.ndarray


@dataclass
class Protocol:
    """Base of the named protocols.

    Attributes:
        name: e.g. "sysu_all_single", "regdb_v2i", "llcm_i2v".
        metric: metric rule for `sepgzoo.evaluation.metrics.evaluate`: a name of `rules.METRIC_RULES` ("standard",
            "dedup_drop_same_id_same_cam", "dedup_drop_cam2_for_cam3") or a `rules.MetricRule`.
        query: query pool (extract features of every sample once).
        gallery: gallery pool.
        query_modality: modality of the query pool ("visible"/"infrared"): route it through that stem.
        gallery_modality: modality of the gallery pool.
        num_trials: number of trials averaged.
        options: every choice that defines the numbers, recorded with the results.
    """

    name: str
    metric: str | MetricRule
    query: list[Sample]
    gallery: list[Sample]
    query_modality: str
    gallery_modality: str
    num_trials: int = 10
    options: dict = field(default_factory=dict)

    def trial(self, t: int) -> Trial:
        """Query/gallery pool indices of trial `t` (0-based)."""
        raise NotImplementedError

    def query_samples(self, t: int = 0) -> list[Sample]:
        """The queries of trial `t`."""
        return [self.query[i] for i in self.trial(t).query_index]

    def gallery_samples(self, t: int = 0) -> list[Sample]:
        """The gallery of trial `t`."""
        return [self.gallery[i] for i in self.trial(t).gallery_index]

    def _check_trial(self, t: int) -> int:
        if not 0 <= int(t) < self.num_trials:
            raise UserError(f"{self.name}: trial {t} is out of range; expected 0..{self.num_trials - 1}")
        return int(t)


def group_by_id_and_camera(samples: list[Sample]) -> list[list[int]]:
    """Pool indices grouped by (pid, camid), groups in first-appearance order, files in list order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, sample in enumerate(samples):
        groups.setdefault((sample.pid, sample.camid), []).append(index)
    return list(groups.values())


def agw_walk(groups: list[list[int]], trial: int) -> np.ndarray:
    """AGW-family single-shot draw: seed Python's Mersenne Twister with `trial`, then one `choice` per group.

    Groups must be in AGW order (ids ascending, cameras in the protocol order, files sorted; absent
    folders contribute no group and no draw). A private `random.Random(trial)` gives exactly the
    sequence of `random.seed(trial); random.choice(...)` without reseeding the global RNG.
    """
    rng = random.Random(trial)
    return np.array([rng.choice(group) for group in groups if group], dtype=np.int64)


class AllPairsProtocol(Protocol):
    """Every query against the whole gallery, nothing sampled: trial t is the same for every t (use num_trials=1)."""

    def trial(self, t: int) -> Trial:
        self._check_trial(t)
        return Trial(np.arange(len(self.query)), np.arange(len(self.gallery)))


def check_choice(key: str, value: str, allowed) -> None:
    """UserError naming `key` unless `value` is one of `allowed`."""
    if value not in allowed:
        raise UserError(f"{key}={value!r} is not valid; expected one of {list(allowed)}")


#: the eval keys only SYSU-MM01 (and data in its layout) reads
SYSU_ONLY_EVAL_KEYS = ("mode", "shot", "sampler")


def refuse_sysu_only_keys(eval_cfg, title: str) -> None:
    """A data set evaluated by direction (RegDB, LLCM) refuses a SYSU-only eval key set away from its default (the
    `eval` section's own dataclass default), which it would otherwise silently ignore."""
    defaults = type(eval_cfg)()
    for key in SYSU_ONLY_EVAL_KEYS:
        value = getattr(eval_cfg, key)
        if value != getattr(defaults, key):
            raise UserError(f"eval.{key} = {value!r} applies to SYSU-MM01 only; {title} is evaluated by "
                            f"eval.direction (v2i, i2v or both)")


def with_fixed_options(cls: Callable[..., Protocol], **fixed) -> Callable[..., Protocol]:
    """A protocol builder `(dataset, **options)` for a named variant: `fixed` options override the caller's."""
    def build(dataset, **options) -> Protocol:
        return cls(dataset, **{**options, **fixed})
    return build


def build_protocol(name: str, dataset, **options) -> Protocol:
    """A registered protocol by name ("sysu_indoor_single", "regdb_v2i", "llcm_i2v", ...) on a parsed data set.

    Args:
        name: a protocol name of a registered data set (`DatasetSpec.protocols`).
        dataset: the parsed data set; its `.name` must be the data set that owns the protocol.
        **options: protocol options (sampler, deen_compatible, num_trials, ...).

    Example:
        >>> proto = build_protocol("sysu_indoor_single", build_dataset("sysu", root))  # doctest: +SKIP
        >>> len(proto.query), len(proto.gallery_samples(0))  # doctest: +SKIP
        (3803, 112)
    """
    spec, builder = find_protocol(name)
    if getattr(dataset, "name", None) != spec.name:
        raise UserError(f"protocol {name!r} needs a {spec.name!r} dataset, got {getattr(dataset, 'name', dataset)!r}")
    return builder(dataset, **options)


def valid_query_count(protocol: Protocol, t: int = 0) -> int:
    """Queries of trial `t` that keep at least one true match after the removal rule (no features needed)."""
    query, gallery = protocol.query_samples(t), protocol.gallery_samples(t)
    q_pids, g_pids = np.array([s.pid for s in query]), np.array([s.pid for s in gallery])
    keep = keep_mask(protocol.metric, q_pids, g_pids, np.array([s.camid for s in query]),
                     np.array([s.camid for s in gallery]))
    return int(((q_pids[:, None] == g_pids[None, :]) & keep).any(1).sum())
