"""Figures a person would rather look at: CMC curves, t-SNE by modality (paper Fig. 4), the SEG view (Fig. 3),
search rankings."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sepgzoo.atomic import atomic_path  # noqa: E402

MODALITY_COLOURS = {"infrared": "tab:blue", "visible": "tab:orange"}  # as in the paper's Fig. 4


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def cmc_curves(results: dict[str, Any], path: Path) -> Path:
    """One CMC curve (rank 1..20, percent) per protocol setting."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, result in results.items():
        cmc = 100 * np.asarray(result["cmc"])
        ax.plot(np.arange(1, len(cmc) + 1), cmc, marker=".", label=f"{name} (mAP {100 * result['mAP']:.1f})")
    ax.set(xlabel="rank", ylabel="matching rate (%)", title="CMC", ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def tsne_by_modality(query: np.ndarray, gallery: np.ndarray, query_modality: str, gallery_modality: str,
                     path: Path, max_points: int = 2000, seed: int = 0) -> Path:
    """t-SNE of query and gallery embeddings coloured by modality (paper Fig. 4)."""
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    take = lambda x: x[rng.permutation(len(x))[: max_points // 2]]  # noqa: E731
    query, gallery = take(query), take(gallery)
    points = np.concatenate([query, gallery])
    embedded = TSNE(n_components=2, perplexity=min(30.0, max(2.0, (len(points) - 1) / 3)), init="pca",
                    random_state=seed).fit_transform(points)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for rows, modality in ((slice(0, len(query)), query_modality), (slice(len(query), None), gallery_modality)):
        ax.scatter(*embedded[rows].T, s=6, c=MODALITY_COLOURS[modality], label=modality, alpha=0.7)
    ax.set(xticks=[], yticks=[], title="t-SNE of embeddings")
    ax.legend()
    return _save(fig, path)


def seg_figure(rgb: np.ndarray, grey: np.ndarray, phase: np.ndarray, seg: np.ndarray, path: Path) -> Path:
    """The paper's Fig. 3 view: RGB, grey, phase-only reconstruction, SEG (each [H, W, 3] or [H, W])."""
    fig, axes = plt.subplots(1, 4, figsize=(8, 4))
    for ax, image, title in zip(axes, (rgb, grey, phase, seg), ("RGB", "grey", "phase reconstruction", "SEG")):
        lo, hi = float(image.min()), float(image.max())
        ax.imshow((image - lo) / max(hi - lo, 1e-8), cmap="gray")
        ax.set(title=title, xticks=[], yticks=[])
    return _save(fig, path)


def draw_ranking(results: list[dict[str, Any]], path: Path) -> Path:
    """`sepgzoo search --out`: one row per query, the query then its matches titled with rank and cosine."""
    from PIL import Image

    columns = 1 + max(len(r["matches"]) for r in results)
    fig, axes = plt.subplots(len(results), columns, figsize=(1.6 * columns, 3.2 * len(results)), squeeze=False)
    for row, result in zip(axes, results):
        cells = [(result["query"], "query")] + [(m["path"], f"#{k} {m['cosine']:.3f}")
                                                 for k, m in enumerate(result["matches"], 1)]
        for ax in row:
            ax.axis("off")
        for ax, (image_path, title) in zip(row, cells):
            with Image.open(image_path) as image:
                ax.imshow(image.convert("RGB"))
            ax.set_title(f"{title}\n{Path(image_path).name}", fontsize=7,
                         color="tab:blue" if title == "query" else "black")
    fig.tight_layout()
    return _save(fig, Path(path))


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
    return _save(fig, Path(path))


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
    return _save(fig, path)
