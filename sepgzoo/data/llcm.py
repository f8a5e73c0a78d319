"""LLCM: reader (as DEEN reads it), the sampled-gallery protocol, known counts. Registered as "llcm".

Facts: `docs/protocols.md` sections 4.1-4.3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sepgzoo.data.datasets import (
    INFRARED,
    VISIBLE,
    Sample,
    check_paired,
    parse_camera,
    read_id_line,
    read_label_list,
    relabel,
    require_dir,
)
from sepgzoo.data.protocols import (
    DISTANCE,
    Protocol,
    Trial,
    agw_walk,
    check_choice,
    group_by_id_and_camera,
    refuse_sysu_only_keys,
    with_fixed_options,
)
from sepgzoo.data.registry import DatasetSpec, count_row, register_dataset
from sepgzoo.preprocess import list_images

#: drop gallery items with the query's identity and camera, identity-deduplicated CMC (`sepgzoo.evaluation.metrics`)
METRIC = "dedup_drop_same_id_same_cam"
#: (quantity, expected, verified) of docs/protocols.md section 4.1
KNOWN_COUNTS = [("train_ids", 713, True)]


class LLCM:
    """LLCM (Zhang & Wang, CVPR 2023; https://github.com/ZYK100/LLCM, on request), as read by DEEN.

    Layout: `idx/train_vis.txt`, `idx/train_nir.txt` (lines `<relative path> <label>`),
    `idx/test_id.txt` (one comma-separated line), `test_vis/cam1..cam9/<PPPP>/...` and
    `test_nir/cam{1,2,4..9}/<PPPP>/...` (`test_nir/cam3` is empty on the real data). 713 training ids.
    Training cameras come from a `cam<N>` path component (0 if absent).

    Args:
        root: dataset root.
        skip_unpaired: drop training ids that have only one modality (logged) instead of raising.
    """

    name = "llcm"
    CAMS = tuple(range(1, 10))
    TEST_FOLDERS = {VISIBLE: "test_vis", INFRARED: "test_nir"}

    def __init__(self, root: str | Path, skip_unpaired: bool = False) -> None:
        self.root = require_dir(Path(root), "LLCM root")
        idx = require_dir(self.root / "idx", "LLCM split folder")
        train = [Sample(str(p), label, parse_camera(p), modality)
                 for name, modality in (("train_vis.txt", VISIBLE), ("train_nir.txt", INFRARED))
                 for p, label in read_label_list(self.root, idx / name)]
        self.train = relabel(check_paired(train, str(idx), skip_unpaired))
        self.test_ids = sorted(read_id_line(idx / "test_id.txt"))
        for folder in self.TEST_FOLDERS.values():
            require_dir(self.root / folder, "LLCM test folder")

    def folder(self, modality: str, pid: int, cam: int) -> list[Path]:
        """Sorted test images of identity `pid` in camera `cam` of a modality."""
        return list_images(self.root / self.TEST_FOLDERS[modality] / f"cam{cam}" / f"{pid:04d}")

    def test_samples(self, modality: str) -> list[Sample]:
        """All test images of a modality: ids ascending, then cams 1..9, files sorted."""
        return [Sample(str(p), pid, cam, modality) for pid in self.test_ids for cam in self.CAMS
                for p in self.folder(modality, pid, cam)]


class LLCMProtocol(Protocol):
    """LLCM: sampled one-image-per-(id, camera) galleries, same-id-same-camera removal, dedup CMC.

    Args:
        dataset: a parsed `LLCM`.
        direction: "i2v" (NIR queries, sampled VIS gallery; DEEN's default) or "v2i".
        deen_compatible: for "v2i", reproduce DEEN's code (docs/protocols.md 4.3): the *sampled NIR* images are
            the queries and the *full VIS* test set the gallery (what published "VIS->IR" numbers measure).
            False gives a true VIS->IR protocol: all VIS queries, sampled NIR gallery.
        num_trials: trials averaged.
    """

    def __init__(self, dataset: LLCM, direction: str = "i2v", deen_compatible: bool = True,
                 num_trials: int = 10) -> None:
        check_choice("direction", direction, ("i2v", "v2i"))
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
        super().__init__(f"llcm_{direction}", METRIC, query, gallery, *modalities, num_trials, options)
        self.groups = group_by_id_and_camera(query if self.sample_queries else gallery)

    def trial(self, t: int) -> Trial:
        t = self._check_trial(t)
        drawn = agw_walk(self.groups, t)
        if self.sample_queries:
            return Trial(drawn, np.arange(len(self.gallery)))
        return Trial(np.arange(len(self.query)), drawn)


PROTOCOLS = {f"llcm_{d}": with_fixed_options(LLCMProtocol, direction=d) for d in ("i2v", "v2i")}


def settings(eval_cfg) -> list[tuple[str, dict]]:
    """What `sepgzoo eval` runs: eval.direction ("both": v2i and i2v), eval.trials sampled galleries each."""
    refuse_sysu_only_keys(eval_cfg, "LLCM")
    directions = ("v2i", "i2v") if eval_cfg.direction == "both" else (eval_cfg.direction,)
    return [(f"llcm_{d}", {"num_trials": eval_cfg.trials}) for d in directions]


def stats_protocol(root: Path, mode: str | None = None, shot: str | None = None, sampler: str | None = None,
                   trial: int | None = None, direction: str | None = None) -> tuple[LLCM, LLCMProtocol, int]:
    """`sepgzoo data stats`: direction default i2v, gallery trial `trial` (default 0)."""
    ds = LLCM(root)
    return ds, LLCMProtocol(ds, direction=direction or "i2v"), trial or 0


def check_counts(root: Path) -> list[dict]:
    """`sepgzoo data check`: the training identities against the release; the other counts as information."""
    ds = LLCM(root)
    found = {"train_ids": len({s.pid for s in ds.train})}
    rows = [count_row(q, expected, found[q], verified) for q, expected, verified in KNOWN_COUNTS]
    rows.append(count_row("train_visible", None, sum(s.modality == VISIBLE for s in ds.train)))
    rows.append(count_row("train_infrared", None, sum(s.modality == INFRARED for s in ds.train)))
    rows.append(count_row("test_ids", None, len(ds.test_ids)))
    for modality in (VISIBLE, INFRARED):
        rows.append(count_row(f"test_{modality}", None, len(ds.test_samples(modality))))
    return rows


def image_files(root: Path) -> list[Path]:
    """`sepgzoo data check`: every image the reader lists: the training lists and both test folders."""
    ds = LLCM(root)
    return [Path(s.path) for s in ds.train + ds.test_samples(VISIBLE) + ds.test_samples(INFRARED)]


register_dataset(DatasetSpec(
    name="llcm", title="LLCM", reader=LLCM, protocols=PROTOCOLS, settings=settings, known_counts=check_counts,
    image_files=image_files, stats_protocol=stats_protocol))
