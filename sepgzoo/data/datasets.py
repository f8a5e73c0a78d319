"""Dataset parsers: SYSU-MM01, RegDB and LLCM on disk -> immutable `Sample` lists; image loading; registry.

Readers parse path *components* (never fixed character offsets) and only list files; images are
decoded on demand by `load_image`, always as 3-channel RGB. Facts: `protocols.md` sections 2-4.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from sepgzoo.errors import UserError
from sepgzoo.modality import Modality, as_modality
from sepgzoo.preprocess import decode_rgb

logger = logging.getLogger(__name__)

VISIBLE = Modality.VISIBLE.value
INFRARED = Modality.INFRARED.value
MODALITIES = (VISIBLE, INFRARED)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Sample:
    """One image: where it is, who it shows, which camera took it and in which modality.

    Attributes:
        path: image file path (absolute or relative to the working directory).
        pid: identity; relabelled 0..C-1 in training lists, the dataset's own id in test lists.
        camid: camera number as named by the dataset (SYSU 1-6, LLCM 1-9, RegDB 1 visible / 2 thermal).
        modality: "visible" or "infrared".
    """

    path: str
    pid: int
    camid: int
    modality: str


def normalize_modality(name: str) -> str:
    """Map "visible"/"infrared" or an accepted alias (rgb, vis, ir, nir, thermal) to the canonical word."""
    return as_modality(name).value


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file as 3-channel RGB (`sepgzoo.preprocess.decode_rgb`; the error names the path)."""
    return decode_rgb(path)


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder sorted by name (an absent folder gives an empty list)."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: p.name)


def require_dir(path: Path, what: str) -> Path:
    """Return `path` if it is a directory, else raise a UserError naming it and what it should hold."""
    if not path.is_dir():
        raise UserError(f"{what} not found: {path} (expected a directory)")
    return path


def read_id_line(path: Path) -> list[int]:
    """Identities of an `*_id.txt` file: the first line, comma-separated integers (SYSU/LLCM format)."""
    if not path.is_file():
        raise UserError(f"identity list not found: {path} (expected one line of comma-separated ids)")
    lines = path.read_text().splitlines()
    tokens = [t.strip() for t in (lines[0] if lines else "").split(",") if t.strip()]
    try:
        ids = [int(t) for t in tokens]
    except ValueError as exc:
        raise UserError(f"{path}: {exc}; expected one line of comma-separated integer ids") from None
    if not ids:
        raise UserError(f"{path} is empty; expected one line of comma-separated integer ids")
    return ids


def read_label_list(root: Path, list_file: Path) -> list[tuple[Path, int]]:
    """Parse `<relative path> <label>` lines (RegDB/LLCM idx format); checks that every file exists."""
    if not list_file.is_file():
        raise UserError(f"list file not found: {list_file} (expected lines '<relative path> <label>')")
    entries = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            raise UserError(f"{list_file}:{number}: {line!r}; expected '<relative path> <integer label>'")
        path = root / parts[0]
        if not path.is_file():
            raise UserError(f"{list_file}:{number}: image {path} does not exist")
        entries.append((path, int(parts[1])))
    if not entries:
        raise UserError(f"{list_file} lists no images; expected lines '<relative path> <label>'")
    return entries


def relabel(samples: list[Sample]) -> list[Sample]:
    """Map identities to 0..C-1 in ascending identity order (the AGW convention on SYSU)."""
    mapping = {pid: label for label, pid in enumerate(sorted({s.pid for s in samples}))}
    return [Sample(s.path, mapping[s.pid], s.camid, s.modality) for s in samples]


def check_paired(samples: list[Sample], where: str, skip_unpaired: bool = False) -> list[Sample]:
    """Make sure every training identity has images in both modalities.

    Args:
        samples: training samples, identities before relabelling.
        where: dataset path named in the error.
        skip_unpaired: drop unpaired identities with a logged warning instead of raising.
    """
    by_modality = {m: {s.pid for s in samples if s.modality == m} for m in MODALITIES}
    unpaired = sorted(by_modality[VISIBLE] ^ by_modality[INFRARED])
    if not unpaired:
        return samples
    detail = ", ".join(f"{pid} (only {VISIBLE if pid in by_modality[VISIBLE] else INFRARED})" for pid in unpaired[:10])
    if not skip_unpaired:
        raise UserError(f"{where}: training identities with images in only one modality: {detail}; "
                        "expected visible and infrared images for every identity (or set data.skip_unpaired=true)")
    logger.warning("%s: skipping training identities with one modality only: %s", where, detail)
    return [s for s in samples if s.pid not in set(unpaired)]


def parse_camera(path: Path) -> int:
    """Camera number from the last path component named `cam<N>` (0 when there is none)."""
    for part in reversed(path.parts[:-1]):
        match = re.fullmatch(r"cam(\d+)", part, flags=re.IGNORECASE)
        if match:
            return int(match.group(1))
    return 0


class SYSUMM01:
    """SYSU-MM01 (Wu et al., ICCV 2017; https://github.com/wuancong/SYSU-MM01), read from the official tree.

    Layout: `cam1..cam6/<PPPP>/<NNNN>.jpg`, `exp/{train,val,test}_id.txt`. Cameras 1, 2, 4, 5 are
    visible, 3 and 6 near-infrared. Training uses train + val identities (395 on the real data,
    relabelled 0..394 in ascending id order): 22,258 visible + 11,909 infrared images (reported).
    Test: 96 ids, 3,803 infrared queries; the gallery is built per trial by `protocols.SYSUProtocol`.

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


DATASETS: dict[str, Callable[..., object]] = {"sysu": SYSUMM01, "regdb": RegDB, "llcm": LLCM}
DATASET_ALIASES = {"sysu_mm01": "sysu", "sysu-mm01": "sysu", "sysumm01": "sysu"}


def register_dataset(name: str, cls: Callable[..., object]) -> None:
    """Add a dataset parser under `name` (it must accept `root` plus its own keyword options)."""
    DATASETS[name] = cls


def dataset_name(name: str) -> str:
    """Canonical registry name for `name` or an alias (sysu_mm01 -> sysu); UserError with suggestions otherwise."""
    key = DATASET_ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        close = difflib.get_close_matches(key, list(DATASETS) + list(DATASET_ALIASES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown dataset {name!r}{hint}; expected one of {sorted(DATASETS)}")
    return key


def build_dataset(name: str, root: str | Path, **options) -> SYSUMM01 | RegDB | LLCM:
    """Parse a dataset by registry name.

    Args:
        name: "sysu" (alias "sysu_mm01"), "regdb" or "llcm".
        root: dataset root directory.
        **options: parser options, e.g. `trial=3` for RegDB, `skip_unpaired=True`.

    Example:
        >>> ds = build_dataset("regdb", "/data/RegDB", trial=1)  # doctest: +SKIP
        >>> len(ds.train), ds.train[0].modality  # doctest: +SKIP
        (4120, 'visible')
    """
    cls = DATASETS[dataset_name(name)]
    accepted = [p for p in inspect.signature(cls).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UserError(f"unknown option(s) {unknown} for dataset {name!r}; expected some of {accepted}")
    return cls(root, **options)
