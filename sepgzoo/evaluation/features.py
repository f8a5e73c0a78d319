"""Embeddings of sample lists through the model, in sample order (flip TTA optional), each image extracted once."""

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from sepgzoo.data.datasets import Sample
from sepgzoo.data.sources import image_loader
from sepgzoo.models.layers import join_parts
from sepgzoo.performance import channels_last_inside, loader_options
from sepgzoo.pipeline.torchdata import ImageDataset
from sepgzoo.pipeline.transforms import build_test_transform


@torch.no_grad()
def extract_features(model: torch.nn.Module, samples: list[Sample], modality: str, batch_size: int = 64,
                     device: torch.device | str = "cpu", flip: bool = False, workers: int = 0,
                     cached: bool = False, channels_last: bool | None = None) -> np.ndarray:
    """Embeddings [N, D] of `samples`, all through the `modality` stem, in sample order.

    Flip test-time augmentation averages each part embedding with that of the mirrored image and
    re-normalises it (the CAJ convention; the SEPG code sums without re-normalising); the result has norm 1
    like every embedding.

    `channels_last` (default: true on a CPU device, where oneDNN ran feature extraction 1.5x faster; on CUDA
    the model and images are left as they are) runs the model in channels_last for this call only
    (`performance.channels_last_inside`), with the same numbers up to float rounding.
    """
    model.eval()
    device = torch.device(device)
    dataset = ImageDataset(samples, build_test_transform(model.input_size), image_loader(cached, model.input_size))
    loader = DataLoader(dataset, batch_size=batch_size, **loader_options(device, workers, persistent=False))
    features = []
    with channels_last_inside(model, device.type == "cpu" if channels_last is None else channels_last) as fmt:
        for images, _, _ in tqdm(loader, desc=f"features ({modality})", leave=False, unit="batch"):
            images = images.to(device, non_blocking=True, memory_format=fmt)
            emb = model(images, modality=modality)
            if flip:
                both = emb + model(images.flip(-1), modality=modality)
                emb = join_parts(both.view(len(both), model.parts, -1).transpose(0, 1))
            features.append(emb.float().cpu().numpy())
    return np.concatenate(features) if features else np.zeros((0, model.num_features), np.float32)
