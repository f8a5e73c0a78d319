"""SEPG-Net and its registered variants."""

from sepgzoo.models.registry import register_model
from sepgzoo.models.sepg import SEPGNet, TrainOutput

__all__ = ["SEPGNet", "TrainOutput"]


@register_model
def sepg(pretrained=False, backbone: str = "resnet50", **kwargs) -> SEPGNet:
    """SEPG-Net on any supported timm backbone: `create_model("sepg", backbone="convnext_tiny")`."""
    return SEPGNet(backbone=backbone, pretrained=pretrained, **kwargs)


@register_model
def sepg_resnet50(pretrained=False, **kwargs) -> SEPGNet:
    """The paper's model: ResNet-50, stem..layer3 shared, layer4 per modality, 12 parts x 512, 288 x 144."""
    return SEPGNet(backbone="resnet50", pretrained=pretrained, **kwargs)


@register_model
def test_sepg(pretrained=False, **kwargs) -> SEPGNet:
    """Tiny model for tests and the CPU demo: timm's test_resnet, 6 parts x 64, 64 x 32 input."""
    kwargs = {"parts": 6, "part_dim": 64, "input_size": (64, 32), **kwargs}
    return SEPGNet(backbone="test_resnet", pretrained=pretrained, **kwargs)


@register_model
def sepg_tiny(pretrained=False, **kwargs) -> SEPGNet:
    """CPU demo model: timm's tiny test_resnet backbone, 6 parts x 128, 64 x 32 input (about 1M parameters)."""
    kwargs = {"parts": 6, "part_dim": 128, "input_size": (64, 32), **kwargs}
    return SEPGNet(backbone="test_resnet", pretrained=pretrained, **kwargs)
