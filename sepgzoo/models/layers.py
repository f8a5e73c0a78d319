"""Small building blocks of the SEPG-Net head."""

import math
from typing import Literal

import torch
from torch import Tensor, nn

ClassifierKind = Literal["linear", "cosine"]


class CosineClassifier(nn.Module):
    """logits = scale * cos(feature, class weight): the step a batch takes in logit space no longer grows with
    the feature norm (sqrt(dim) after BatchNorm) nor with the weight norm."""

    def __init__(self, dim: int, num_classes: int, scale: float = 16.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        self.scale = scale
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every class starts from one shared direction (plus 1e-3 noise), so the untrained classifier predicts
        uniformly (cross-entropy ln C), as a near-zero Linear does; independent random rows would start at
        about ln C + scale^2 / (2 dim), above a uniform guess."""
        shared = torch.randn(1, self.weight.shape[1])
        with torch.no_grad():
            self.weight.copy_(shared / shared.norm() + 1e-3 * torch.randn_like(self.weight))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * l2_normalise(x) @ l2_normalise(self.weight).t()


def make_classifier(kind: ClassifierKind, dim: int, num_classes: int, scale: float) -> nn.Module | None:
    """The ID classifier of a bottleneck (None without classes): a plain Linear (bias, std 0.001) or cosine."""
    if num_classes <= 0:
        return None
    if kind == "cosine":
        return CosineClassifier(dim, num_classes, scale)
    linear = nn.Linear(dim, num_classes)
    nn.init.normal_(linear.weight, std=0.001)
    nn.init.zeros_(linear.bias)
    return linear


class ModalityBatchNorm1d(nn.Module):
    """BatchNorm with one affine transform and one set of running statistics per modality.

    In training each modality's batch is normalised with its own statistics; in evaluation with its own
    running statistics: what the network was trained on is what it is tested on.
    """

    def __init__(self, dim: int, modalities: tuple[str, ...], momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.momentum, self.eps = momentum, eps
        for name in modalities:
            self.register_buffer(f"running_mean_{name}", torch.zeros(dim))
            self.register_buffer(f"running_var_{name}", torch.ones(dim))

    def forward(self, x: Tensor, modality: str) -> Tensor:
        mean, var = getattr(self, f"running_mean_{modality}"), getattr(self, f"running_var_{modality}")
        return nn.functional.batch_norm(x, mean, var, self.weight, self.bias, self.training, self.momentum, self.eps)


class Bottleneck(nn.Module):
    """Linear -> BN embedding, plus an optional ID classifier that sees the embedding through dropout.

    Returns (embedding, logits). The embedding is never dropped out: it is what evaluation and the
    metric losses see, so PABA trains the very vector retrieval ranks with. logits is None without classes.
    With `modalities`, the BN keeps statistics per modality (`ModalityBatchNorm1d`) and `forward` needs the
    modality; without, one BatchNorm1d serves every input.
    """

    def __init__(self, in_features: int, dim: int = 512, num_classes: int = 0, dropout: float = 0.5,
                 classifier: ClassifierKind = "cosine", scale: float = 16.0,
                 modalities: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.reduce = nn.Linear(in_features, dim)
        self.bn = ModalityBatchNorm1d(dim, modalities) if modalities else nn.BatchNorm1d(dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier_kind, self.scale = classifier, scale
        self.classifier = make_classifier(classifier, dim, num_classes, scale)
        nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.reduce.bias)

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier = make_classifier(self.classifier_kind, self.reduce.out_features, num_classes, self.scale)

    def forward(self, x: Tensor, modality: str | None = None) -> tuple[Tensor, Tensor | None]:
        reduced = self.reduce(x)
        embedding = self.bn(reduced, modality) if isinstance(self.bn, ModalityBatchNorm1d) else self.bn(reduced)
        logits = self.classifier(self.dropout(embedding)) if self.classifier is not None else None
        return embedding, logits


def l2_normalise(x: Tensor, dim: int = -1, eps: float = 1e-12) -> Tensor:
    """x / ||x||, written so that ONNX gets a plain ReduceL2 -> Clip -> Div (F.normalize adds Expand nodes)."""
    return x / x.norm(dim=dim, keepdim=True).clamp_min(eps)


def join_parts(parts: Tensor) -> Tensor:
    """Part features [parts, B, D] -> the embedding [B, parts * D] a user receives, of norm 1.

    Each part is L2-normalised (every part weighs the same), the parts are concatenated and the result is
    scaled by 1 / sqrt(parts), so that a dot product of two embeddings is their cosine similarity.
    """
    count, batch, dim = parts.shape
    return l2_normalise(parts).permute(1, 0, 2).reshape(batch, count * dim) / math.sqrt(count)


def spatial_attention(specific: Tensor, size: torch.Size) -> Tensor:
    """Sigmoid of the channel mean of the specific-stage map, resized to the shared map's (H, W) if strides differ."""
    attention = torch.sigmoid(specific.mean(dim=1, keepdim=True))
    if attention.shape[-2:] != size:
        attention = nn.functional.interpolate(attention, size=size, mode="bilinear", align_corners=False)
    return attention
