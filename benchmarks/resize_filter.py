"""What the preprocessing contract's resize filter costs: bilinear (the contract) against Lanczos (v0.1's evaluation).

Two measurements on the demo's synthetic data (never tuned on; the generator and protocol are the recipe's):
1. `--zoo`: the published `sepg_tiny.synthetic` (trained with Lanczos) evaluated with each filter: the cost of
   changing the filter under an already trained model.
2. `--seeds N`: the demo recipe trained and evaluated with each filter end to end (same budget and seeds).

The filter is swapped for the duration of a run by replacing the contract's PIL filter (an experiment only: the
product has one filter). Usage, one filter per process so the two can run on two cores:

    python benchmarks/resize_filter.py --zoo --out benchmarks/results/resize-filter
    python benchmarks/resize_filter.py --filter bilinear --seeds 3 --epochs 60 --out benchmarks/results/resize-filter
    python benchmarks/resize_filter.py --filter lanczos --seeds 3 --epochs 60 --out benchmarks/results/resize-filter
    python benchmarks/resize_filter.py --summarise --out benchmarks/results/resize-filter
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from pathlib import Path

from PIL import Image

from sepgzoo import preprocess

FILTERS = {"bilinear": Image.Resampling.BILINEAR, "lanczos": Image.Resampling.LANCZOS}
SETTINGS = ("sysu_all_single", "sysu_indoor_single")


@contextlib.contextmanager
def resize_filter(name: str):
    saved = dict(preprocess._PIL_FILTERS), preprocess.RESIZE_FILTER
    preprocess._PIL_FILTERS[preprocess.RESIZE_FILTER] = FILTERS[name]
    try:
        yield
    finally:
        preprocess._PIL_FILTERS.clear()
        preprocess._PIL_FILTERS.update(saved[0])


def summary(report: dict) -> dict[str, dict[str, float]]:
    from sepgzoo.evaluation.report import summarise

    return {name: {"R1": v["rank1"], "mAP": v["mAP"]} for name, v in summarise(report["results"]).items()}


def zoo(out: Path) -> None:
    from sepgzoo.evaluation.evaluate import evaluate_run
    from sepgzoo.hub.zoo import materialise

    folder = materialise("sepg_tiny.synthetic")
    rows = {}
    for name in FILTERS:
        with resize_filter(name):
            rows[name] = summary(evaluate_run(folder, ["data.workers=0"]))
        print(name, rows[name], flush=True)
    (out / "zoo.json").write_text(json.dumps(rows, indent=2))


def train_seeds(name: str, seeds: int, epochs: int, out: Path) -> None:
    from sepgzoo.config import load_recipe
    from sepgzoo.training.engine import train

    milestones = f"[{round(epochs * 2 / 3)},{round(epochs * 13 / 15)}]"
    for seed in range(seeds):
        target = out / f"{name}-seed{seed}.json"
        if target.is_file():
            continue
        recipe = load_recipe("synthetic", [f"train.seed={seed}", f"train.epochs={epochs}", "data.workers=0",
                                           f"optim.milestones={milestones}"])
        run = Path("runs") / "resize-filter" / f"{name}-seed{seed}"
        if not (run / "metrics.json").is_file():  # a finished run is read again, not retrained
            with resize_filter(name):
                run = train(recipe, output=run)
        report = json.loads((run / "metrics.json").read_text())
        target.write_text(json.dumps({"filter": name, "seed": seed, "epochs": epochs, **summary(report)}, indent=2))


def summarise_runs(out: Path) -> str:
    lines = ["| filter | seeds | all-search R1 | all-search mAP | indoor R1 | indoor mAP |", "|---|---|---|---|---|---|"]
    for name in FILTERS:
        runs = [json.loads(p.read_text()) for p in sorted(out.glob(f"{name}-seed*.json"))]
        if not runs:
            continue
        cells = []
        for setting in SETTINGS:
            for metric in ("R1", "mAP"):
                values = [r[setting][metric] for r in runs]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f}")
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (out / "training.md").write_text(table + "\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/resize-filter"))
    parser.add_argument("--zoo", action="store_true", help="evaluate the published demo model with each filter")
    parser.add_argument("--filter", choices=sorted(FILTERS), help="train the demo recipe with this filter")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--summarise", action="store_true", help="mean ± sample std per filter -> training.md")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.zoo:
        zoo(args.out)
    if args.filter:
        train_seeds(args.filter, args.seeds, args.epochs, args.out)
    if args.summarise:
        print(summarise_runs(args.out))


if __name__ == "__main__":
    main()
