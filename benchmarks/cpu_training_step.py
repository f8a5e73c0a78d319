"""How much faster the CPU training step got, and how much faster it could get without touching the convolutions.

Runs `sepgzoo bench train --device cpu` (sepg_resnet50, 288 x 144, 4 ids x (4 + 4)) in a fresh process per run,
the settings taking turns so that a slow minute of a shared machine falls on each of them:

- `nchw`: `--no-channels-last`, the step as it was before channels_last on CPU;
- `channels_last`: the default;
- `channels_last+compile`: `--compile` (the first run fills TorchInductor's cache; it is reported, not counted).

Each setting is measured after `--warmup` untimed steps: 2 is the bench's default (the process is still taking
fresh memory pages, which costs seconds of system time per step); 5 is about where a long run spends its time.

`conv_ms` is every convolution of the step run alone at its own shape (`sepgzoo.training.bench.conv_time`).
`bound` = nchw step / channels_last convolutions: the speed-up a step would reach if everything but its
convolutions cost nothing, the ceiling for any fp32 change outside oneDNN's convolution kernels.

    python benchmarks/cpu_training_step.py --repeats 3 --warmup 2 5 --out benchmarks/results/cpu-training-step
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

SETTINGS = {"nchw": ["--no-channels-last"], "channels_last": ["--channels-last"],
            "channels_last+compile": ["--channels-last", "--compile"]}
BASE = ["bench", "train", "--device", "cpu", "--ids", "4", "--images-per-id", "4", "--size", "288", "144",
        "--steps", "3", "--json"]


def bench_once(setting: str, warmup: int) -> dict:
    cmd = [sys.executable, "-m", "sepgzoo", *BASE, "--warmup", str(warmup), *SETTINGS[setting]]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return {"setting": setting, **json.loads(proc.stdout)}


def summarise(runs: list[dict]) -> dict:
    """Per warm-up and setting: median step and convolution time over the runs, and the speed-up over nchw."""
    summary: dict[str, dict] = {}
    for warmup in sorted({r["warmup_steps"] for r in runs}):
        rows = {}
        for setting in SETTINGS:
            mine = [r for r in runs if r["warmup_steps"] == warmup and r["setting"] == setting and not r.get("cold")]
            if mine:
                steps = [r["step_ms"] / 1000 for r in mine]
                rows[setting] = {"runs": len(mine), "step_s": round(statistics.median(steps), 2),
                                 "step_s_min": round(min(steps), 2), "step_s_max": round(max(steps), 2),
                                 "conv_s": round(statistics.median(r["conv_ms"] / 1000 for r in mine), 2)}
        before = rows["nchw"]["step_s"]
        for row in rows.values():
            row["speed_up"] = round(before / row["step_s"], 2)
        rows["bound"] = round(before / rows["channels_last"]["conv_s"], 2)
        summary[f"warmup_{warmup}"] = rows
    return summary


def markdown(summary: dict) -> str:
    lines = []
    for key, rows in summary.items():
        lines += [f"### {key.replace('_', ' ')} steps", "",
                  "| setting | step (s), median | min - max | convolutions alone (s) | speed-up |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {r['step_s']:.2f} | {r['step_s_min']:.2f} - {r['step_s_max']:.2f} | {r['conv_s']:.2f} | "
                  f"{r['speed_up']:.2f}x |" for name, r in rows.items() if name != "bound"]
        lines += ["", f"Ceiling with everything but the convolutions free: {rows['bound']:.2f}x", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu-training-step"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if not any(r["setting"] == "channels_last+compile" for r in runs):
        runs.append({**bench_once("channels_last+compile", 2), "cold": True})  # fills the Inductor cache
        log.write_text("".join(json.dumps(r) + "\n" for r in runs))
    for repeat in range(args.repeats):
        for warmup in args.warmup:
            for setting in SETTINGS:
                runs.append(bench_once(setting, warmup))
                log.write_text("".join(json.dumps(r) + "\n" for r in runs))
                print(f"repeat {repeat + 1}/{args.repeats} warmup {warmup} {setting}: {runs[-1]['step_ms']} ms "
                      f"(convolutions {runs[-1]['conv_ms']} ms)", flush=True)
    summary = summarise(runs)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
