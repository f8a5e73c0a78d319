"""Small building blocks of the SEPG-Net head."""

import torch
from torch import Tensor, nn


class Bottleneck(nn.Module):
    """Linear -> BN -> Dropout feature, plus an optional ID classifier on it (the authors' "ClassBlock").

    Returns (feature, logits); logits is None when the block was built without classes.
    """

    def __init__(self, in_features: int, dim: int = 512, num_classes: int = 0, dropout: float = 0.5) -> None:
        super().__init__()
        self.reduce = nn.Linear(in_features, dim)
        self.bn = nn.BatchNorm1d(dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, num_classes) if num_classes > 0 else None
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.reduce.bias)
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)
            nn.init.zeros_(self.classifier.bias)

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier = nn.Linear(self.bn.num_features, num_classes) if num_classes > 0 else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        feature = self.dropout(self.bn(self.reduce(x)))
        logits = self.classifier(feature) if self.classifier is not None else None
        return feature, logits


def l2_normalise(x: Tensor, dim: int = -1, eps: float = 1e-12) -> Tensor:
    """x / ||x||, written so that ONNX gets a plain ReduceL2 -> Clip -> Div (F.normalize adds Expand nodes)."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(eps)


def spatial_attention(specific: Tensor, size: torch.Size) -> Tensor:
    """Sigmoid of the channel mean of the specific-stage map, resized to the shared map's (H, W) if strides differ."""
    attention = torch.sigmoid(specific.mean(dim=1, keepdim=True))
    if attention.shape[-2:] != size:
        attention = nn.functional.interpolate(attention, size=size, mode="bilinear", align_corners=False)
    return attention
