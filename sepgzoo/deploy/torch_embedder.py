"""A PyTorch model behind the runtimes' interface: uint8 NHWC images in, unit-norm float32 [N, D] out."""

from __future__ import annotations

import numpy as np
import torch

from sepgzoo.deploy.contract import Batching
from sepgzoo.modality import Modality
from sepgzoo.utils.tensors import to_unit_range


class TorchEmbedder(Batching):
    """A checkpoint in PyTorch behind the runtime's interface (uint8 NHWC in, float32 [N, D] out).

    Preprocessing is the exported graph's: the same uint8 images, /255 and NCHW here, the rest in the model.
    """

    provider = "PyTorch"

    def __init__(self, model, modality: Modality, batch_size: int = 32) -> None:
        self.model = model
        self.modality = modality
        self.input_size = tuple(model.input_size)
        self.embedding_dim = int(model.num_features)
        self.max_batch = batch_size

    def _run(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).to(next(self.model.parameters()).device)
        with torch.inference_mode():
            return self.model(to_unit_range(x.permute(0, 3, 1, 2)), modality=self.modality).float().cpu().numpy()
