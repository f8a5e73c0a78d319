"""Training figures: the curves of a run's log.csv and the ablation table's bars."""

from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.figures.canvas import plt, save_figure

LOSS_TERMS = ("id_specific", "id_parts", "paba", "cross_centre", "total")
UNIFORM_GUESS_LABEL = "ln C (uniform guess)"


def numeric_series(rows: list[dict[str, str]], column: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of one log column, skipping rows where the cell is missing, empty or not a number."""
    epochs, values = [], []
    for index, row in enumerate(rows, 1):
        try:
            value = float(row.get(column) or "")
            epoch = float(row.get("epoch") or index)
        except ValueError:
            continue
        epochs.append(epoch)
        values.append(value)
    return epochs, values


def _plot_columns(ax: plt.Axes, rows: list[dict[str, str]], columns: list[str], scale: float = 1.0,
                  **style: Any) -> None:
    for column in columns:
        epochs, values = numeric_series(rows, column)
        if values:
            ax.plot(epochs, [scale * v for v in values], label=column, **style)


def _finish_panel(ax: plt.Axes, ylabel: str) -> None:
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", va="center", color="grey")


def _loss_panel(ax: plt.Axes, rows: list[dict[str, str]]) -> None:
    _plot_columns(ax, rows, [c for c in LOSS_TERMS if c != "total"])
    _plot_columns(ax, rows, ["total"], color="black", linewidth=2)
    _finish_panel(ax, "weighted loss")


def _cross_entropy_panel(ax: plt.Axes, rows: list[dict[str, str]]) -> None:
    _plot_columns(ax, rows, ["ce_specific", "ce_parts"])
    ln_classes = numeric_series(rows, "ln_classes")[1]
    if ln_classes:
        ax.axhline(ln_classes[-1], linestyle="--", color="grey", label=UNIFORM_GUESS_LABEL)
    _finish_panel(ax, "ID cross-entropy")


def _accuracy_panel(ax: plt.Axes, rows: list[dict[str, str]]) -> None:
    _plot_columns(ax, rows, ["acc_specific", "acc_parts"], scale=100)
    _plot_columns(ax, rows, ["val_R1", "val_mAP"], scale=100, marker="o", linestyle="--")
    _finish_panel(ax, "accuracy (%)")


def _log_scale_panel(ax: plt.Axes, rows: list[dict[str, str]], columns: list[str], ylabel: str) -> None:
    _plot_columns(ax, rows, columns)
    if ax.get_legend_handles_labels()[0]:
        ax.set_yscale("log")
    _finish_panel(ax, ylabel)


def grad_columns(rows: list[dict[str, str]]) -> list[str]:
    """The `grad_<term>` columns of a log, in first-seen order."""
    return [c for c in dict.fromkeys(key for row in rows for key in row) if c.startswith("grad_")]


def training_curves(rows: list[dict[str, str]], path: Path, title: str = "") -> Path:
    """A run's log.csv rows as stacked panels: losses, ID cross-entropy, accuracy, lr, and gradient norms if logged."""
    grads = grad_columns(rows)
    fig, axes = plt.subplots(4 + bool(grads), 1, figsize=(6.5, 2.4 * (4 + bool(grads))), sharex=True)
    _loss_panel(axes[0], rows)
    _cross_entropy_panel(axes[1], rows)
    _accuracy_panel(axes[2], rows)
    _log_scale_panel(axes[3], rows, ["lr", "backbone_lr"], "learning rate")
    if grads:
        _log_scale_panel(axes[4], rows, grads, "grad norm into trunk")
    axes[-1].set_xlabel("epoch")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def ablation_bars(table: dict[str, Any], path: Path) -> Path:
    """`sepgzoo ablate`: R1 and mAP per row (mean, std error bars) for each protocol setting."""
    settings = list(table)
    fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 3.5), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        rows = list(table[setting])
        x = np.arange(len(rows))
        for offset, metric in ((-0.2, "R1"), (0.2, "mAP")):
            means = [table[setting][r][f"{metric}_mean"] for r in rows]
            stds = [table[setting][r][f"{metric}_std"] for r in rows]
            ax.bar(x + offset, means, width=0.4, yerr=stds, capsize=3, label=metric)
        ax.set(xticks=x, title=setting, ylabel="%", ylim=(0, 100))
        ax.set_xticklabels(rows, rotation=20)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)
