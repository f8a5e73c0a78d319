"""Retrieval figures: CMC curves, t-SNE of embeddings by modality (the paper's Fig. 4), a search ranking."""

from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.figures.canvas import MODALITY_COLOURS, plt, save_figure


def cmc_curves(results: dict[str, Any], path: Path) -> Path:
    """One CMC curve (rank 1..20, percent) per protocol setting."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, result in results.items():
        cmc = 100 * np.asarray(result["cmc"])
        ax.plot(np.arange(1, len(cmc) + 1), cmc, marker=".", label=f"{name} (mAP {100 * result['mAP']:.1f})")
    ax.set(xlabel="rank", ylabel="matching rate (%)", title="CMC", ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


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
    return save_figure(fig, path)


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
    return save_figure(fig, Path(path))
