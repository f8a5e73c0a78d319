"""Run directories: the resolved recipe, `last.pt` (full training state), the model files, logs and metrics.

A run directory holds `recipe.yaml`, `last.pt`, `model.safetensors` + `model.json`, `log.csv` and
`metrics.json`. Every file is written atomically, so killing the process at any moment leaves the
last complete checkpoint loadable. `last.pt` holds only tensors and plain Python values, so it loads
with `torch.load(path, weights_only=True)`.
"""

import csv
import io
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sepgzoo.atomic import write_text
from sepgzoo.checkpoint import save_torch
from sepgzoo.errors import UserError

STATE_NAME = "last.pt"
STATE_FORMAT = "sepgzoo-train-state/1"


def new_run_dir(recipe_name: str, output: str | Path | None) -> Path:
    """`--output DIR`, or runs/<recipe>-<timestamp>; an existing non-empty folder is never overwritten."""
    path = Path(output) if output else Path("runs") / f"{recipe_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if path.exists() and any(path.iterdir()):
        raise UserError(
            f"output folder {path} is not empty; choose another --output or continue it with --resume {path}"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop uses, as tensors and plain values (safe for weights_only loading)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
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
