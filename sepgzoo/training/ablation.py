"""`sepgzoo ablate`: the paper's Table II rows trained with one budget and several seeds, mean +- std.

A row is a recipe overlay merged over the recipe being ablated, so any recipe can be ablated. The shipped
rows are the Table II recipes: row `se` is what `recipes/sysu_se.yaml` sets over its base (`sysu.yaml`), so
each row is written once. Any YAML file can be a row too. Every (row, seed) is an ordinary run folder under the
ablation folder; a run that finished (has metrics.json) is never retrained, an interrupted one is
resumed from its last.pt, so re-running the same command continues an interrupted ablation.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sepgzoo.config import (
    Recipe,
    apply_overrides,
    available_recipes,
    build_recipe,
    deep_merge,
    did_you_mean,
    find_recipe,
    find_yaml,
    read_yaml,
    recipe_dir,
    resolve_file,
)
from sepgzoo.errors import UserError
from sepgzoo.utils.atomic import write_json, write_text

DEFAULT_ROWS = ("baseline", "se", "se_cc", "se_paba")
METRICS = ("R1", "mAP", "mINP")


#: the Table II recipes: `sysu_<row>.yaml`, whose keys over their base are the row
ROW_RECIPE_PREFIX = "sysu_"


def available_rows() -> list[str]:
    return [name[len(ROW_RECIPE_PREFIX):] for name in available_recipes() if name.startswith(ROW_RECIPE_PREFIX)]


def find_row(name_or_path: str) -> tuple[str, Path]:
    """(row name, file): `se_paba` -> recipes/sysu_se_paba.yaml; a name with `/` or ending in .yaml is a file."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = find_yaml(name_or_path, recipe_dir(), available_rows(), "ablation row")
        return path.stem, path
    if name_or_path not in available_rows():
        raise UserError(f"unknown ablation row {name_or_path!r}{did_you_mean(name_or_path, available_rows())}; "
                        f"available: {', '.join(available_rows())}")
    return name_or_path, find_recipe(ROW_RECIPE_PREFIX + name_or_path)


def row_overlay(path: Path) -> dict[str, Any]:
    """The keys a row sets: the file without its `base:` (a Table II recipe's own keys over sysu.yaml)."""
    data = read_yaml(path)
    data.pop("base", None)
    return data


@dataclass(frozen=True)
class Cell:
    """One training run of the ablation: a row, a seed, its resolved recipe and its run folder."""

    row: str
    seed: int
    recipe: Recipe
    run_dir: Path


def plan(recipe_name: str, rows: list[str], seeds: int, overrides: list[str], output: Path) -> list[Cell]:
    """Every (row, seed) run: recipe <- row overlay <- --set overrides <- train.seed (equal budget for all rows)."""
    if seeds < 1:
        raise UserError(f"--seeds {seeds}: expected at least 1")
    base_path = find_recipe(recipe_name)
    base = resolve_file(base_path)
    cells = []
    for row in rows:
        name, overlay_path = find_row(row)
        data = apply_overrides(deep_merge(base, row_overlay(overlay_path)), overrides)
        for seed in range(seeds):
            data = deep_merge(data, {"train": {"seed": seed}})
            recipe = build_recipe(data, name=f"{base_path.stem}-{name}")
            cells.append(Cell(name, seed, recipe, output / name / f"seed{seed}"))
    return cells


def run_cell(cell: Cell) -> dict[str, Any]:
    """Train (or resume) one cell unless it already finished; returns its metrics.json."""
    from sepgzoo.training.engine import train
    from sepgzoo.training.runs import STATE_NAME

    metrics = cell.run_dir / "metrics.json"
    if not metrics.is_file():
        if (cell.run_dir / STATE_NAME).is_file():
            train(cell.recipe, resume=cell.run_dir)
        else:
            train(cell.recipe, output=cell.run_dir)
    return json.loads(metrics.read_text())


def summarise_cells(cells: list[Cell], reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Per protocol setting and row: mean and std (over seeds, ddof=1) of R1, mAP, mINP in percent."""
    table: dict[str, dict[str, Any]] = {}
    for cell, report in zip(cells, reports):
        for setting, result in report["results"].items():
            entry = table.setdefault(setting, {}).setdefault(cell.row, {"seeds": [], **{m: [] for m in METRICS}})
            entry["seeds"].append(cell.seed)
            for metric in METRICS:
                entry[metric].append(round(100 * result[metric], 2))
    for rows in table.values():
        for entry in rows.values():
            for metric in METRICS:
                values = np.array(entry[metric])
                std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                entry[f"{metric}_mean"], entry[f"{metric}_std"] = round(float(values.mean()), 2), round(std, 2)
    return table


def markdown(table: dict[str, Any], title: str) -> str:
    """One markdown table per protocol setting: row | R1 | mAP | mINP (mean +- std over seeds)."""
    lines = [f"## {title}", ""]
    for setting, rows in table.items():
        seeds = max(len(entry["seeds"]) for entry in rows.values())
        lines += [f"**{setting}** (mean ± std over {seeds} seed(s))", "", "| row | R1 | mAP | mINP |",
                  "| --- | --- | --- | --- |"]
        for row, entry in rows.items():
            cells = " | ".join(f"{entry[f'{m}_mean']:.1f} ± {entry[f'{m}_std']:.1f}" for m in METRICS)
            lines.append(f"| {row} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def ablate(recipe_name: str, rows: list[str] | None = None, seeds: int = 3, overrides: list[str] | None = None,
           output: str | Path | None = None) -> dict[str, Any]:
    """Train and evaluate every (row, seed), then write ablation.json, ablation.md and ablation.png.

    Example:
        >>> ablate("synthetic", rows=["baseline", "se_paba"], seeds=3, overrides=["train.epochs=40"])
    """
    from sepgzoo.figures.training import ablation_bars

    output = Path(output or f"runs/ablate-{Path(recipe_name).stem}")
    cells = plan(recipe_name, list(rows or DEFAULT_ROWS), seeds, list(overrides or []), output)
    reports = []
    for number, cell in enumerate(cells, 1):
        state = "done" if (cell.run_dir / "metrics.json").is_file() else "training"
        tqdm.write(f"ablation run {number}/{len(cells)}: {cell.row}, seed {cell.seed} ({state}) -> {cell.run_dir}")
        reports.append(run_cell(cell))
    table = summarise_cells(cells, reports)
    result = {"recipe": recipe_name, "rows": list(dict.fromkeys(c.row for c in cells)), "seeds": seeds,
              "overrides": list(overrides or []), "std": "sample standard deviation over seeds (ddof=1)",
              "runs": {f"{c.row}/seed{c.seed}": str(c.run_dir) for c in cells}, "results": table}
    write_json(output / "ablation.json", result)
    text = markdown(table, f"Ablation of {recipe_name} ({', '.join(overrides or []) or 'recipe as is'})")
    write_text(output / "ablation.md", text)
    ablation_bars(table, output / "ablation.png")
    return {**result, "markdown": text, "output": str(output)}
