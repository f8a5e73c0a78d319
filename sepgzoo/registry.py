"""timm-style model registry: `register_model`, `create_model`, `list_models`, `is_model`."""

import fnmatch
from collections.abc import Callable

from torch import nn

from sepgzoo.errors import UserError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model entrypoint under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered model names matching a shell-style pattern, e.g. `list_models("sepg_*")`."""
    _load_entrypoints()
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def is_model(name: str) -> bool:
    _load_entrypoints()
    return name.split(".")[0] in _MODELS


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
    _load_entrypoints()
    arch, _, tag = name.partition(".")
    if arch not in _MODELS:
        raise UserError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    if tag:  # zoo weights: `sepg_resnet50.sysu`
        from sepgzoo.zoo import get_entry, load_pretrained

        if pretrained:
            return load_pretrained(name, **kwargs)
        return create_model(arch, **{**get_entry(name).model_args, **kwargs})
    model = _MODELS[arch](pretrained=pretrained, **kwargs)
    # What rebuilds the same architecture from a checkpoint (backbone weights are not needed for that).
    model.model_name = arch
    model.model_args = kwargs
    return model


def _load_entrypoints() -> None:
    import sepgzoo.models  # noqa: F401  (registers the entrypoints)
