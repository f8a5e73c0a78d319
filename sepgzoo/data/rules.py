"""How a protocol scores a ranked list: which gallery items a query is not ranked against (removal) and how its
CMC counts (image-level or identity-deduplicated). Part of each protocol's definition; the scoring itself is
`sepgzoo.evaluation.metrics`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sepgzoo.errors import UserError

#: gallery removal rules: which gallery items a query is not ranked against
REMOVALS = {
    "none": "nothing removed",
    "same_id_same_cam": "items with the query's identity and camera",
    "cam2_for_cam3": "every camera-2 item, of any identity, for a camera-3 query",
}
#: CMC variants: "standard" (image-level rank of the first true match) or "dedup" (rank among distinct identities)
CMC_VARIANTS = ("standard", "dedup")


@dataclass(frozen=True)
class MetricRule:
    """How a ranked list is scored: a removal rule (a key of `REMOVALS`) and a CMC variant (`CMC_VARIANTS`)."""

    removal: str
    cmc: str

    def __post_init__(self) -> None:
        if self.removal not in REMOVALS or self.cmc not in CMC_VARIANTS:
            raise UserError(f"metric rule {self}: expected removal in {sorted(REMOVALS)} "
                            f"and cmc in {list(CMC_VARIANTS)}")


#: metric rules named by what they do. See docs/protocols.md sections 2.7, 3.3, 4.3 and 7.5.
METRIC_RULES: dict[str, MetricRule] = {
    "standard": MetricRule("none", "standard"),  # RegDB; held-out validation identities
    "dedup_drop_same_id_same_cam": MetricRule("same_id_same_cam", "dedup"),  # LLCM
    "dedup_drop_cam2_for_cam3": MetricRule("cam2_for_cam3", "dedup"),  # SYSU-MM01
}


def metric_rule(rule: str | MetricRule) -> MetricRule:
    """A `MetricRule` from itself or a name of `METRIC_RULES`; UserError otherwise."""
    if isinstance(rule, MetricRule):
        return rule
    name = rule
    if name not in METRIC_RULES:
        raise UserError(f"unknown metric rule {rule!r}; expected one of {sorted(METRIC_RULES)} or a MetricRule")
    return METRIC_RULES[name]


def keep_mask(rule: str | MetricRule, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
              g_camids: np.ndarray) -> np.ndarray:
    """Which gallery items each query may be ranked against, after the metric rule's removal.

    Args:
        rule: a metric rule (a name of `METRIC_RULES` or a `MetricRule`); its removal is "cam2_for_cam3"
            (a camera-3 query ignores every camera-2 gallery item, of any identity), "same_id_same_cam"
            (drop items with the query's identity and camera) or "none" (keep everything).
        q_pids, g_pids, q_camids, g_camids: 1-D identity and camera arrays.

    Returns:
        bool [Q, G] array, True = kept.
    """
    removal = metric_rule(rule).removal
    shape = (len(q_pids), len(g_pids))
    if removal == "cam2_for_cam3":
        return ~((np.asarray(q_camids)[:, None] == 3) & (np.asarray(g_camids)[None, :] == 2))
    if removal == "same_id_same_cam":
        same_id = np.asarray(q_pids)[:, None] == np.asarray(g_pids)[None, :]
        return ~(same_id & (np.asarray(q_camids)[:, None] == np.asarray(g_camids)[None, :]))
    return np.ones(shape, dtype=bool)
