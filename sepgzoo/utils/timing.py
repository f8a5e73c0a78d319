"""Wall-clock timing that waits for CUDA work: the median helper every benchmark uses. Imports PyTorch only to
wait for a CUDA device, so torch-free benchmarks (an export's artifacts) time with it too."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def sync_device(device: torch.device | None) -> None:
    """Wait for the device's queued work (CUDA); a no-op elsewhere."""
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def timed(fn, device: torch.device | None = None) -> float:
    """Wall time of one `fn()` call, queued device work before and after it included."""
    sync_device(device)
    start = time.perf_counter()
    fn()
    sync_device(device)
    return time.perf_counter() - start


def median_seconds(fn, repeats: int, warmup: int = 1, device: torch.device | None = None) -> float:
    """Median wall time of `fn()` over `repeats` calls after `warmup` calls (CUDA work is waited for)."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, device) for _ in range(repeats))
