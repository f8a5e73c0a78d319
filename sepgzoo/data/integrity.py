"""Decode every image of a data set once, in parallel. `sepgzoo data check` runs this after comparing the counts.

Without this check, a truncated JPEG or a file that is not an image only shows up mid-training, in a data-loader
worker. The decoder is the pipelines' own (`sepgzoo.preprocess.decode_rgb`), so a file that decodes here also
decodes in training and evaluation. Threads are enough for the parallelism: Pillow releases the GIL while it
decodes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from sepgzoo.errors import UserError
from sepgzoo.preprocess import decode_rgb


def decode_problem(path: str | Path) -> str | None:
    """Why `path` cannot be decoded as training and evaluation decode it, or None if it can."""
    try:
        decode_rgb(path)
    except UserError as err:
        # decode_rgb names the path; the caller reports (path, reason), so the reason drops it
        return str(err).removeprefix(f"cannot decode image {path}: ")
    return None


def unreadable_images(paths: Sequence[str | Path], workers: int | None = None,
                      progress: bool = True) -> list[tuple[str, str]]:
    """Decode every image in `paths` in parallel and return (path, reason) for each one that fails, in input order.

    Args:
        paths: image files, e.g. a data set's `DatasetSpec.image_files(root)`.
        workers: decoding threads (default: one per CPU core).
        progress: show a tqdm progress bar on stderr.

    Example:
        >>> unreadable_images(get_dataset("sysu").image_files(root))  # doctest: +SKIP
        [('/data/SYSU-MM01/cam1/0016/0001.jpg', 'image file is truncated (...) (expected a complete ...)')]
    """
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        reasons = list(tqdm(pool.map(decode_problem, paths), total=len(paths), desc="decoding images", unit="img",
                            disable=not progress, leave=False))
    return [(str(path), reason) for path, reason in zip(paths, reasons) if reason is not None]
