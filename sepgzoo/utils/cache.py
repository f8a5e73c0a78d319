"""sepgzoo's cache folder (synthetic data sets, zoo folders, resized images)."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """$SEPGZOO_CACHE, else ~/.cache/sepgzoo."""
    return Path(os.environ.get("SEPGZOO_CACHE", Path.home() / ".cache" / "sepgzoo"))
