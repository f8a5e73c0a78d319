"""SYSU-MM01 (and the generated `synthetic` data set, read in its layout): reader, protocols, known counts.

Registered as "sysu" (aliases sysu_mm01, sysu-mm01, sysumm01) and "synthetic". Facts: `docs/protocols.md`
sections 2.1-2.9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sepgzoo.data.datasets import (
    INFRARED,
    VISIBLE,
    Sample,
    check_no_leak,
    check_paired,
    read_id_line,
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
    valid_query_count,
    with_fixed_options,
)
from sepgzoo.data.registry import DatasetSpec, count_row, register_dataset
from sepgzoo.errors import UserError
from sepgzoo.preprocess import list_images

#: removal of cam-2 gallery items for cam-3 queries, identity-deduplicated CMC (`sepgzoo.data.rules.METRIC_RULES`)
METRIC = "dedup_drop_cam2_for_cam3"
#: (quantity, expected, verified) of docs/protocols.md section 2.3
KNOWN_COUNTS = [("train_ids", 395, True), ("train_visible", 22258, False), ("train_infrared", 11909, False),
                ("test_ids", 96, True), ("query", 3803, True), ("gallery_all_single", 301, True),
                ("gallery_all_multi", 3010, True), ("gallery_indoor_single", 112, True),
                ("gallery_indoor_multi", 1120, True), ("valid_queries_all", 3803, True),
                ("valid_queries_indoor", 2208, True)]


class SYSUMM01:
    """SYSU-MM01 (Wu et al., ICCV 2017; https://github.com/wuancong/SYSU-MM01), read from the official tree.

    Layout: `cam1..cam6/<PPPP>/<NNNN>.jpg`, `exp/{train,val,test}_id.txt`. Cameras 1, 2, 4, 5 are
    visible, 3 and 6 near-infrared. Training uses train + val identities (395 on the real data,
    relabelled 0..394 in ascending id order): 22,258 visible + 11,909 infrared images (reported).
    Test: 96 ids, 3,803 infrared queries; the gallery is built per trial by `SYSUProtocol`.

    Args:
        root: dataset root (the folder holding cam1..cam6 and exp/).
        skip_unpaired: drop training ids that have only one modality (logged) instead of raising.
    """

    name = "sysu"
    VISIBLE_CAMS = (1, 2, 4, 5)
    INFRARED_CAMS = (3, 6)

    def __init__(self, root: str | Path, skip_unpaired: bool = False) -> None:
        self.root = require_dir(Path(root), "SYSU-MM01 root")
        exp = require_dir(self.root / "exp", "SYSU-MM01 split folder")
        self.train_ids = read_id_line(exp / "train_id.txt")
        self.val_ids = read_id_line(exp / "val_id.txt")
        self.test_ids = sorted(read_id_line(exp / "test_id.txt"))
        check_no_leak(self.train_ids + self.val_ids, self.test_ids, f"{exp / 'train_id.txt'} / val_id.txt",
                      str(exp / "test_id.txt"))
        for cam in self.VISIBLE_CAMS + self.INFRARED_CAMS:
            require_dir(self.root / f"cam{cam}", "SYSU-MM01 camera folder")
        train = self._collect(sorted(set(self.train_ids) | set(self.val_ids)))
        self.train = relabel(check_paired(train, str(self.root), skip_unpaired))

    @staticmethod
    def modality_of(cam: int) -> str:
        """SYSU cameras 3 and 6 are infrared, the others visible."""
        return INFRARED if cam in SYSUMM01.INFRARED_CAMS else VISIBLE

    def folder(self, pid: int, cam: int) -> list[Path]:
        """Sorted image files of identity `pid` in camera `cam` (empty when the person is not in that camera)."""
        return list_images(self.root / f"cam{cam}" / f"{pid:04d}")

    def samples(self, pids: list[int], cams: tuple[int, ...]) -> list[Sample]:
        """Samples for ids (in the given order) x cams (in the given order), files sorted; original ids kept."""
        return [Sample(str(p), pid, cam, self.modality_of(cam)) for pid in pids for cam in cams
                for p in self.folder(pid, cam)]

    def _collect(self, pids: list[int]) -> list[Sample]:
        return self.samples(pids, self.VISIBLE_CAMS) + self.samples(pids, self.INFRARED_CAMS)

    @property
    def query(self) -> list[Sample]:
        """Every infrared test image (cams 3 then 6 per id, ids ascending), used by both search modes."""
        return self.samples(self.test_ids, self.INFRARED_CAMS)


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
    metric rule "dedup_drop_cam2_for_cam3". Real data: 3,803 queries; gallery 301 / 3,010 (all) and
    112 / 1,120 (indoor); valid queries 3,803 (all) and 2,208 (indoor).
    """

    GALLERY_CAMS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
    SHOTS = {"single": 1, "multi": 10}

    def __init__(self, dataset: SYSUMM01, mode: str = "all", shot: str = "single", sampler: str = "agw",
                 num_trials: int = 10) -> None:
        check_choice("mode", mode, self.GALLERY_CAMS)
        check_choice("shot", shot, self.SHOTS)
        check_choice("sampler", sampler, ("agw", "official"))
        if sampler == "agw" and shot != "single":
            raise UserError("the 'agw' gallery sampler is single-shot only (as in the AGW code); "
                            "use sampler='official' (needs exp/rand_perm_cam.mat) for multi-shot")
        gallery = dataset.samples(dataset.test_ids, self.GALLERY_CAMS[mode])
        options = {"dataset": "sysu", "mode": mode, "shot": shot, "sampler": sampler, "num_trials": num_trials,
                   "trials": f"0..{num_trials - 1}", "removal": "cam-3 queries ignore cam-2 gallery images",
                   "cmc": "identity-deduplicated", "distance": DISTANCE}
        super().__init__(f"sysu_{mode}_{shot}", METRIC, dataset.query, gallery, INFRARED, VISIBLE, num_trials,
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


#: named protocols: sysu_{all,indoor}_{single,multi}
PROTOCOLS = {f"sysu_{m}_{s}": with_fixed_options(SYSUProtocol, mode=m, shot=s)
             for m in SYSUProtocol.GALLERY_CAMS for s in SYSUProtocol.SHOTS}


def settings(eval_cfg) -> list[tuple[str, dict]]:
    """What `sepgzoo eval` runs: eval.mode ("both": all and indoor) x eval.shot, with eval.sampler and eval.trials.

    SYSU-MM01 is evaluated infrared -> visible only: eval.direction v2i is refused (both and i2v mean i2v).
    """
    if eval_cfg.direction == "v2i":
        raise UserError("eval.direction = 'v2i': SYSU-MM01 is evaluated infrared -> visible only (i2v, or both)")
    modes = ("all", "indoor") if eval_cfg.mode == "both" else (eval_cfg.mode,)
    return [(f"sysu_{m}_{eval_cfg.shot}", {"sampler": eval_cfg.sampler, "num_trials": eval_cfg.trials}) for m in modes]


def stats_protocol(root: Path, mode: str = "all", shot: str = "single", sampler: str | None = None,
                   trial: int | None = None, direction: str | None = None) -> tuple[SYSUMM01, SYSUProtocol, int]:
    """`sepgzoo data stats`: the chosen search mode and shots; sampler agw (single-shot) or official (multi-shot)."""
    if direction not in (None, "i2v"):
        raise UserError(f"--direction {direction}: SYSU-MM01 is evaluated infrared -> visible only (i2v)")
    ds = SYSUMM01(root)
    sampler = sampler or ("agw" if shot == "single" else "official")
    return ds, SYSUProtocol(ds, mode=mode, shot=shot, sampler=sampler), trial or 0


def check_counts(root: Path) -> list[dict]:
    """`sepgzoo data check`: the counts of a copy against those of the official release (docs/protocols.md 2.3)."""
    ds = SYSUMM01(root)
    found = {"train_ids": len({s.pid for s in ds.train}), "test_ids": len(ds.test_ids), "query": len(ds.query),
             "train_visible": sum(s.modality == VISIBLE for s in ds.train),
             "train_infrared": sum(s.modality == INFRARED for s in ds.train)}
    for mode in ("all", "indoor"):
        protocol = SYSUProtocol(ds, mode=mode, shot="single", sampler="agw", num_trials=1)
        sizes = [len(group) for group in protocol.groups]
        found[f"gallery_{mode}_single"] = len(sizes)
        found[f"gallery_{mode}_multi"] = sum(min(n, 10) for n in sizes)
        found[f"valid_queries_{mode}"] = valid_query_count(protocol, 0)
    rows = [count_row(q, expected, found[q], verified) for q, expected, verified in KNOWN_COUNTS]
    has_perm = (Path(root) / "exp" / "rand_perm_cam.mat").is_file()
    return rows + [count_row("exp/rand_perm_cam.mat present (official sampler)", None, int(has_perm))]


def image_files(root: Path) -> list[Path]:
    """`sepgzoo data check`: every image the reader lists, training (train + val ids) and test, all six cameras."""
    ds = SYSUMM01(root)
    pids = sorted(set(ds.train_ids) | set(ds.val_ids) | set(ds.test_ids))
    return [Path(s.path) for s in ds.samples(pids, SYSUMM01.VISIBLE_CAMS + SYSUMM01.INFRARED_CAMS)]


register_dataset(DatasetSpec(
    name="sysu", title="SYSU-MM01", reader=SYSUMM01, protocols=PROTOCOLS, settings=settings,
    aliases=("sysu_mm01", "sysu-mm01", "sysumm01"), known_counts=check_counts, image_files=image_files,
    stats_protocol=stats_protocol))
# generated SYSU-layout data (sepgzoo.data.synthetic, written by sepgzoo.data.sources.synthetic_root): read and evaluated
# exactly as SYSU-MM01, so its protocols are the "sysu_*" ones
register_dataset(DatasetSpec(
    name="synthetic", title="synthetic (SYSU-MM01 layout)", reader=SYSUMM01, protocols={}, settings=settings,
    stats_protocol=stats_protocol, needs_root=False))
