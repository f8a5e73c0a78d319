"""`sepgzoo viz seg`: an image's SEG decomposition as the paper's Fig. 3 shows it (RGB, grey, phase-only
reconstruction, SEG)."""

from pathlib import Path

import numpy as np

from sepgzoo.data.datasets import load_image
from sepgzoo.figures.canvas import plt, save_figure
from sepgzoo.models.seg import greyscale3, phase_reconstruction_fft
from sepgzoo.pipeline.transforms import build_test_transform

#: percentiles a panel is stretched between (values outside are clipped): the phase-only reconstruction has a few
#: pixels near +-0.5 and nearly all within +-0.1, so a min-max stretch would show it as flat grey
STRETCH_PERCENTILES = (1.0, 99.0)


def robust_stretch(image: np.ndarray, percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> np.ndarray:
    """`image` mapped to [0, 1] between its low and high percentiles, clipped outside them."""
    lo, hi = np.percentile(image, percentiles)
    return np.clip((image - lo) / max(float(hi - lo), 1e-8), 0.0, 1.0)


def seg_figure(rgb: np.ndarray, grey: np.ndarray, phase: np.ndarray, seg: np.ndarray, path: str | Path) -> Path:
    """The four panels (each [H, W, 3] or [H, W]), each stretched between its 1st and 99th percentile."""
    fig, axes = plt.subplots(1, 4, figsize=(8, 4.4))
    for ax, image, title in zip(axes, (rgb, grey, phase, seg), ("RGB", "grey", "phase reconstruction", "SEG")):
        ax.imshow(robust_stretch(image), cmap="gray")
        ax.set(title=title, xticks=[], yticks=[])
        lo, hi = np.percentile(image, STRETCH_PERCENTILES)
        ax.set_xlabel(f"shown {lo:+.2f}..{hi:+.2f}\n(1st-99th pct, clipped)", fontsize=7)
    return save_figure(fig, path)


def seg_view(image: str | Path, out: str | Path, size: tuple[int, int] = (288, 144)) -> Path:
    """Write RGB | grey | phase-only reconstruction | SEG of `image` (resized to `size`) as a PNG."""
    x = build_test_transform(size)(load_image(image))[None]
    grey, phase = greyscale3(x), phase_reconstruction_fft(x)
    to_hwc = lambda t: t[0].permute(1, 2, 0).numpy()  # noqa: E731
    return seg_figure(to_hwc(x), to_hwc(grey), to_hwc(phase), to_hwc(grey + phase), out)
