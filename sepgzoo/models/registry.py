"""The model registry: a leaf that only keeps the entrypoints (`register_model`) and builds from them.

`sepgzoo.hub.factory.create_model` sits above it (zoo `name.tag` names, lazy registration); nothing
here imports upward.
"""

from collections.abc import Callable
from typing import Any

from torch import nn

from sepgzoo.errors import UserError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model entrypoint under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def registered_names() -> list[str]:
    return sorted(_MODELS)


def build_registered(arch: str, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """Build a registered architecture; the model remembers how to rebuild itself (`model_name`, `model_args`)."""
    if arch not in _MODELS:
        raise UserError(f"unknown model {arch!r}; available: {', '.join(registered_names())}")
    model = _MODELS[arch](pretrained=pretrained, **kwargs)
    model.model_name = arch
    model.model_args = kwargs  # backbone weights are not needed to rebuild the architecture
    return model
