"""Named VI-ReID evaluation protocols: query/gallery pools, per-trial galleries, and the trial runner.

A protocol owns fixed query and gallery *pools* (sample lists whose features are extracted once) and,
for each trial t, the indices into those pools that form that trial's queries and gallery. The
metric rules (removal, CMC variant) are named by `protocol.metric` and applied by
`sepgzoo.metrics.evaluate`. Facts: `protocols.md` sections 2.5-2.9, 3.3, 4.3 and 8.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sepgzoo.data.datasets import INFRARED, LLCM, VISIBLE, RegDB, Sample, SYSUMM01
from sepgzoo.errors import UserError
from sepgzoo.metrics import evaluate, feature_distance, keep_mask

DISTANCE = "euclidean on L2-normalised features (ranks like cosine similarity)"
REPORTED_RANKS = (1, 5, 10, 20)


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
        metric: metric protocol for `sepgzoo.metrics.evaluate` ("sysu", "regdb" or "llcm").
        query: query pool (extract features of every sample once).
        gallery: gallery pool.
        query_modality: modality of the query pool ("visible"/"infrared"): route it through that stem.
        gallery_modality: modality of the gallery pool.
        num_trials: number of trials averaged.
        options: every choice that defines the numbers, recorded with the results.
    """

    name: str
    metric: str
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


class SYSUProtocol(Protocol):
    """SYSU-MM01: infrared queries (cams 3, 6) against a per-trial visible gallery.

    Args:
        dataset: a parsed `SYSUMM01`.
        mode: "all" (gallery cams 1, 2, 4, 5) or "indoor" (cams 1, 2).
        shot: "single" (1 image per (id, cam) per trial) or "multi" (10).
        sampler: "agw" (Python `random.seed(t)` walk of the AGW family, single-shot only; comparable with
            AGW/DDAG/CAJ/DEEN/SEPG numbers) or "official" (`<root>/exp/rand_perm_cam.mat`, the dataset
            authors' permutations, as the MATLAB evaluator and MPANet).
        num_trials: trials averaged (10 in every reference).

    The removal rule (a cam-3 query ignores cam-2 gallery items) and the deduplicated CMC are those of
    metric protocol "sysu". Real data: 3,803 queries; gallery 301 / 3,010 (all) and 112 / 1,120 (indoor);
    valid queries 3,803 (all) and 2,208 (indoor).
    """

    GALLERY_CAMS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
    SHOTS = {"single": 1, "multi": 10}

    def __init__(self, dataset: SYSUMM01, mode: str = "all", shot: str = "single", sampler: str = "agw",
                 num_trials: int = 10) -> None:
        _check_choice("mode", mode, self.GALLERY_CAMS)
        _check_choice("shot", shot, self.SHOTS)
        _check_choice("sampler", sampler, ("agw", "official"))
        if sampler == "agw" and shot != "single":
            raise UserError("the 'agw' gallery sampler is single-shot only (as in the AGW code); "
                            "use sampler='official' (needs exp/rand_perm_cam.mat) for multi-shot")
        gallery = dataset.samples(dataset.test_ids, self.GALLERY_CAMS[mode])
        options = {"dataset": "sysu", "mode": mode, "shot": shot, "sampler": sampler, "num_trials": num_trials,
                   "trials": f"0..{num_trials - 1}", "removal": "cam-3 queries ignore cam-2 gallery images",
                   "cmc": "identity-deduplicated", "distance": DISTANCE}
        super().__init__(f"sysu_{mode}_{shot}", "sysu", dataset.query, gallery, INFRARED, VISIBLE, num_trials,
                         options)
        self.sampler, self.shots = sampler, self.SHOTS[shot]
        self.groups = group_by_id_and_camera(gallery)
        self.perms = load_rand_perm(Path(dataset.root) / "exp" / "rand_perm_cam.mat") if sampler == "official" else None

    def trial(self, t: int) -> Trial:
        t = self._check_trial(t)
        if self.sampler == "agw":
            gallery_index = agw_walk(self.groups, t)
        else:
            gallery_index = self._official(t)
        return Trial(np.arange(len(self.query)), gallery_index)

    def _official(self, t: int) -> np.ndarray:
        chosen = []
        for group in self.groups:
            sample = self.gallery[group[0]]
            by_number = {_image_number(self.gallery[i].path): i for i in group}
            perm = self.perms.get((sample.camid, sample.pid))
            if perm is None or perm.shape[0] <= t:
                raise UserError(f"rand_perm_cam.mat has no trial-{t} permutation for camera {sample.camid}, "
                                f"identity {sample.pid}; expected a {self.num_trials} x n array")
            for number in perm[t, :self.shots]:
                if int(number) not in by_number:
                    raise UserError(f"rand_perm_cam.mat selects image {int(number):04d} of "
                                    f"cam{sample.camid}/{sample.pid:04d}, which is not on disk")
                chosen.append(by_number[int(number)])
        return np.array(chosen, dtype=np.int64)


def _image_number(path: str) -> int:
    stem = Path(path).stem
    if not stem.isdigit():
        raise UserError(f"image {path}: the official sampler expects names like 0001.jpg")
    return int(stem)


def load_rand_perm(path: Path) -> dict[tuple[int, int], np.ndarray]:
    """Read the official `rand_perm_cam.mat`: (camera, identity) -> [trials, n] array of 1-based image numbers.

    The file holds a 6-cell array (one per camera) of per-identity cells, identity p at position p-1;
    row t of an identity's array is trial t's permutation; absent identities have empty arrays.
    """
    if not path.is_file():
        raise UserError(f"{path} not found; the 'official' SYSU sampler needs the dataset's rand_perm_cam.mat "
                        "(evaluation/data_split/ of github.com/wuancong/SYSU-MM01) copied to <root>/exp/")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise UserError("reading rand_perm_cam.mat needs scipy: pip install scipy") from None
    mat = loadmat(str(path))
    keys = [k for k in mat if not k.startswith("__")]
    key = "rand_perm_cam" if "rand_perm_cam" in mat else (keys[0] if keys else None)
    cams = _unwrap(mat[key]).reshape(-1) if key else np.empty(0)
    if len(cams) != 6:
        raise UserError(f"{path}: expected a 6-cell array 'rand_perm_cam' (one cell per camera), got {len(cams)}")
    perms = {}
    for cam, cell in enumerate(cams, start=1):
        for position, perm in enumerate(_unwrap(cell).reshape(-1), start=1):
            perm = np.atleast_2d(np.asarray(_unwrap(perm), dtype=np.int64))
            if perm.size:
                perms[(cam, position)] = perm
    return perms


def _unwrap(value: object) -> np.ndarray:
    """Strip MATLAB cell nesting of size 1."""
    value = np.asarray(value)
    while value.dtype == object and value.size == 1:
        value = np.asarray(value.reshape(-1)[0])
    return value


class RegDBProtocol(Protocol):
    """RegDB, one split: every test image of one modality against every test image of the other.

    One model is trained per split and tested on that split only (protocols.md 3.3); average the 10
    splits' results with `average_results`. Standard (image-level) CMC, nothing removed, one trial.

    Args:
        dataset: a parsed `RegDB` (its `trial` is the split).
        direction: "v2i" (visible queries, thermal gallery) or "i2v".
    """

    def __init__(self, dataset: RegDB, direction: str = "v2i") -> None:
        _check_choice("direction", direction, ("v2i", "i2v"))
        query, gallery = dataset.test_visible, dataset.test_infrared
        modalities = (VISIBLE, INFRARED)
        if direction == "i2v":
            query, gallery, modalities = gallery, query, (INFRARED, VISIBLE)
        options = {"dataset": "regdb", "split": dataset.trial, "direction": direction, "num_trials": 1,
                   "gallery": "complete", "removal": "none", "cmc": "standard", "distance": DISTANCE}
        super().__init__(f"regdb_{direction}", "regdb", query, gallery, *modalities, 1, options)

    def trial(self, t: int) -> Trial:
        self._check_trial(t)
        return Trial(np.arange(len(self.query)), np.arange(len(self.gallery)))


class LLCMProtocol(Protocol):
    """LLCM: sampled one-image-per-(id, camera) galleries, same-id-same-camera removal, dedup CMC.

    Args:
        dataset: a parsed `LLCM`.
        direction: "i2v" (NIR queries, sampled VIS gallery; DEEN's default) or "v2i".
        deen_compatible: for "v2i", reproduce DEEN's code (protocols.md 4.3): the *sampled NIR* images are
            the queries and the *full VIS* test set the gallery (what published "VIS->IR" numbers measure).
            False gives a true VIS->IR protocol: all VIS queries, sampled NIR gallery.
        num_trials: trials averaged.
    """

    def __init__(self, dataset: LLCM, direction: str = "i2v", deen_compatible: bool = True,
                 num_trials: int = 10) -> None:
        _check_choice("direction", direction, ("i2v", "v2i"))
        visible, infrared = dataset.test_samples(VISIBLE), dataset.test_samples(INFRARED)
        self.sample_queries = direction == "v2i" and deen_compatible
        if direction == "i2v" or self.sample_queries:
            query, gallery, modalities = infrared, visible, (INFRARED, VISIBLE)
        else:
            query, gallery, modalities = visible, infrared, (VISIBLE, INFRARED)
        sampled = "query (DEEN transposition)" if self.sample_queries else "gallery"
        options = {"dataset": "llcm", "direction": direction, "deen_compatible": bool(deen_compatible),
                   "num_trials": num_trials, "sampled": f"one {sampled} image per (id, camera), random.seed(t)",
                   "removal": "same identity and same camera", "cmc": "identity-deduplicated",
                   "distance": DISTANCE}
        super().__init__(f"llcm_{direction}", "llcm", query, gallery, *modalities, num_trials, options)
        self.groups = group_by_id_and_camera(query if self.sample_queries else gallery)

    def trial(self, t: int) -> Trial:
        t = self._check_trial(t)
        drawn = agw_walk(self.groups, t)
        if self.sample_queries:
            return Trial(drawn, np.arange(len(self.gallery)))
        return Trial(np.arange(len(self.query)), drawn)


def _check_choice(key: str, value: str, allowed) -> None:
    if value not in allowed:
        raise UserError(f"{key}={value!r} is not valid; expected one of {list(allowed)}")


#: named protocols -> (dataset, fixed options)
PROTOCOLS: dict[str, tuple[str, dict]] = {
    **{f"sysu_{m}_{s}": ("sysu", {"mode": m, "shot": s}) for m in ("all", "indoor") for s in ("single", "multi")},
    "regdb_v2i": ("regdb", {"direction": "v2i"}), "regdb_i2v": ("regdb", {"direction": "i2v"}),
    "llcm_i2v": ("llcm", {"direction": "i2v"}), "llcm_v2i": ("llcm", {"direction": "v2i"}),
}
_CLASSES = {"sysu": SYSUProtocol, "regdb": RegDBProtocol, "llcm": LLCMProtocol}


def build_protocol(name: str, dataset: SYSUMM01 | RegDB | LLCM, **options) -> Protocol:
    """A protocol by name ("sysu", "regdb", "llcm" or a named variant like "sysu_indoor_single").

    Args:
        name: dataset name or a key of `PROTOCOLS`.
        dataset: the parsed dataset.
        **options: protocol options (mode, shot, sampler, direction, deen_compatible, num_trials).

    Example:
        >>> proto = build_protocol("sysu_indoor_single", build_dataset("sysu", root))  # doctest: +SKIP
        >>> len(proto.query), len(proto.gallery_samples(0))  # doctest: +SKIP
        (3803, 112)
    """
    base, fixed = PROTOCOLS.get(name, (name, {}))
    if base not in _CLASSES:
        raise UserError(f"unknown protocol {name!r}; expected one of {sorted(_CLASSES) + sorted(PROTOCOLS)}")
    if getattr(dataset, "name", None) != base:
        raise UserError(f"protocol {name!r} needs a {base!r} dataset, got {getattr(dataset, 'name', dataset)!r}")
    return _CLASSES[base](dataset, **{**options, **fixed})


def run_trials(protocol: Protocol, query_features: np.ndarray, gallery_features: np.ndarray,
               trials: list[int] | None = None, max_rank: int = 20) -> dict:
    """Evaluate every trial of a protocol and average CMC, mAP and mINP over trials.

    Args:
        protocol: the protocol.
        query_features: [len(protocol.query), D] features of the whole query pool, in pool order.
        gallery_features: [len(protocol.gallery), D] features of the whole gallery pool.
        trials: trial numbers to run (default: all); e.g. [0] for quick in-training checks.
        max_rank: CMC length (at least 20 so R20 can be reported).

    Returns:
        dict with "protocol", "R1", "R5", "R10", "R20", "mAP", "mINP" (fractions, trial means), "cmc" (mean
        curve as a list), "num_valid_queries" (rounded trial mean), "num_query"/"num_gallery" (trial 0),
        "trials", "per_trial" and "options" (the protocol's options plus `evaluated_trials`).

    Example:
        >>> result = run_trials(proto, qf, gf)  # doctest: +SKIP
        >>> round(100 * result["R1"], 2), result["options"]["sampler"]  # doctest: +SKIP
    """
    query_features, gallery_features = np.asarray(query_features), np.asarray(gallery_features)
    pools = (("query", query_features, protocol.query), ("gallery", gallery_features, protocol.gallery))
    for what, feats, pool in pools:
        if feats.ndim != 2 or len(feats) != len(pool):
            raise UserError(f"{protocol.name}: {what} features have shape {feats.shape}; expected [{len(pool)}, D]")
    trials = list(range(protocol.num_trials)) if trials is None else [int(t) for t in trials]
    per_trial = [_one_trial(protocol, t, query_features, gallery_features, max(max_rank, 20)) for t in trials]
    return average_results(per_trial, protocol.name, {**protocol.options, "evaluated_trials": trials})


def _one_trial(protocol: Protocol, t: int, query_features: np.ndarray, gallery_features: np.ndarray,
               max_rank: int) -> dict:
    split = protocol.trial(t)
    query = [protocol.query[i] for i in split.query_index]
    gallery = [protocol.gallery[i] for i in split.gallery_index]
    distmat = feature_distance(query_features[split.query_index], gallery_features[split.gallery_index])
    result = evaluate(distmat, np.array([s.pid for s in query]), np.array([s.pid for s in gallery]),
                      np.array([s.camid for s in query]), np.array([s.camid for s in gallery]),
                      protocol=protocol.metric, max_rank=max_rank)
    return {"trial": t, "cmc": result["cmc"].tolist(), "mAP": result["mAP"], "mINP": result["mINP"],
            "num_valid_queries": result["num_valid_queries"], "num_query": len(query), "num_gallery": len(gallery),
            **{f"R{k}": float(result["cmc"][k - 1]) for k in REPORTED_RANKS}}


def average_results(per_trial: list[dict], name: str, options: dict) -> dict:
    """Arithmetic mean of per-trial (or, for RegDB, per-split) results: the community's reported figure."""
    if not per_trial:
        raise UserError(f"{name}: no trials to average")
    cmc = np.mean([r["cmc"] for r in per_trial], axis=0)
    mean = {key: float(np.mean([r[key] for r in per_trial])) for key in ("mAP", "mINP")}
    return {"protocol": name, **{f"R{k}": float(cmc[k - 1]) for k in REPORTED_RANKS}, **mean,
            "cmc": cmc.tolist(), "num_valid_queries": int(round(np.mean([r["num_valid_queries"] for r in per_trial]))),
            "num_query": per_trial[0]["num_query"], "num_gallery": per_trial[0]["num_gallery"],
            "trials": [r.get("trial") for r in per_trial], "per_trial": per_trial, "options": options}


def valid_query_count(protocol: Protocol, t: int = 0) -> int:
    """Queries of trial `t` that keep at least one true match after the removal rule (no features needed)."""
    query, gallery = protocol.query_samples(t), protocol.gallery_samples(t)
    q_pids, g_pids = np.array([s.pid for s in query]), np.array([s.pid for s in gallery])
    keep = keep_mask(protocol.metric, q_pids, g_pids, np.array([s.camid for s in query]),
                     np.array([s.camid for s in gallery]))
    return int(((q_pids[:, None] == g_pids[None, :]) & keep).any(1).sum())
