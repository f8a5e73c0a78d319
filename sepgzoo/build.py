"""Recipe sections -> objects: the data set (generating the synthetic one on first use), the model, the loader."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from sepgzoo.config import DataCfg, ModelCfg
from sepgzoo.data.cache import ResizedImageCache
from sepgzoo.data.datasets import INFRARED, VISIBLE, Sample, load_image
from sepgzoo.data.registry import build_dataset, get_dataset
from sepgzoo.data.sampler import CrossModalitySampler
from sepgzoo.data.synthetic import write_synthetic
from sepgzoo.data.torchdata import CrossModalityDataset
from sepgzoo.data.transforms import build_train_transform
from sepgzoo.training.distributed import DistInfo
from sepgzoo.errors import UserError
from sepgzoo.hub.cache import cache_dir
from sepgzoo.hub.factory import create_model


def synthetic_root(cfg: DataCfg, seed: int = 0) -> Path:
    """Where the synthetic data set of this recipe lives (generated there on first use, atomically, in the SYSU
    layout); what `dataset_root` gives for a data set registered with `needs_root=False`."""
    root = Path(cfg.root) if cfg.root else cache_dir() / "synthetic" / f"sysu-ids{cfg.synthetic_ids}-seed{seed}"
    if not (root / "exp").is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
        try:
            write_synthetic("sysu", staging / "data", ids=cfg.synthetic_ids, seed=seed)
            if not (root / "exp").is_dir():  # another process may have finished first
                shutil.rmtree(root, ignore_errors=True)
                os.replace(staging / "data", root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def dataset_root(cfg: DataCfg) -> Path:
    """The data set root of a recipe, with a clear error when it is missing."""
    if not get_dataset(cfg.dataset).needs_root:
        return synthetic_root(cfg)
    if not cfg.root:
        raise UserError(f"data.root is not set: pass --set data.root=/path/to/{cfg.dataset} (see README, Datasets)")
    root = Path(cfg.root)
    if not root.is_dir():
        raise UserError(f"data.root {root} does not exist or is not a folder; expected the {cfg.dataset} data set root")
    return root


def open_dataset(cfg: DataCfg):
    """The parsed data set of a recipe: its registered reader, given the `data.*` keys it takes (`recipe_options`)."""
    spec = get_dataset(cfg.dataset)
    options = {key: getattr(cfg, key) for key in spec.recipe_options}
    return build_dataset(spec.name, dataset_root(cfg), **options)


def image_loader(cached: bool, size: tuple[int, int]):
    """`load_image`, or (`data.cache: true`) a loader that keeps resized copies in the cache folder."""
    return ResizedImageCache(cache_dir() / "resized", size) if cached else load_image


def split_validation(train: list[Sample], val_ids: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out the last `val_ids` training identities as a validation split; relabel the rest 0..C-1."""
    if val_ids <= 0:
        return train, []
    pids = sorted({s.pid for s in train})
    if val_ids >= len(pids) - 1:
        raise UserError(f"data.val_ids={val_ids} leaves no training identities (the data set has {len(pids)})")
    held = set(pids[-val_ids:])
    keep = [s for s in train if s.pid not in held]
    relabel = {pid: i for i, pid in enumerate(sorted({s.pid for s in keep}))}
    return [Sample(s.path, relabel[s.pid], s.camid, s.modality) for s in keep], [s for s in train if s.pid in held]


def num_classes(train: list[Sample]) -> int:
    return len({s.pid for s in train})


def build_model(cfg: ModelCfg, classes: int, input_size: tuple[int, int]) -> torch.nn.Module:
    """The recipe's model; `pretrained: imagenet` lets timm fetch or read its cache, with a clear error otherwise."""
    kwargs = dict(num_classes=classes, split_at=cfg.split_at, parts=cfg.parts, part_dim=cfg.part_dim,
                  dropout=cfg.dropout, seg=cfg.seg, seg_impl=cfg.seg_impl, input_size=input_size,
                  classifier=cfg.classifier, classifier_scale=cfg.classifier_scale, part_norm=cfg.part_norm)
    if cfg.name == "sepg":
        kwargs["backbone"] = cfg.backbone
    pretrained = cfg.pretrained
    if pretrained not in ("imagenet", "none") and not Path(pretrained).is_file():
        raise UserError(f"model.pretrained = {pretrained!r}: expected imagenet, none, or an existing weights file")
    try:
        return create_model(cfg.name, pretrained=pretrained, **kwargs)
    except UserError:
        raise
    except Exception as err:  # network / hub cache errors come in many types
        if pretrained != "imagenet":
            raise
        raise UserError(
            f"could not get timm's ImageNet weights for backbone {cfg.backbone!r} (no internet and not in the "
            f"timm/Hugging Face cache?): {err}. Set model.pretrained to a local weights file or to none."
        ) from err


PREFETCH_BATCHES = 2  # batches each loader worker keeps ready (torch's default, stated here on purpose)


def loader_options(device: torch.device | str, workers: int, persistent: bool = True) -> dict[str, Any]:
    """DataLoader keyword arguments for batches bound for `device`.

    Pinned memory only when the batches go to a CUDA device (a CPU run would only pay one more copy of every
    batch); with worker processes, each keeps `PREFETCH_BATCHES` batches ready and, when `persistent`, the
    workers outlive the epoch (no re-spawn, no re-opened files at every epoch).
    """
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": torch.device(device).type == "cuda"}
    if workers > 0:
        options.update(persistent_workers=persistent, prefetch_factor=PREFETCH_BATCHES)
    return options


def memory_format(channels_last: bool) -> torch.memory_format:
    """The memory format of the model and its input images in training (`train.channels_last`), on every device.

    NHWC convolutions are faster on CUDA (cuDNN, AMP) and on the CPU too (oneDNN): on a 2-core x86 machine a
    sepg_resnet50 training step at 4 x (4 + 4), 288 x 144, took 1.2x less time (README, Performance).
    """
    return torch.channels_last if channels_last else torch.contiguous_format


@contextmanager
def channels_last_inside(model: torch.nn.Module, enabled: bool = True) -> Iterator[torch.memory_format]:
    """The model's 4-D weights in channels_last inside the block, in their own format again after it.

    Yields the memory format to give the input images. A model already in channels_last (a training run's)
    is left alone; one whose weights are in neither format throughout is too (contiguous_format is yielded).
    """
    weights = [t for t in model.parameters() if t.dim() == 4]
    if not enabled or not weights or all(t.is_contiguous(memory_format=torch.channels_last) for t in weights):
        yield memory_format(enabled)
        return
    if not all(t.is_contiguous() for t in weights):
        yield torch.contiguous_format
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield torch.channels_last
    finally:
        model.to(memory_format=torch.contiguous_format)


def compile_model(net: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """`torch.compile(net)` (TorchInductor; a C++ compiler on CPU) when `enabled` (`train.compile`), else `net`.

    The first step pays the compilation (about 1-2 minutes for sepg_resnet50 on 2 CPU cores, cached after);
    the gain on top of channels_last is measured in the README (Performance).
    """
    return torch.compile(net) if enabled else net


def build_train_loader(cfg: DataCfg, train: list[Sample], seed: int, dist_info: DistInfo,
                       steps_per_epoch: int = 0,
                       device: torch.device | str | None = None) -> tuple[DataLoader, CrossModalitySampler]:
    """Loader of P x (K visible + K infrared) batches for `device` (default: cuda when available); each rank
    gets whole identity blocks."""
    size = (cfg.height, cfg.width)
    transform = build_train_transform(size, pad=cfg.pad, flip_p=cfg.flip, erasing_p=cfg.erasing)
    dataset = CrossModalityDataset(train, transform, loader=image_loader(cfg.cache, size))
    if not dataset.visible or not dataset.infrared:
        raise UserError(f"the training set of {cfg.dataset} needs images of both modalities "
                        f"(found {len(dataset.visible)} {VISIBLE}, {len(dataset.infrared)} {INFRARED})")
    sampler = CrossModalitySampler(dataset.visible_labels, dataset.infrared_labels, num_ids=cfg.ids_per_batch,
                                   num_instances=cfg.images_per_id, seed=seed, rank=dist_info.rank,
                                   world_size=dist_info.world_size, steps_per_epoch=steps_per_epoch or None)
    device = device if device is not None else "cuda" if torch.cuda.is_available() else "cpu"
    loader = DataLoader(dataset, batch_size=cfg.ids_per_batch * cfg.images_per_id, sampler=sampler, drop_last=True,
                        **loader_options(device, cfg.workers))
    return loader, sampler
