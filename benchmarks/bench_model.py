"""Size and CPU/GPU speed of a SEPG-Net model: parameters, FLOPs, forward time, SEG time per implementation.

Usage: python benchmarks/bench_model.py [--model sepg_resnet50] [--size 288 144] [--batch 8] [--device cpu] [--json]
"""

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from sepgzoo import create_model
from sepgzoo.models.seg import SpectralEnhance
from sepgzoo.utils.timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sepg_resnet50")
    parser.add_argument("--size", nargs=2, type=int, default=(288, 144))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    size = tuple(args.size)
    model = create_model(args.model, input_size=size).to(device).eval()
    x = torch.rand(args.batch, 3, *size, device=device)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            model(x[:1], modality="visible")
        result = {
            "model": args.model, "input_size": list(size), "batch": args.batch, "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "params_eval_path_M": round(sum(p.numel() for n, p in model.named_parameters()
                                            if not n.startswith(("specific.infrared", "global_head"))) / 1e6, 2),
            "gflops_per_image_visible": round(counter.get_total_flops() / 1e9, 2),  # FlopCounter: 2 FLOPs per MAC
            "gmacs_per_image_visible": round(counter.get_total_flops() / 2 / 1e9, 2),
            **{f"forward_ms_{m}": round(1000 * median_seconds(lambda: model(x, m), args.repeats, device=device), 1)
               for m in ("visible", "infrared")},
        }
        for impl in ("fft", "matmul"):
            seg = SpectralEnhance(size, impl).to(device)
            result[f"seg_ms_{impl}"] = round(1000 * median_seconds(lambda: seg(x), args.repeats, device=device), 2)
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
