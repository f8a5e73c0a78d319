"""DistributedDataParallel set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK)."""

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); a no-op for a single process.

    `timeout_s` bounds every collective: a rank that waits longer for the others fails the job.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if dist.is_initialized():
        return info
    if device_type == "cuda":
        # The rank's GPU is set first and named to the group: NCCL then binds its communicator to that device at
        # once instead of guessing one (PyTorch warns that a guess can hang collectives).
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", timeout=datetime.timedelta(seconds=timeout_s), device_id=device)
    else:
        dist.init_process_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return info


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a single process (read from the environment: valid after the group is gone)."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
