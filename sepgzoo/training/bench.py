"""`sepgzoo bench train`: images/s, peak memory, and the losses' and convolutions' shares of a training step."""

import os
import resource
import statistics
import time
from typing import NamedTuple

import torch
from torch import nn

from sepgzoo.config import LossCfg, TrainCfg
from sepgzoo.hub.factory import create_model
from sepgzoo.performance import compile_model, memory_format
from sepgzoo.training.engine import apply_gradients, forward_loss
from sepgzoo.training.losses import sepg_loss
from sepgzoo.utils.timing import sync_device, timed


def bench_training_step(model_name: str, ids: int, images_per_id: int, size: tuple[int, int], steps: int,
                        device: torch.device, amp: bool = True, classes: int = 395, channels_last: bool | None = None,
                        compile: bool | None = None, warmup: int = 2) -> dict:
    """Time `steps` full training steps (forward, eq. 9 loss, backward, SGD) on random images.

    The model and images take the trainer's memory format and compilation (`performance.memory_format`,
    `performance.compile_model`); `channels_last` / `compile` default to the recipe defaults (`train.*`).
    The `warmup` steps (compilation included) are reported apart; on a CPU the first few steps of a process
    also pay for fresh memory pages, so a larger `warmup` measures the steady state a long run spends its time in.
    The loss share is measured on the same outputs in separate timed calls (forward + backward of the losses
    alone), so it is not hidden inside the asynchronous CUDA stream. The convolution share is the time of every
    convolution of the step run alone at its own shapes (`conv_time`): what no change outside the
    convolutions can remove.
    """
    channels_last = TrainCfg.channels_last if channels_last is None else channels_last
    compile = TrainCfg.compile if compile is None else compile
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    fmt = memory_format(channels_last)
    model = create_model(model_name, num_classes=classes, input_size=size).to(device, memory_format=fmt).train()
    net = compile_model(model, compile)
    use_amp = amp and device.type == "cuda"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    batch = ids * images_per_id
    visible, infrared = (torch.rand(batch, 3, *size, device=device).contiguous(memory_format=fmt) for _ in range(2))
    labels = torch.arange(ids, device=device).repeat_interleave(images_per_id)
    weights = LossCfg()

    def step() -> None:
        training_step(net, optimizer, scaler, visible, infrared, labels, weights, use_amp)

    warmup_time = sum(timed(step, device) for _ in range(warmup))
    times = [timed(step, device) for _ in range(steps)]
    step_time = statistics.mean(times)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # the steps', before the share timings
    loss_time = _loss_time(model, visible, infrared, labels, weights, use_amp, device, steps)
    conv = conv_time(conv_calls(model, visible, infrared), device, use_amp, repeats=steps)
    return {"model": model_name, "device": str(device), "device_name": _device_name(device), "amp": use_amp,
            "batch": f"{ids} ids x ({images_per_id} visible + {images_per_id} infrared) = {2 * batch} images",
            "input_size": list(size), "channels_last": channels_last, "compile": compile,
            "threads": torch.get_num_threads(), "load_average_1min": load and round(load, 2),
            "warmup_steps": warmup, "warmup_s": round(warmup_time, 1), "step_ms": round(1000 * step_time, 1),
            "step_ms_median": round(1000 * statistics.median(times), 1),
            "step_ms_each": [round(1000 * t, 1) for t in times],
            "images_per_s": round(2 * batch / step_time, 1), "loss_ms": round(1000 * loss_time, 2),
            "loss_share_percent": round(100 * loss_time / step_time, 2),
            "conv_ms": round(1000 * conv, 1), "conv_share_percent": round(100 * conv / step_time, 1),
            "peak_memory_mib": round(peak, 1),
            "peak_memory_kind": "CUDA allocated" if device.type == "cuda" else "process RSS",
            "torch": torch.__version__}


def training_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  visible: torch.Tensor, infrared: torch.Tensor, labels: torch.Tensor, weights: LossCfg,
                  use_amp: bool) -> torch.Tensor:
    """One timed step: the trainer's forward + eq. 9 loss (`engine.forward_loss`) and its backward + SGD step
    (`engine.apply_gradients`); returns the loss."""
    _, terms = forward_loss(model, visible, infrared, labels, labels, weights, use_amp)
    apply_gradients(terms["total"], optimizer, scaler)
    return terms["total"].detach()


def _loss_time(model, visible, infrared, labels, weights, use_amp, device, steps) -> float:
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
        out = model((visible, infrared))
    leaves = out._replace(global_logits=out.global_logits.float().requires_grad_(),
                          part_logits=out.part_logits.float().requires_grad_(),
                          part_embeddings=out.part_embeddings.float().requires_grad_())
    sync_device(device)
    start = time.perf_counter()
    for _ in range(steps):
        sepg_loss(leaves, labels, labels, weights)["total"].backward()
    sync_device(device)
    return (time.perf_counter() - start) / steps


class ConvCall(NamedTuple):
    """One convolution of a training step: the module and the input it was given."""

    conv: nn.Module
    shape: tuple[int, ...]
    memory_format: torch.memory_format
    needs_input_grad: bool


def conv_calls(model: nn.Module, visible: torch.Tensor, infrared: torch.Tensor) -> list[ConvCall]:
    """Every convolution one training forward of `model` runs, in order (one forward, grads enabled)."""
    calls: list[ConvCall] = []

    def record(conv: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        x = inputs[0]
        nhwc = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        fmt = torch.channels_last if nhwc else torch.contiguous_format
        calls.append(ConvCall(conv, tuple(x.shape), fmt, x.requires_grad))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    try:
        model((visible, infrared))
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def conv_time(calls: list[ConvCall], device: torch.device, amp: bool, repeats: int) -> float:
    """Seconds the step's convolutions take run alone: the sum over `calls` of each one's median forward +
    backward time (input gradient only where the step needs it) on a random input of its shape and format."""
    total = 0.0
    for call in calls:
        x = torch.randn(call.shape, device=device).contiguous(memory_format=call.memory_format)
        x.requires_grad_(call.needs_input_grad)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            grad = torch.ones_like(call.conv(x))  # also the warm-up: primitives are created on the first call

        def forward_backward() -> None:
            call.conv.zero_grad(set_to_none=True)  # as the trainer's zero_grad: the weight gradient is not added to
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                out = call.conv(x)
            out.backward(grad)

        total += statistics.median(timed(forward_backward, device) for _ in range(max(repeats, 1)))
    return total


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()
