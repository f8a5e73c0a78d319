"""Shared, session-cached artifacts for the deployment tests: one tiny checkpoint, exported once (fp32 + fp16).

Imported by test_export.py, test_runtime.py and test_deploy_cli.py; the export runs at most once per
session whichever of them runs first (each export of the tiny model takes seconds on a CPU).
"""

from pathlib import Path

import numpy as np
from PIL import Image

MAX_BATCH = 4
_CACHE: dict[tuple[str, Path], object] = {}  # (artifact, root) -> value: another root never gets this one


def tiny_checkpoint(root: Path) -> Path:
    """A saved `test_sepg` (64 x 32, random weights) with a recipe in model.json."""
    if ("checkpoint", root) not in _CACHE:
        import torch

        from sepgzoo.hub.checkpoint import save_model
        from sepgzoo.hub.factory import create_model

        torch.manual_seed(0)
        directory = root / "run"
        save_model(directory, create_model("test_sepg", num_classes=4), recipe={"model": {"name": "test_sepg"}})
        _CACHE[("checkpoint", root)] = directory
    return _CACHE[("checkpoint", root)]


def exported(root: Path) -> Path:
    """`sepgzoo export --fp16 --max-batch 4` of the tiny checkpoint, run through the click command once."""
    if ("export", root) not in _CACHE:
        from click.testing import CliRunner

        from sepgzoo.cli import main

        out = root / "export"
        result = CliRunner().invoke(main, ["export", "--checkpoint", str(tiny_checkpoint(root)), "--output", str(out),
                                             "--fp16", "--max-batch", str(MAX_BATCH)])
        assert result.exit_code == 0, result.output
        _CACHE[("export", root)] = out
        _CACHE[("export_output", root)] = result.output
    return _CACHE[("export", root)]


def export_output(root: Path) -> str:
    """What `sepgzoo export` printed when `exported(root)` ran."""
    return str(_CACHE.get(("export_output", root), ""))


def write_images(directory: Path, count: int, size=(40, 20), seed: int = 0, grey: bool = False) -> list[Path]:
    """Small JPEG/PNG images of random colours (a different size from the model's, so resizing is exercised)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        array = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        image = Image.fromarray(array).convert("L") if grey else Image.fromarray(array)
        path = directory / f"img_{i:02d}.{'png' if i % 2 else 'jpg'}"
        image.save(path)
        paths.append(path)
    return paths
