"""Image transforms: PIL image -> float tensor [3, H, W] in [0, 1], with no mean/std normalisation.

The model normalises its input and applies SEG itself, so these pipelines stop at [0, 1] tensors.
Train: resize, pad + random crop, horizontal flip, random erasing (the SEPG/AGW recipe).
Test: resize only. Both start with `sepgzoo.preprocess.resize`, the resize every deployment path uses too.
"""

from __future__ import annotations

from torchvision.transforms import v2

from sepgzoo.preprocess import resize_step
from sepgzoo.utils.tensors import to_unit_range

#: fill of erased rectangles: the ImageNet mean, i.e. 0 after the model's normalisation
ERASE_FILL = (0.485, 0.456, 0.406)
DEFAULT_SIZE = (288, 144)


def build_test_transform(size: tuple[int, int] = DEFAULT_SIZE) -> v2.Compose:
    """Resize a PIL image to `size` = (height, width) and convert it to a float tensor in [0, 1].

    Example:
        >>> from PIL import Image
        >>> build_test_transform((64, 32))(Image.new("RGB", (64, 128))).shape
        torch.Size([3, 64, 32])
    """
    return v2.Compose([resize_step(size), v2.ToImage(), to_unit_range])


def build_train_transform(size: tuple[int, int] = DEFAULT_SIZE, pad: int = 10, flip_p: float = 0.5,
                          erasing_p: float = 0.5, erasing_scale: tuple[float, float] = (0.02, 0.4)) -> v2.Compose:
    """Training augmentation: resize, zero-pad `pad` pixels and random-crop back, flip, random erasing.

    Args:
        size: output (height, width).
        pad: padding before the random crop (0 disables pad + crop).
        flip_p: probability of a horizontal flip.
        erasing_p: probability of erasing one rectangle (0 disables it).
        erasing_scale: range of the erased area as a fraction of the image.

    Example:
        >>> from PIL import Image
        >>> x = build_train_transform((64, 32))(Image.new("RGB", (64, 128)))
        >>> x.dtype, tuple(x.shape), float(x.max()) <= 1.0
        (torch.float32, (3, 64, 32), True)
    """
    steps = [resize_step(size), v2.ToImage()]
    if pad > 0:
        steps += [v2.Pad(pad), v2.RandomCrop(size)]
    if flip_p > 0:
        steps.append(v2.RandomHorizontalFlip(flip_p))
    steps.append(to_unit_range)
    if erasing_p > 0:
        steps.append(v2.RandomErasing(p=erasing_p, scale=erasing_scale, value=list(ERASE_FILL)))
    return v2.Compose(steps)
