"""`sepgzoo viz seg`: an image's SEG decomposition as the paper's Fig. 3 shows it."""

from pathlib import Path

from sepgzoo.data.datasets import load_image
from sepgzoo.data.transforms import build_test_transform
from sepgzoo.evaluation.plots import seg_figure
from sepgzoo.models.seg import greyscale3, phase_reconstruction_fft


def seg_view(image: str | Path, out: str | Path, size: tuple[int, int] = (288, 144)) -> Path:
    """Write RGB | grey | phase-only reconstruction | SEG of `image` (resized to `size`) as a PNG."""
    x = build_test_transform(size)(load_image(image))[None]
    grey, phase = greyscale3(x), phase_reconstruction_fft(x)
    to_hwc = lambda t: t[0].permute(1, 2, 0).numpy()  # noqa: E731
    return seg_figure(to_hwc(x), to_hwc(grey), to_hwc(phase), to_hwc(grey + phase), Path(out))
