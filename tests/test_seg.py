"""SEG (paper eq. 1-4) against an independent float64 numpy reference, for both implementations."""

import numpy as np
import pytest
import torch

from sepgzoo.models.seg import SpectralEnhance, spectral_enhance


def numpy_seg(x: torch.Tensor) -> np.ndarray:
    """grey (BT.601) x3 + Re(IFFT(mean|F| * exp(j angle F))), in float64 with numpy.fft."""
    x = x.double().numpy()
    spectrum = np.fft.fft2(x)
    amplitude = np.abs(spectrum).mean(axis=(-2, -1), keepdims=True)
    rec = np.fft.ifft2(amplitude * np.exp(1j * np.angle(spectrum))).real
    grey = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    return grey[:, None] + rec


@pytest.mark.parametrize("size", [(32, 16), (33, 17), (96, 48)])
@pytest.mark.parametrize("impl", ["fft", "matmul"])
def test_seg_matches_numpy_fft(size, impl):
    x = torch.rand(3, 3, *size, generator=torch.Generator().manual_seed(0))
    out = SpectralEnhance(size, impl)(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), numpy_seg(x), atol=2e-5)


def test_function_equals_module_and_is_batch_independent():
    x = torch.rand(4, 3, 40, 24, generator=torch.Generator().manual_seed(1))
    batched = spectral_enhance(x)
    single = torch.cat([spectral_enhance(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single)
    torch.testing.assert_close(batched, SpectralEnhance((40, 24), "matmul")(x), atol=2e-5, rtol=0)


def test_grey_image_reconstruction_is_analytic():
    """A constant image has one non-zero frequency (DC): every other phase is 0, so the reconstruction
    is mean|F| * IDFT(all ones) = mean|F| * delta at pixel (0, 0), with mean|F| = value * H * W / (H * W)."""
    x = torch.full((1, 3, 8, 6), 0.5)
    for impl in ("fft", "matmul"):
        out = SpectralEnhance((8, 6), impl)(x)
        expected = torch.full_like(x, 0.5)
        expected[..., 0, 0] += 0.5
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_matmul_rejects_other_sizes_and_bad_shapes():
    with pytest.raises(ValueError, match="built for size"):
        SpectralEnhance((32, 16), "matmul")(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="RGB"):
        spectral_enhance(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="impl"):
        SpectralEnhance((32, 16), "dft")


def test_seg_runs_in_float32_under_autocast():
    x = torch.rand(2, 3, 32, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = SpectralEnhance((32, 16), "matmul")(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), numpy_seg(x), atol=2e-5)


def test_the_seg_view_stretches_each_panel_between_its_1st_and_99th_percentile():
    from sepgzoo.figures.seg import robust_stretch

    rng = np.random.default_rng(0)
    phase_like = rng.normal(0.0, 0.03, size=(64, 32, 3))
    phase_like[0, :3] = (0.5, -0.5, 0.45)  # a few outliers, as the phase-only reconstruction has
    lo, hi = np.percentile(phase_like, 1), np.percentile(phase_like, 99)
    shown = robust_stretch(phase_like)
    np.testing.assert_allclose(shown, np.clip((phase_like - lo) / (hi - lo), 0, 1))
    assert shown.min() == 0.0 and shown.max() == 1.0
    assert 0.01 <= (shown == 1.0).mean() <= 0.011  # the top 1 % clipped, not the whole picture
    min_max = (phase_like - phase_like.min()) / (phase_like.max() - phase_like.min())
    assert shown.std() > 3 * min_max.std()  # the outliers no longer flatten the rest to grey
