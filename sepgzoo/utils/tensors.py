"""uint8 pixels -> float: the one conversion every path uses (training, evaluation, the exported graphs)."""

import torch


def to_unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] as x / 255: the one conversion (the exported graph divides the same way)."""
    return pixels.to(torch.float32) / 255.0
