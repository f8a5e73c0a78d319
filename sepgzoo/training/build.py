"""Recipe sections -> training objects: the validation split, the model, the loader of P x (K + K) batches."""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sepgzoo.config import DataCfg, ModelCfg
from sepgzoo.data.datasets import INFRARED, VISIBLE, Sample
from sepgzoo.data.sources import image_loader
from sepgzoo.errors import UserError
from sepgzoo.hub.factory import create_model
from sepgzoo.performance import loader_options
from sepgzoo.pipeline.sampler import CrossModalitySampler
from sepgzoo.pipeline.torchdata import CrossModalityDataset
from sepgzoo.pipeline.transforms import build_train_transform
from sepgzoo.training.distributed import DistInfo


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
