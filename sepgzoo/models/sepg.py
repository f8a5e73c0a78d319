"""SEPG-Net: SEG on visible images, a shared trunk, modality-specific last stages, part-based head (paper II)."""

from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from sepgzoo.modality import MODALITIES, Modality, as_modality
from sepgzoo.models.layers import Bottleneck, ClassifierKind, join_parts, l2_normalise, spatial_attention
from sepgzoo.models.seg import SegImpl, SpectralEnhance
from sepgzoo.models.split import create_backbone, duplicate, split_backbone

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PartNorm = Literal["modality", "joint"]


class TrainOutput(NamedTuple):
    """What the losses need from one training step; rows are the visible images first, then the infrared ones.

    Attributes:
        global_logits: [B_vis + B_ir, classes], ID logits of the modality-specific branch.
        part_logits: [parts, B_vis + B_ir, classes], ID logits per horizontal part.
        part_embeddings: [parts, B_vis + B_ir, part_dim], L2-normalised part features (PABA works on these).
        num_visible: B_vis, where the infrared rows start.
    """

    global_logits: Tensor
    part_logits: Tensor
    part_embeddings: Tensor
    num_visible: int


def stripe_pool(x: Tensor, parts: int) -> Tensor:
    """Average-pool a [B, C, H, W] map into `parts` horizontal stripes -> [B, parts, C].

    Same windows as adaptive_avg_pool2d(x, (parts, 1)), written as one MatMul with a constant
    pooling matrix so the exported graph has no shape arithmetic.
    The matrix is built by kernels on x's device (no tensor from Python data: on CUDA that would be a
    blocking host-to-device copy in every forward).
    """
    height = x.shape[-2]
    index = torch.arange(parts, device=x.device)
    starts = (index * height) // parts
    ends = -((-(index + 1) * height) // parts)  # ceil((i + 1) * H / parts)
    rows = torch.arange(height, device=x.device)
    window = (rows[None, :] >= starts[:, None]) & (rows[None, :] < ends[:, None])
    pool = window.to(x.dtype) / (ends - starts).to(x.dtype)[:, None]  # [parts, H]
    return torch.matmul(pool, x.mean(dim=-1).transpose(1, 2))  # [parts, H] @ [B, H, C]


def _resolve_pretrained(pretrained: bool | str | Path | None) -> tuple[bool, str | None]:
    """(use timm's ImageNet weights, local weights file) from a recipe-style `pretrained` value."""
    if pretrained in (None, False, "none", ""):
        return False, None
    if pretrained is True or pretrained == "imagenet":
        return True, None
    return False, str(pretrained)


class SEPGNet(nn.Module):
    """SEPG-Net on any supported timm CNN.

    Inputs are RGB float images in [0, 1] (infrared as 3-channel grey), [B, 3, H, W]; the model
    applies SEG to visible images and the mean/std normalisation itself.

    Eval mode: `model(x, modality="visible" | "infrared")` -> embedding [B, parts * part_dim] of norm 1:
    the L2-normalised part features, concatenated and scaled by 1 / sqrt(parts).
    Train mode: `model((visible, infrared))` -> `TrainOutput`.

    Args:
        backbone: timm model name (ResNet/ResNeXt, ConvNeXt, EfficientNet, MobileNetV3, RegNet).
        num_classes: training identities; 0 builds an inference-only model without classifiers.
        pretrained: backbone weights: False/"none", True/"imagenet" (timm's), or a local weights file.
        split_at: last shared stage, an index into the backbone's feature_info (-2: all but the last).
        parts: number of horizontal parts N.
        part_dim: bottleneck width of each part (and of the global branch).
        dropout: dropout between each bottleneck BN and its classifier (training only; embeddings never see it).
        seg: apply SEG to visible images (False is the ablation baseline).
        seg_impl: "fft" (any size) or "matmul" (fixed `input_size`, exportable).
        input_size: (H, W) the model is trained and exported at.
        classifier: ID classifiers, "cosine" (scaled cosine, default) or "linear" (the authors' Linear with bias).
        classifier_scale: logit scale of the cosine classifier.
        part_norm: part-head BatchNorm statistics: "modality" (per modality, in training and evaluation) or
            "joint" (one set over both modalities, in training and evaluation).
        mean, std: input normalisation, shared by both modalities.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 0,
        pretrained: bool | str | Path | None = False,
        split_at: int = -2,
        parts: int = 12,
        part_dim: int = 512,
        dropout: float = 0.0,
        seg: bool = True,
        seg_impl: SegImpl = "fft",
        input_size: tuple[int, int] = (288, 144),
        classifier: ClassifierKind = "cosine",
        classifier_scale: float = 16.0,
        part_norm: PartNorm = "joint",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        use_imagenet, weights_file = _resolve_pretrained(pretrained)
        base = create_backbone(backbone, pretrained=use_imagenet, file=weights_file)
        trunk, specific, self.stage_spec = split_backbone(base, split_at)
        self.backbone_name = backbone
        self.num_classes = num_classes
        self.parts = parts
        self.part_dim = part_dim
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_features = parts * part_dim
        self.seg = SpectralEnhance(self.input_size, seg_impl) if seg else None
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.trunk = trunk
        self.specific = duplicate(specific, MODALITIES)
        self.classifier_kind, self.part_norm = classifier, part_norm
        head = dict(num_classes=num_classes, dropout=dropout, classifier=classifier, scale=classifier_scale)
        self.global_head = duplicate(Bottleneck(self.stage_spec.specific_channels, part_dim, **head), MODALITIES)
        part_modalities = MODALITIES if part_norm == "modality" else None
        self.part_heads = nn.ModuleList(Bottleneck(self.stage_spec.shared_channels, part_dim, **head,
                                                   modalities=part_modalities) for _ in range(parts))

    def recorded_args(self) -> dict[str, Any]:
        """Arguments every saved model records, whatever it was built with: their defaults changed after the first
        release, so a file must say which behaviour its weights were trained with."""
        return {"classifier": self.classifier_kind, "part_norm": self.part_norm}

    # -- input -------------------------------------------------------------------------------------------------
    def prepare(self, x: Tensor, modality: Modality) -> Tensor:
        """SEG for visible images (when enabled), then mean/std normalisation. Never modifies x in place."""
        if modality is Modality.VISIBLE and self.seg is not None:
            x = self.seg(x)
        return (x - self.mean) / self.std

    # -- features ----------------------------------------------------------------------------------------------
    def forward_features(self, x: Tensor, modality: str | Modality) -> tuple[Tensor, Tensor]:
        """(shared feature map, modality-specific feature map) of one modality's batch."""
        modality = as_modality(modality)
        shared = self.trunk(self.prepare(x, modality))
        return shared, self.specific[modality.value](shared)

    def forward_parts(self, shared: Tensor, attention: Tensor,
                      modality: str | None) -> tuple[Tensor, Tensor | None]:
        """Part embeddings [parts, B, part_dim] and part logits [parts, B, classes] (None without classes).

        `modality` picks the part BatchNorm statistics with part_norm="modality"; "joint" ignores it.
        """
        stripes = stripe_pool(shared * attention, self.parts)  # [B, parts, C]
        outputs = [head(stripes[:, i], modality) for i, head in enumerate(self.part_heads)]
        features = torch.stack([f for f, _ in outputs])
        logits = torch.stack([lg for _, lg in outputs]) if self.num_classes > 0 else None
        return features, logits

    def forward_head(self, shared: Tensor, specific: Tensor, modality: str | Modality) -> Tensor:
        """Eval embedding [B, parts * part_dim] of norm 1: the L2-normalised part features, concatenated, / sqrt(parts)."""
        attention = spatial_attention(specific, shared.shape[-2:])
        features, _ = self.forward_parts(shared, attention, as_modality(modality).value)
        return join_parts(features)

    # -- forward -----------------------------------------------------------------------------------------------
    def forward(self, x: Tensor | tuple[Tensor, Tensor], modality: str | Modality | None = None):
        if self.training:
            if not isinstance(x, (tuple, list)) or len(x) != 2:
                raise ValueError("in training mode SEPGNet takes a (visible, infrared) pair of batches")
            return self.forward_train(*x)
        if modality is None:
            raise ValueError("in eval mode SEPGNet needs modality='visible' or 'infrared'")
        return self.forward_head(*self.forward_features(x, modality), modality)

    def forward_train(self, visible: Tensor, infrared: Tensor) -> TrainOutput:
        """Both modalities through the shared trunk in one pass (eq. 5-6), then per-modality stages and heads.

        The part heads normalise as they will in evaluation: per modality ("modality") or over the joint
        batch ("joint").
        """
        if self.num_classes <= 0:
            raise ValueError("training needs a model built with num_classes > 0")
        sizes = [visible.shape[0], infrared.shape[0]]
        joint = torch.cat([self.prepare(visible, Modality.VISIBLE), self.prepare(infrared, Modality.INFRARED)])
        shared = self.trunk(joint)
        specific = [self.specific[name](part) for name, part in zip(MODALITIES, shared.split(sizes))]
        global_logits = [self.global_head[name](s.mean(dim=(-2, -1)))[1] for name, s in zip(MODALITIES, specific)]
        attention = [spatial_attention(s, shared.shape[-2:]) for s in specific]
        if self.part_norm == "joint":
            part_features, part_logits = self.forward_parts(shared, torch.cat(attention), None)
        else:
            outputs = [self.forward_parts(part, att, name)
                       for name, part, att in zip(MODALITIES, shared.split(sizes), attention)]
            part_features = torch.cat([f for f, _ in outputs], dim=1)
            part_logits = torch.cat([lg for _, lg in outputs], dim=1)
        return TrainOutput(
            global_logits=torch.cat(global_logits),
            part_logits=part_logits,
            part_embeddings=l2_normalise(part_features),
            num_visible=sizes[0],
        )

    # -- timm-style contract -------------------------------------------------------------------------------------
    def reset_classifier(self, num_classes: int) -> None:
        """Replace every ID classifier (0 removes them)."""
        self.num_classes = num_classes
        for head in [*self.global_head.values(), *self.part_heads]:
            head.reset_classifier(num_classes)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters that come from the timm backbone (the trunk and the specific stages)."""
        return [*self.trunk.parameters(), *self.specific.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the bottlenecks and classifiers (trained from scratch)."""
        return [*self.global_head.parameters(), *self.part_heads.parameters()]
