"""The one matplotlib set-up (headless Agg backend) and the atomic PNG writer every figure uses."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sepgzoo.utils.atomic import atomic_path  # noqa: E402

MODALITY_COLOURS = {"infrared": "tab:blue", "visible": "tab:orange"}  # as in the paper's Fig. 4


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write `fig` as a PNG atomically (its folder created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
