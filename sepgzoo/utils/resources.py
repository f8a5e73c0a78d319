"""Folders shipped inside the wheel under another name (setuptools `package-dir`: top-level `recipes/` is
`sepgzoo.recipes`, `weights/` is `sepgzoo.weights`), also found when sepgzoo runs from its source tree uninstalled
(e.g. `PYTHONPATH=. python -m sepgzoo` on an offline GPU machine)."""

import importlib.resources
from pathlib import Path


def shipped_folder(package: str, tree_folder: str) -> Path:
    """The installed `package`'s folder, else the source tree's `tree_folder` beside the `sepgzoo/` package."""
    try:
        return Path(str(importlib.resources.files(package)))
    except ModuleNotFoundError:
        tree = Path(__file__).resolve().parents[2] / tree_folder
        if tree.is_dir():
            return tree
        raise
