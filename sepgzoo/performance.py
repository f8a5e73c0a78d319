"""Speed settings shared by training and evaluation: memory format, torch.compile, DataLoader options."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

PREFETCH_BATCHES = 2  # batches each loader worker keeps ready (torch's default, stated here on purpose)


def loader_options(device: torch.device | str, workers: int, persistent: bool = True) -> dict[str, Any]:
    """DataLoader keyword arguments for batches bound for `device`.

    Pinned memory only when the batches go to a CUDA device (a CPU run would only pay one more copy of every
    batch); with worker processes, each keeps `PREFETCH_BATCHES` batches ready and, when `persistent`, the
    workers outlive the epoch (no re-spawn, no re-opened files at every epoch).
    """
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": torch.device(device).type == "cuda"}
    if workers > 0:
        options.update(persistent_workers=persistent, prefetch_factor=PREFETCH_BATCHES)
    return options


def memory_format(channels_last: bool) -> torch.memory_format:
    """The memory format of the model and its input images in training (`train.channels_last`), on every device.

    NHWC convolutions are faster on CUDA (cuDNN, AMP) and on the CPU too (oneDNN): on a 2-core x86 machine a
    sepg_resnet50 training step at 4 x (4 + 4), 288 x 144, was 1.1-1.25x faster, feature extraction 1.5x
    (docs/benchmarks.md, Performance settings).
    """
    return torch.channels_last if channels_last else torch.contiguous_format


@contextmanager
def channels_last_inside(model: torch.nn.Module, enabled: bool = True) -> Iterator[torch.memory_format]:
    """The model's 4-D weights in channels_last inside the block, in their own format again after it.

    Yields the memory format to give the input images. A model already in channels_last (a training run's)
    is left alone; one whose weights are in neither format throughout is too (contiguous_format is yielded).
    """
    weights = [t for t in model.parameters() if t.dim() == 4]
    if not enabled or not weights or all(t.is_contiguous(memory_format=torch.channels_last) for t in weights):
        yield memory_format(enabled)
        return
    if not all(t.is_contiguous() for t in weights):
        yield torch.contiguous_format
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield torch.channels_last
    finally:
        model.to(memory_format=torch.contiguous_format)


def compile_model(net: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """`torch.compile(net)` (TorchInductor; a C++ compiler on CPU) when `enabled` (`train.compile`), else `net`.

    The first step pays the compilation (about 1 minute for sepg_resnet50 on 2 CPU cores; seconds once
    TorchInductor's cache holds it); on that CPU the step was then 1.1-1.2x faster than channels_last alone.
    """
    return torch.compile(net) if enabled else net
