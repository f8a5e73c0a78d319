"""The model registry: a leaf that only keeps the entrypoints (`register_model`) and builds from them.

`sepgzoo.hub.factory.create_model` sits above it (zoo `name.tag` names, lazy registration); nothing
here imports upward.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from sepgzoo.errors import UserError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


@dataclass(frozen=True)
class ModelConfig:
    """What defines a built model, as timm's `pretrained_cfg` does: set once when the model is built,
    written to `model.json` by `save_model` and read back by `load_model`.

    Attributes:
        name: the registered entrypoint (`sepg`, `sepg_resnet50`, `test_sepg`, ...).
        args: the keyword arguments that rebuild the architecture with that entrypoint, including every argument
            the model records as behaviour-defining (`recorded_args()`); backbone weights are not needed.
        input_size: (H, W) the model takes.
        mean, std: its input normalisation (per channel, on [0, 1] pixels).
    """

    name: str
    args: dict[str, Any]
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_meta(self) -> dict[str, Any]:
        """The model.json fields (JSON types: lists for tuples)."""
        args = {key: list(value) if isinstance(value, tuple) else value for key, value in self.args.items()}
        return {"model": self.name, "model_args": args, "input_size": list(self.input_size), "mean": list(self.mean),
                "std": list(self.std)}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model entrypoint under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def registered_names() -> list[str]:
    return sorted(_MODELS)


def build_registered(arch: str, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """Build a registered architecture; the model carries how to rebuild itself as `model.config` (`ModelConfig`)."""
    if arch not in _MODELS:
        raise UserError(f"unknown model {arch!r}; available: {', '.join(registered_names())}")
    model = _MODELS[arch](pretrained=pretrained, **kwargs)
    model.config = ModelConfig(name=arch, args={**kwargs, **model.recorded_args()}, input_size=model.input_size,
                               mean=tuple(model.mean.flatten().tolist()), std=tuple(model.std.flatten().tolist()))
    return model
