"""Semantically Enhanced Grey (SEG) images, paper eq. 1-4.

For a visible image x (RGB in [0, 1], before mean/std normalisation):

    grey = 0.299 R + 0.587 G + 0.114 B, copied to three channels            (eq. 1-2)
    F    = 2-D DFT of each channel of x                                       (eq. 3)
    A    = mean of |F| over (H, W), per image and channel
    rec  = Re(IDFT(A * exp(j * angle(F))))    (phase-only reconstruction)
    SEG  = grey + rec                                                         (eq. 4)

The amplitude constant A is computed per image and channel, so an image's SEG never depends on the
other images of its batch. A frequency whose magnitude is below `PHASE_EPS * H * W` has no
meaningful phase (float round-off decides it); both implementations give it phase 0, the value
`angle(0)` has, so they agree with each other and with a float64 reference.

Two implementations with the same numbers:
- `impl="fft"`: torch.fft, any image size;
- `impl="matmul"`: real DFT matrices for one fixed size, held as buffers. It exports to plain
  MatMul nodes, which ONNX Runtime runs ~20x faster than its DFT op and TensorRT can parse at all.
"""

import math
from typing import Literal

import torch
from torch import Tensor, nn

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
PHASE_EPS = 1e-6

SegImpl = Literal["fft", "matmul"]


def greyscale3(x: Tensor) -> Tensor:
    """Luma grey image (ITU-R BT.601 weights) copied to three channels. x: [B, 3, H, W]."""
    r, g, b = x.unbind(dim=1)
    grey = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    return grey.unsqueeze(1).expand(-1, 3, -1, -1)


def _unit_phasor(re: Tensor, im: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """cos and sin of the phase of re + j*im (phase 0 where the magnitude is below eps), and the magnitude."""
    mag = torch.sqrt(re * re + im * im)
    defined = mag > eps
    safe = torch.where(defined, mag, torch.ones_like(mag))
    cos = torch.where(defined, re / safe, torch.ones_like(re))
    sin = torch.where(defined, im / safe, torch.zeros_like(im))
    return cos, sin, mag


def phase_reconstruction_fft(x: Tensor) -> Tensor:
    """Phase-only reconstruction with torch.fft. x: [B, C, H, W] real; returns the same shape."""
    h, w = x.shape[-2:]
    spectrum = torch.fft.fft2(x.float())
    cos, sin, mag = _unit_phasor(spectrum.real, spectrum.imag, PHASE_EPS * h * w)
    amplitude = mag.mean(dim=(-2, -1), keepdim=True)
    rec = torch.fft.ifft2(torch.complex(amplitude * cos, amplitude * sin)).real
    return rec.to(x.dtype)


def spectral_enhance(x: Tensor) -> Tensor:
    """SEG image of a visible batch (any size), with torch.fft.

    Args:
        x: RGB images [B, 3, H, W] in [0, 1], before normalisation.

    Returns:
        grey + phase-only reconstruction, [B, 3, H, W].

    Example:
        >>> seg = spectral_enhance(torch.rand(2, 3, 288, 144))
    """
    _check_rgb(x)
    return greyscale3(x) + phase_reconstruction_fft(x)


def _check_rgb(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"SEG expects RGB images [B, 3, H, W], got shape {tuple(x.shape)}")


def dft_matrices(n: int) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of the n-point DFT matrix exp(-2*pi*j*k*m/n) (both symmetric), float64."""
    k = torch.arange(n, dtype=torch.float64)
    # k*m mod n keeps the angle small, so cos/sin stay accurate for large n.
    angle = 2 * math.pi * (torch.outer(k, k) % n) / n
    return torch.cos(angle), -torch.sin(angle)


class SpectralEnhance(nn.Module):
    """SEG as a module: `SpectralEnhance(size=(H, W), impl="fft" | "matmul")`.

    `impl="matmul"` needs the size the module was built for; `impl="fft"` accepts any size.
    Computation stays in float32 even under autocast: the phase of small frequencies is
    sensitive to rounding.

    Example:
        >>> seg = SpectralEnhance(size=(288, 144), impl="matmul")
        >>> out = seg(torch.rand(8, 3, 288, 144))
    """

    def __init__(self, size: tuple[int, int] = (288, 144), impl: SegImpl = "fft") -> None:
        super().__init__()
        if impl not in ("fft", "matmul"):
            raise ValueError(f"SEG impl must be 'fft' or 'matmul', got {impl!r}")
        self.size = (int(size[0]), int(size[1]))
        self.impl = impl
        if impl == "matmul":
            for axis, n in zip("hw", self.size):
                re, im = dft_matrices(n)
                self.register_buffer(f"dft_{axis}_re", re.float(), persistent=False)
                self.register_buffer(f"dft_{axis}_im", im.float(), persistent=False)

    def extra_repr(self) -> str:
        return f"size={self.size}, impl={self.impl!r}"

    def forward(self, x: Tensor) -> Tensor:
        _check_rgb(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            rec = self._phase_reconstruction_matmul(x) if self.impl == "matmul" else phase_reconstruction_fft(x)
            return greyscale3(x) + rec

    def _phase_reconstruction_matmul(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"SEG(matmul) was built for size {self.size}, got images of size {tuple(x.shape[-2:])}")
        ch, sh, cw, sw = self.dft_h_re, self.dft_h_im, self.dft_w_re, self.dft_w_im
        h, w = self.size
        # Forward DFT of a real image: F = (Ch + jSh) x (Cw + jSw).
        left_re, left_im = ch @ x, sh @ x
        f_re = left_re @ cw - left_im @ sw
        f_im = left_re @ sw + left_im @ cw
        cos, sin, mag = _unit_phasor(f_re, f_im, PHASE_EPS * h * w)
        amplitude = mag.mean(dim=(-2, -1), keepdim=True)
        z_re, z_im = amplitude * cos, amplitude * sin
        # Real part of the inverse DFT: (1/HW) Re[(Ch - jSh) Z (Cw - jSw)].
        y_re = ch @ z_re + sh @ z_im
        y_im = ch @ z_im - sh @ z_re
        return (y_re @ cw + y_im @ sw) / (h * w)
