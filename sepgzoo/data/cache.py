"""Optional on-disk cache of resized images (`data.cache: true`): decode and resize each image once.

Each image is stored as a uint8 [H, W, 3] `.npy`, keyed by its path, size on disk, modification
time, the target size and the resize filter, so an edited or replaced image is resized again. The cached
array is exactly what the transforms' first step (`sepgzoo.preprocess.resize`) produces, so training and
evaluation give the same tensors with and without the cache.
"""

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from sepgzoo.data.datasets import load_image
from sepgzoo.preprocess import RESIZE_FILTER, resize_step
from sepgzoo.utils.atomic import atomic_path


class ResizedImageCache:
    """A loader (`path -> PIL image` at (H, W)) backed by a folder of resized arrays.

    Example:
        >>> loader = ResizedImageCache("~/.cache/sepgzoo/resized", (288, 144))  # doctest: +SKIP
        >>> ImageDataset(samples, build_test_transform((288, 144)), loader=loader)  # doctest: +SKIP
    """

    def __init__(self, folder: str | Path, size: tuple[int, int]) -> None:
        self.folder = Path(folder).expanduser() / f"{size[0]}x{size[1]}"
        self.size = (int(size[0]), int(size[1]))
        self.resize = resize_step(self.size)

    def entry(self, path: str | Path) -> Path:
        stat = Path(path).stat()
        key = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.size}|{RESIZE_FILTER}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npy"

    def __call__(self, path: str | Path) -> Image.Image:
        entry = self.entry(path) if Path(path).exists() else None
        if entry is not None and entry.is_file():
            try:
                return Image.fromarray(np.load(entry))
            except (OSError, ValueError):
                pass  # a damaged entry is rebuilt below
        image = self.resize(load_image(path))  # names the path when the image is missing or corrupt
        if entry is not None:
            with atomic_path(entry) as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, np.asarray(image))
        return image
