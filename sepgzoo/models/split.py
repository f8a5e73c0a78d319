"""Cut a timm CNN into a shared trunk and the modality-specific last stages (paper II-B, eq. 5-6).

The cut is a stage index into the model's `feature_info`: every module up to and including
`feature_info[split_at]["module"]` forms the shared trunk; the modules after it, up to the
classifier head, form the stages that are copied once per modality.
"""

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from sepgzoo.errors import UserError

# timm model classes whose children run strictly in order, as the cut assumes.
SUPPORTED_FAMILIES = {
    "ResNet": "ResNet / ResNeXt / SE-ResNet (resnet50, resnext50_32x4d, seresnet50, ...)",
    "ConvNeXt": "ConvNeXt (convnext_tiny, convnext_atto, ...)",
    "EfficientNet": "EfficientNet (efficientnet_b0, tf_efficientnet_b3, ...)",
    "MobileNetV3": "MobileNetV3 (mobilenetv3_large_100, ...)",
    "RegNet": "RegNet (regnetx_002, regnety_016, ...)",
}
# Children that pool or classify: the cut keeps everything before the first of them.
HEAD_MODULES = ("global_pool", "head", "fc", "classifier", "flatten")


@dataclass(frozen=True)
class StageSpec:
    """Where a backbone was cut, for logs and checkpoints."""

    shared_until: str
    shared_channels: int
    shared_reduction: int
    specific_channels: int
    specific_reduction: int


def check_family(model: nn.Module, name: str) -> None:
    """Raise a UserError naming the supported families when `model` is not one of them."""
    family = type(model).__name__
    if family not in SUPPORTED_FAMILIES:
        supported = "\n  ".join(SUPPORTED_FAMILIES.values())
        raise UserError(
            f"backbone {name!r} is a timm {family}, which sepgzoo cannot split into shared/specific stages. "
            f"Supported families:\n  {supported}"
        )


def create_backbone(name: str, pretrained: bool = False, file: str | None = None, **kwargs) -> nn.Module:
    """Build a timm backbone whose last stage runs at stride 1 (the ReID convention) where the family allows it.

    timm gets there by dilating the last stage (output stride 16) instead of striding it. Families
    whose timm class has no `output_stride` (MobileNetV3) keep their stride of 32.

    Args:
        name: timm model name.
        pretrained: load timm's ImageNet weights (timm downloads them or reads its cache).
        file: local weights file for the backbone (timm `pretrained_cfg_overlay`); implies pretrained.
        kwargs: passed to `timm.create_model`.
    """
    if not timm.is_model(name):
        raise UserError(f"unknown timm backbone {name!r}; see timm.list_models() for names")
    if file and not Path(file).is_file():
        raise UserError(
            f"backbone weights file {file} does not exist (model.pretrained expects imagenet, none or a file)"
        )
    overlay = {"file": str(file)} if file else None
    create = functools.partial(
        timm.create_model, name, pretrained=pretrained or bool(file), pretrained_cfg_overlay=overlay, **kwargs
    )
    try:
        model = create(output_stride=16)
    except TypeError as err:
        if "output_stride" not in str(err):
            raise
        model = create()
    check_family(model, name)
    return model


def _ordered_modules(model: nn.Module, feature_modules: list[str]) -> list[tuple[str, nn.Module]]:
    """The model's children in execution order, expanding a child one level where a feature module lives inside it."""
    ordered = []
    for name, child in model.named_children():
        if any(f.startswith(name + ".") for f in feature_modules):
            ordered.extend((f"{name}.{sub}", module) for sub, module in child.named_children())
        else:
            ordered.append((name, child))
    return ordered


def split_backbone(model: nn.Module, split_at: int) -> tuple[nn.Sequential, nn.Sequential, StageSpec]:
    """Cut a timm CNN after stage `split_at` of its `feature_info`.

    Args:
        model: a timm model of a supported family.
        split_at: index into `model.feature_info`; stages 0..split_at are shared. Negative
            indices count from the end (-2: everything but the last stage is shared).

    Returns:
        (shared trunk, specific stages, where the cut was). The specific stages are the original
        modules; deep-copy them once per modality.

    Example:
        >>> trunk, specific, spec = split_backbone(timm.create_model("resnet50"), split_at=3)  # layer4 specific
    """
    info = model.feature_info
    n = len(info)
    if not -n <= split_at < n or split_at % n == n - 1:
        raise UserError(f"model.split_at={split_at} is out of range: {n} stages, the last one must stay specific")
    split_at %= n
    feature_modules = [f["module"] for f in info]
    modules = _ordered_modules(model, feature_modules)
    names = [name for name, _ in modules]
    cut = names.index(feature_modules[split_at]) + 1
    end = next((i for i, name in enumerate(names) if name.split(".")[0] in HEAD_MODULES), len(names))
    trunk = nn.Sequential(*(m for _, m in modules[:cut]))
    specific = nn.Sequential(*(m for _, m in modules[cut:end]))
    return trunk, specific, _measure(trunk, specific, feature_modules[split_at])


@torch.no_grad()
def _measure(trunk: nn.Module, specific: nn.Module, shared_until: str) -> StageSpec:
    """Channels and strides of both parts, read off a small dry run (eval mode: BN statistics stay untouched)."""
    was_training = trunk.training
    trunk.eval(), specific.eval()
    probe = torch.zeros(1, 3, 64, 64)
    shared = trunk(probe)
    out = specific(shared)
    trunk.train(was_training), specific.train(was_training)
    return StageSpec(
        shared_until=shared_until,
        shared_channels=shared.shape[1],
        shared_reduction=64 // shared.shape[-1],
        specific_channels=out.shape[1],
        specific_reduction=64 // out.shape[-1],
    )


def duplicate(module: nn.Module, copies: tuple[str, ...]) -> nn.ModuleDict:
    """Independent deep copies of `module`, one per key."""
    return nn.ModuleDict({key: copy.deepcopy(module) for key in copies})
