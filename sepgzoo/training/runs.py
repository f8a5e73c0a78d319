"""Run directories: the resolved recipe, `last.pt` (full training state), the model files, logs and metrics.

A run directory holds `recipe.yaml`, `last.pt`, `model.safetensors` + `model.json`, `log.csv` and
`metrics.json`. Every file is written atomically, so killing the process at any moment leaves the
last complete checkpoint loadable. `last.pt` holds only tensors and plain Python values, so it loads
with `torch.load(path, weights_only=True)`.
"""

import csv
import io
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from sepgzoo.errors import UserError
from sepgzoo.hub.checkpoint import save_torch
from sepgzoo.training.distributed import DistInfo
from sepgzoo.utils.atomic import write_text

STATE_NAME = "last.pt"
STATE_FORMAT = "sepgzoo-train-state/2"
# /1 saved one "rng" dict (rank 0's, with every local GPU's CUDA state); /2 saves a list with one dict per rank.
READABLE_FORMATS = ("sepgzoo-train-state/1", STATE_FORMAT)


def run_dir_path(recipe_name: str, output: str | Path | None) -> Path:
    """`--output DIR`, or runs/<recipe>-<timestamp>."""
    return Path(output) if output else Path("runs") / f"{recipe_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_new_run_dir(path: Path) -> None:
    """Refuse, before anything is built or written, a run folder that is a file, is not empty, or cannot be
    created (the nearest existing folder above it is not writable). Creates nothing."""
    if path.exists() and not path.is_dir():
        raise UserError(f"output {path} is a file; expected a folder for the run (choose another --output)")
    if path.exists() and any(path.iterdir()):
        raise UserError(
            f"output folder {path} is not empty; choose another --output or continue it with --resume {path}"
        )
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot create the run folder {path}: {existing} is not a writable folder; "
                        "choose another --output")


def new_run_dir(path: Path) -> Path:
    """Create a checked run folder (`check_new_run_dir`); an existing non-empty folder is never overwritten."""
    check_new_run_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the run folder {path}: {err.strerror}; choose another --output") from None
    return path


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """This process's RNGs as tensors and plain values (safe for weights_only loading).

    CUDA: only the current device's generator, the one this rank trains on.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda is None or not torch.cuda.is_available():
        return
    if isinstance(cuda, (list, tuple)):  # format /1: one state per GPU of the machine that saved it
        device = torch.cuda.current_device()
        cuda = cuda[device] if device < len(cuda) else None
    if cuda is not None:
        torch.cuda.set_rng_state(cuda)


def gather_rng_states(info: DistInfo) -> list[dict[str, Any]] | None:
    """Every rank's `rng_state()` in rank order, on rank 0 (None on other ranks); a collective under DDP."""
    own = rng_state()
    if not info.enabled:
        return [own]
    states = [None] * info.world_size if info.is_main else None
    dist.gather_object(own, states, dst=0)
    return states


def restore_rng_state(saved: dict[str, Any] | list[dict[str, Any]], info: DistInfo, seed: int, epoch: int) -> bool:
    """Give this rank back its own saved RNG streams; returns False when it reseeded instead.

    The streams are per rank, so they only fit a run with the same world size. Otherwise every rank
    reseeds from (seed, rank, epoch): deterministic, but not the streams an uninterrupted run would use.
    """
    states = saved if isinstance(saved, list) else [saved]  # format /1 holds rank 0's streams only
    if len(states) == info.world_size:
        set_rng_state(states[info.rank])
        return True
    if info.is_main:
        warnings.warn(f"the training state holds the RNG streams of {len(states)} process(es) but this run has "
                      f"{info.world_size}: every rank reseeds from (train.seed, rank, epoch) instead, so the data "
                      f"order differs from an uninterrupted run", stacklevel=2)
    seed_everything(reseed_value(seed, info.rank, epoch))
    return False


def reseed_value(seed: int, rank: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed % 2**32, rank, epoch]).generate_state(1)[0])


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    save_torch(run_dir / STATE_NAME, {"format": STATE_FORMAT, **state})


def load_state(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(run directory, training state) from `--resume DIR|FILE`, with errors that name the file."""
    path = Path(path)
    file = path / STATE_NAME if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"cannot resume: {file} does not exist (expected a run folder with {STATE_NAME})")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"cannot resume: {file} is not a readable training state ({err})") from err
    if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
        raise UserError(f"cannot resume: {file} is not a sepgzoo training state (expected format {STATE_FORMAT})")
    return file.parent, state


class CsvLog:
    """Per-epoch CSV log, rewritten atomically with every row (columns grow as new keys appear)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.is_file():
            self.rows = list(csv.DictReader(path.read_text().splitlines()))

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, buffer.getvalue())
