"""The torch device a command runs on, from the user's `auto | cpu | cuda`."""

import torch

from sepgzoo.errors import UserError


def resolve_device(name: str) -> torch.device:
    """`auto` is cuda when a CUDA device is available, else cpu; `cuda` without one is a UserError."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for, but no CUDA device is available (use auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)
