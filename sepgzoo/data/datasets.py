"""What every data set reader shares: the immutable `Sample`, image loading, and list/split-file helpers.

The readers themselves live one per data set (`sysu.py`, `regdb.py`, `llcm.py`, registered in
`registry.py`). They parse path *components* (never fixed character offsets) and only list files; images
are decoded on demand by `load_image`, always as 3-channel RGB. Facts: `docs/protocols.md` sections 2-4.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sepgzoo.errors import UserError
from sepgzoo.modality import MODALITIES
from sepgzoo.preprocess import decode_rgb

logger = logging.getLogger(__name__)

VISIBLE, INFRARED = MODALITIES


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


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file as 3-channel RGB (`sepgzoo.preprocess.decode_rgb`; the error names the path)."""
    return decode_rgb(path)


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
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise UserError(f"{path} lists identities {repeated} more than once; expected each id once")
    return ids


def check_no_leak(train_ids: list[int], test_ids: list[int], train_where: str, test_where: str) -> None:
    """Refuse identities listed for training and for testing alike: the results would test on training people."""
    leaked = sorted(set(train_ids) & set(test_ids))
    if leaked:
        raise UserError(f"identities {leaked[:10]}{' ...' if len(leaked) > 10 else ''} are listed in {train_where} "
                        f"and in {test_where}: a test identity must never be trained on; fix the lists")


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
