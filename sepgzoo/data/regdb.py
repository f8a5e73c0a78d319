"""RegDB: reader of the community `idx/` split files, the per-split protocol, known counts. Registered as "regdb".

One model is trained per split (`data.trial`, 1..10) and tested on that split only; the 10 results are
averaged (`sepgzoo eval` with ten `--checkpoint`s). Facts: `docs/protocols.md` sections 3.1-3.3.
"""

from __future__ import annotations

from pathlib import Path

from sepgzoo.data.datasets import INFRARED, VISIBLE, Sample, check_paired, read_label_list, relabel, require_dir
from sepgzoo.data.protocols import DISTANCE, AllPairsProtocol, check_choice, refuse_sysu_only_keys, with_fixed_options
from sepgzoo.data.registry import DatasetSpec, count_row, register_dataset
from sepgzoo.errors import UserError

#: nothing removed, standard image-level CMC (`sepgzoo.data.rules.METRIC_RULES`)
METRIC = "standard"
#: (quantity, expected) per split, docs/protocols.md section 3.2
KNOWN_COUNTS = [("train_ids", 206), ("test_ids", 206), ("train_visible", 2060), ("train_infrared", 2060),
                ("test_visible", 2060), ("test_infrared", 2060)]


class RegDB:
    """RegDB (Nguyen et al., Sensors 2017), read through the community `idx/` split files.

    Layout: `Visible/<pid>/...`, `Thermal/<pid>/...`, `idx/{train,test}_{visible,thermal}_{t}.txt` with
    lines `<relative path> <label>`, t = 1..10. Real data: 412 ids x (10 visible + 10 thermal);
    each split has 206 training ids (2,060 + 2,060 images) and 206 test ids (2,060 + 2,060).
    Identities are the labels of the idx files (training ones relabelled 0..C-1); camera 1 is the
    visible and camera 2 the thermal sensor.

    Args:
        root: dataset root.
        trial: split number 1..10.
        skip_unpaired: drop training ids that have only one modality (logged) instead of raising.
    """

    name = "regdb"
    NUM_TRIALS = 10

    def __init__(self, root: str | Path, trial: int = 1, skip_unpaired: bool = False) -> None:
        self.root = require_dir(Path(root), "RegDB root")
        if not 1 <= int(trial) <= self.NUM_TRIALS:
            raise UserError(f"RegDB trial {trial} is out of range; expected 1..{self.NUM_TRIALS}")
        self.trial = int(trial)
        idx = require_dir(self.root / "idx", "RegDB split folder")
        train = self._read(idx, "train")
        self.train = relabel(check_paired(train, str(idx), skip_unpaired))
        test = self._read(idx, "test")
        self.test_visible = [s for s in test if s.modality == VISIBLE]
        self.test_infrared = [s for s in test if s.modality == INFRARED]

    def _read(self, idx: Path, split: str) -> list[Sample]:
        samples = []
        for word, modality, cam in (("visible", VISIBLE, 1), ("thermal", INFRARED, 2)):
            entries = read_label_list(self.root, idx / f"{split}_{word}_{self.trial}.txt")
            samples += [Sample(str(path), label, cam, modality) for path, label in entries]
        return samples


class RegDBProtocol(AllPairsProtocol):
    """RegDB, one split: every test image of one modality against every test image of the other.

    One model is trained per split and tested on that split only (docs/protocols.md 3.3); average the 10
    splits' results with `average_results`. Standard (image-level) CMC, nothing removed, one trial.

    Args:
        dataset: a parsed `RegDB` (its `trial` is the split).
        direction: "v2i" (visible queries, thermal gallery) or "i2v".
    """

    def __init__(self, dataset: RegDB, direction: str = "v2i") -> None:
        check_choice("direction", direction, ("v2i", "i2v"))
        query, gallery = dataset.test_visible, dataset.test_infrared
        modalities = (VISIBLE, INFRARED)
        if direction == "i2v":
            query, gallery, modalities = gallery, query, (INFRARED, VISIBLE)
        options = {"dataset": "regdb", "split": dataset.trial, "direction": direction, "num_trials": 1,
                   "gallery": "complete", "removal": "none", "cmc": "standard", "distance": DISTANCE}
        super().__init__(f"regdb_{direction}", METRIC, query, gallery, *modalities, 1, options)


PROTOCOLS = {f"regdb_{d}": with_fixed_options(RegDBProtocol, direction=d) for d in ("v2i", "i2v")}


def settings(eval_cfg) -> list[tuple[str, dict]]:
    """What `sepgzoo eval` runs: eval.direction ("both": v2i and i2v) on the recipe's split (one trial each)."""
    refuse_sysu_only_keys(eval_cfg, "RegDB")
    directions = ("v2i", "i2v") if eval_cfg.direction == "both" else (eval_cfg.direction,)
    return [(f"regdb_{d}", {}) for d in directions]


def stats_protocol(root: Path, mode: str | None = None, shot: str | None = None, sampler: str | None = None,
                   trial: int | None = None, direction: str | None = None) -> tuple[RegDB, RegDBProtocol, int]:
    """`sepgzoo data stats`: `trial` is the split (default 1), direction default v2i; one trial (index 0)."""
    ds = RegDB(root, trial=1 if trial is None else trial)
    return ds, RegDBProtocol(ds, direction=direction or "v2i"), 0


def check_counts(root: Path) -> list[dict]:
    """`sepgzoo data check`: the counts of every split against those of the official split files."""
    rows = []
    for split in range(1, RegDB.NUM_TRIALS + 1):
        ds = RegDB(root, trial=split)
        train_ids = {s.pid for s in ds.train}
        found = {"train_ids": len(train_ids), "test_ids": len({s.pid for s in ds.test_visible + ds.test_infrared}),
                 "train_visible": sum(s.modality == VISIBLE for s in ds.train),
                 "train_infrared": sum(s.modality == INFRARED for s in ds.train),
                 "test_visible": len(ds.test_visible), "test_infrared": len(ds.test_infrared)}
        rows += [count_row(f"split {split}: {q}", expected, found[q]) for q, expected in KNOWN_COUNTS]
    return rows


def image_files(root: Path) -> list[Path]:
    """`sepgzoo data check`: every image the split files list, over all ten splits (train and test, visible and
    thermal), each once."""
    paths: dict[str, None] = {}
    for split in range(1, RegDB.NUM_TRIALS + 1):
        ds = RegDB(root, trial=split)
        paths.update(dict.fromkeys(s.path for s in ds.train + ds.test_visible + ds.test_infrared))
    return [Path(p) for p in paths]


register_dataset(DatasetSpec(
    name="regdb", title="RegDB", reader=RegDB, protocols=PROTOCOLS, settings=settings,
    recipe_options=("trial", "skip_unpaired"), split_option="trial", known_counts=check_counts,
    image_files=image_files, stats_protocol=stats_protocol))
