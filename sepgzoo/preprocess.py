"""The one definition of "image file -> model input", shared by every path that feeds the model.

Training (before augmentation), evaluation, the data cache, `embed`, `search`, `sepgzoo.deploy.runtime` and
the export metadata all call these functions, so the pixels the deployed graph sees are the pixels
`sepgzoo eval` measured. Torch-free: the runtime imports it on machines without PyTorch.

The contract, step by step (also written into model.json, export.json and the ONNX metadata):
1. Decode the file with PIL, turn it upright by its EXIF orientation (as phones, viewers and OpenCV's
   `imread` show it), and convert to 3-channel RGB: a single-channel infrared image becomes grey copied to
   R, G and B; a 16-bit image keeps its 8 most significant bits; a palette image is expanded; alpha and
   CMYK are converted by PIL (alpha dropped).
2. Resize to exactly H x W (no crop, aspect ratio not kept) with PIL `Image.BILINEAR` on the 8-bit
   image: a separable triangle filter on pixel centres whose support widens by the shrink factor
   when shrinking (antialiased), result rounded to uint8.
3. The model (and the exported graph) takes these uint8 RGB pixels; /255, SEG and mean/std happen inside.

Why bilinear: it is the filter every deployment stack has (OpenCV, NPP, DeepStream's scaler, TensorRT's
resize layer), and on enlarging it is the same as OpenCV's INTER_LINEAR. Lanczos (the community's old PIL
`ANTIALIAS`) exists in none of them. What the choice costs in accuracy is measured in docs/preprocessing.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sepgzoo.errors import UserError

RESIZE_FILTER = "bilinear"
_PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Entries of `folder` (and of its subfolders when `recursive`) whose suffix is in `IMAGE_SUFFIXES`, sorted by
    path; an absent folder gives []. Whatever is listed is decoded later, so a broken file or a folder named like
    an image is reported by name there, never skipped in silence."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    entries = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES)


#: PIL modes of more than 8 bits per sample (16-bit PNG/TIFF, e.g. raw thermal frames)
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I")


def decode_rgb(path: str | Path) -> Image.Image:
    """Decode an image file as upright 3-channel RGB (step 1 of the contract).

    Raises:
        UserError: the file is missing, a directory, empty, not an image, corrupt, truncated or larger than
            PIL's decompression-bomb limit; the message names the path.
    """
    if Path(path).is_dir():
        raise UserError(f"cannot decode image {path}: it is a directory, not an image file")
    try:
        with Image.open(path) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return _to_rgb(upright)
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot decode image {path}: {err} (expected a complete JPEG/PNG/BMP file)") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _WIDE_MODES:  # PIL would clip 16-bit values to 255 (a white image); keep the top 8 bits
        wide = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((wide >> 8).clip(0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def resize(image: Image.Image, size: Sequence[int]) -> Image.Image:
    """`image` resized to `size` = (H, W) with the contract's filter (a no-op when it already has that size)."""
    height, width = int(size[0]), int(size[1])
    if image.size == (width, height):
        return image
    return image.resize((width, height), _PIL_FILTERS[RESIZE_FILTER])


def resize_step(size: Sequence[int]):
    """The first step of every pipeline (also what `data.cache` stores): PIL image -> PIL image at `size`."""
    return partial(resize, size=tuple(size))


def load_input(path: str | Path, size: Sequence[int]) -> np.ndarray:
    """One image file as the model input: uint8 RGB [H, W, 3].

    Example:
        >>> load_input("person.jpg", (288, 144)).shape  # doctest: +SKIP
        (288, 144, 3)
    """
    return np.array(resize(decode_rgb(path), size), dtype=np.uint8)  # a writable copy


def load_inputs(paths: Sequence[str | Path], size: Sequence[int]) -> np.ndarray:
    """Image files as one uint8 batch [N, H, W, 3]."""
    if not paths:
        return np.zeros((0, int(size[0]), int(size[1]), 3), dtype=np.uint8)
    return np.stack([load_input(p, size) for p in paths])


def contract(size: Sequence[int]) -> dict[str, Any]:
    """The contract as a JSON-able record, for model.json, export.json and the ONNX metadata."""
    return {
        "decode": "PIL; EXIF orientation applied; converted to RGB: grey copied to 3 channels, 16-bit samples keep "
                  "their 8 most significant bits, palettes expanded, alpha dropped",
        "resize": {"filter": RESIZE_FILTER, "implementation": "PIL Image.resize(Image.BILINEAR) on uint8 RGB",
                   "antialias": "support widens by the shrink factor when shrinking",
                   "height": int(size[0]), "width": int(size[1]), "crop": "none", "keep_aspect": False},
        "input": "uint8 RGB, HWC; /255, SEG and mean/std are inside the model",
    }
