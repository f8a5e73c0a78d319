"""A recipe's `data` section -> the data set on disk: its root (generating the synthetic one on first use), the
parsed data set through its registered reader, and the image loader (optionally the resized-image cache).

`cfg` is a `sepgzoo.config.DataCfg` (not imported here: the recipe schema itself reads the data set registry).
"""

from pathlib import Path

from sepgzoo.data.cache import ResizedImageCache
from sepgzoo.data.datasets import load_image
from sepgzoo.data.registry import build_dataset, get_dataset
from sepgzoo.data.synthetic import write_synthetic
from sepgzoo.errors import UserError
from sepgzoo.utils.atomic import staging_folder
from sepgzoo.utils.cache import cache_dir


def synthetic_root(cfg, seed: int = 0) -> Path:
    """Where the synthetic data set of this recipe lives (generated there on first use, atomically, in the SYSU
    layout); what `dataset_root` gives for a data set registered with `needs_root=False`."""
    root = Path(cfg.root) if cfg.root else cache_dir() / "synthetic" / f"sysu-ids{cfg.synthetic_ids}-seed{seed}"
    if not (root / "exp").is_dir():
        with staging_folder(root) as staging:
            write_synthetic("sysu", staging, ids=cfg.synthetic_ids, seed=seed)
    return root


def dataset_root(cfg) -> Path:
    """The data set root of a recipe, with a clear error when it is missing."""
    if not get_dataset(cfg.dataset).needs_root:
        return synthetic_root(cfg)
    if not cfg.root:
        raise UserError(f"data.root is not set: pass --set data.root=/path/to/{cfg.dataset} (see docs/datasets.md)")
    root = Path(cfg.root)
    if not root.is_dir():
        raise UserError(f"data.root {root} does not exist or is not a folder; expected the {cfg.dataset} data set root")
    return root


def open_dataset(cfg):
    """The parsed data set of a recipe: its registered reader, given the `data.*` keys it takes (`recipe_options`)."""
    spec = get_dataset(cfg.dataset)
    options = {key: getattr(cfg, key) for key in spec.recipe_options}
    return build_dataset(spec.name, dataset_root(cfg), **options)


def image_loader(cached: bool, size: tuple[int, int]):
    """`load_image`, or (`data.cache: true`) a loader that keeps resized copies in the cache folder."""
    return ResizedImageCache(cache_dir() / "resized", size) if cached else load_image
