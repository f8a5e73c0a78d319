"""`create_model`, `list_models`, `is_model`: registered architectures, or `name.tag` entries of the model zoo."""

import fnmatch

from torch import nn

from sepgzoo.models.registry import build_registered, registered_names


def _registered() -> list[str]:
    import sepgzoo.models  # noqa: F401  (registers the entrypoints)

    return registered_names()


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered model names matching a shell-style pattern, e.g. `list_models("sepg_*")`."""
    return [name for name in _registered() if fnmatch.fnmatch(name, pattern)]


def is_model(name: str) -> bool:
    return name.split(".")[0] in _registered()


def create_model(name: str, pretrained: bool | str = False, **kwargs) -> nn.Module:
    """Build a registered model. `None` keyword values mean "the model's own default" and are dropped.

    Args:
        name: a registered name (`sepg_resnet50`, `sepg`, `test_sepg`), or `name.tag` for released weights.
        pretrained: without a tag, the backbone's weights: False, True / "imagenet" (timm's), or a local
            weights file. With a tag, True loads the zoo weights (sha256-verified); False builds the
            entry's architecture untrained.
        kwargs: model arguments, e.g. `num_classes=395`, `backbone="convnext_tiny"`, `parts=6`.

    Example:
        >>> model = create_model("sepg", backbone="resnet50", num_classes=395, pretrained="imagenet")
    """
    _registered()
    arch, _, tag = name.partition(".")
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    if tag:  # zoo weights: `sepg_resnet50.sysu`
        from sepgzoo.hub.zoo import get_entry, load_pretrained

        if pretrained:
            return load_pretrained(name, **kwargs)
        return build_registered(arch, **{**get_entry(name).model_args, **kwargs})
    return build_registered(arch, pretrained=pretrained, **kwargs)
