"""Torch datasets over `Sample` lists: `ImageDataset` (evaluation) and `CrossModalityDataset` (training pairs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from sepgzoo.data.datasets import INFRARED, VISIBLE, Sample, load_image

Transform = Callable[[object], torch.Tensor]
Loader = Callable[[str], object]  # path -> PIL image: `load_image`, or a `ResizedImageCache`


class ImageDataset(Dataset):
    """Images of a sample list: `dataset[i]` -> (image tensor, pid, camid).

    Args:
        samples: the samples, e.g. a protocol's query or gallery list.
        transform: PIL image -> tensor, e.g. `build_test_transform(size)`.
        loader: path -> PIL image (`load_image`, or a `ResizedImageCache` for `data.cache`).

    Example:
        >>> ds = ImageDataset(protocol.query, build_test_transform((288, 144)))  # doctest: +SKIP
    """

    def __init__(self, samples: Sequence[Sample], transform: Transform, loader: Loader = load_image) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.loader = loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        sample = self.samples[index]
        return self.transform(self.loader(sample.path)), sample.pid, sample.camid


class CrossModalityDataset(Dataset):
    """Training pairs: `dataset[(v, i)]` -> (visible image, infrared image, visible label, infrared label).

    Indexed by the `(visible_index, infrared_index)` pairs of `CrossModalitySampler`; a DataLoader with
    that sampler and `batch_size=P*K` collates P*K visible and P*K infrared images in identity-block order.

    Args:
        samples: training samples of both modalities (labels 0..C-1), e.g. `dataset.train`.
        visible_transform: transform for visible images.
        infrared_transform: transform for infrared images (defaults to the visible one).
        loader: path -> PIL image (`load_image`, or a `ResizedImageCache` for `data.cache`).

    Example:
        >>> data = CrossModalityDataset(ds.train, build_train_transform())  # doctest: +SKIP
        >>> sampler = CrossModalitySampler(data.visible_labels, data.infrared_labels, 7, 8)  # doctest: +SKIP
        >>> loader = DataLoader(data, batch_size=56, sampler=sampler)  # doctest: +SKIP
    """

    def __init__(self, samples: Sequence[Sample], visible_transform: Transform,
                 infrared_transform: Transform | None = None, loader: Loader = load_image) -> None:
        self.visible = [s for s in samples if s.modality == VISIBLE]
        self.infrared = [s for s in samples if s.modality == INFRARED]
        self.visible_transform = visible_transform
        self.infrared_transform = infrared_transform or visible_transform
        self.loader = loader

    @property
    def visible_labels(self) -> list[int]:
        """Label of every visible sample, in index order (feed to the sampler)."""
        return [s.pid for s in self.visible]

    @property
    def infrared_labels(self) -> list[int]:
        """Label of every infrared sample, in index order (feed to the sampler)."""
        return [s.pid for s in self.infrared]

    def __len__(self) -> int:
        return max(len(self.visible), len(self.infrared))

    def __getitem__(self, index: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        vis, ir = self.visible[index[0]], self.infrared[index[1]]
        return (self.visible_transform(self.loader(vis.path)), self.infrared_transform(self.loader(ir.path)),
                vis.pid, ir.pid)
