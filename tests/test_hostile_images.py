"""Hostile images, generated here: each loads as the contract says or fails with one line naming the file.

Every path into the model (training, evaluation, the cache, `embed`, `search`, the runtime) decodes through
`sepgzoo.preprocess.decode_rgb`, so these cases hold for all of them; the last test checks `embed`."""

import io

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sepgzoo.cli import main
from sepgzoo.errors import UserError
from sepgzoo.preprocess import decode_rgb, load_input

SIZE = (16, 8)


def _jpeg_bytes(array: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95, **save)
    return buffer.getvalue()


@pytest.fixture
def gradient():
    yy, xx = np.mgrid[0:40, 0:20]
    return np.stack([yy * 6, xx * 12, (yy + xx) * 4], axis=-1).clip(0, 255).astype(np.uint8)


def _refused(path, match):
    with pytest.raises(UserError, match=match) as info:
        decode_rgb(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_truncated_jpeg_is_refused_naming_the_file(tmp_path, gradient):
    path = tmp_path / "cut.jpg"
    path.write_bytes(_jpeg_bytes(gradient)[:300])
    _refused(path, "cannot decode image")


def test_zero_byte_file_and_directory_named_like_an_image_are_refused(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    _refused(empty, "cannot decode image")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    _refused(folder, "it is a directory")
    _refused(tmp_path / "missing.png", "image not found")


def test_sixteen_bit_png_keeps_its_eight_most_significant_bits(tmp_path):
    wide = (np.arange(40 * 20, dtype=np.uint32).reshape(40, 20) * 80).astype(np.uint16)  # up to 63,920
    path = tmp_path / "thermal16.png"
    Image.fromarray(wide).save(path)
    rgb = np.asarray(decode_rgb(path))
    expected = (wide >> 8).astype(np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 20, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)  # not clipped to white


def test_palette_rgba_and_cmyk_images_become_rgb(tmp_path, gradient):
    palette = Image.fromarray(gradient).quantize(colors=16)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(np.asarray(decode_rgb(tmp_path / "palette.png")), np.asarray(palette.convert("RGB")))

    rgba = np.dstack([gradient, np.full(gradient.shape[:2], 10, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(np.asarray(decode_rgb(tmp_path / "rgba.png")), gradient)  # alpha dropped

    Image.fromarray(gradient).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    rgb = np.asarray(decode_rgb(tmp_path / "cmyk.jpg")).astype(int)
    assert rgb.shape == (40, 20, 3) and np.abs(rgb - gradient).mean() < 8  # JPEG round trip of CMYK


def test_exif_orientation_is_applied(tmp_path, gradient):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the stored pixels are sideways
    path = tmp_path / "phone.jpg"
    path.write_bytes(_jpeg_bytes(gradient, exif=exif.tobytes()))
    upright = np.asarray(decode_rgb(path)).astype(int)
    stored = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert upright.shape == (20, 40, 3) and stored.shape == (40, 20, 3)
    np.testing.assert_array_equal(upright, np.rot90(stored, k=-1))


def test_one_by_one_image_is_resized_to_the_input(tmp_path):
    Image.fromarray(np.array([[[200, 10, 30]]], np.uint8)).save(tmp_path / "dot.png")
    pixels = load_input(tmp_path / "dot.png", SIZE)
    assert pixels.shape == (*SIZE, 3) and (pixels == [200, 10, 30]).all()


def test_an_image_over_the_decompression_bomb_limit_is_refused(tmp_path, monkeypatch, gradient):
    Image.fromarray(gradient).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 800 pixels is over twice the limit: PIL refuses
    _refused(tmp_path / "huge.png", "decompression bomb|exceeds limit")


def test_embed_names_the_bad_file_in_one_line(tmp_path, gradient):
    good = tmp_path / "good.jpg"
    good.write_bytes(_jpeg_bytes(gradient))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(_jpeg_bytes(gradient)[:200])
    result = CliRunner().invoke(main, ["embed", "--weights", "sepg_tiny.synthetic", "--modality", "visible",
                                       str(good), str(bad)])
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in result.output


def test_a_corrupt_image_in_a_loader_worker_is_reported_as_its_own_one_line_message(tmp_path, gradient):
    """DataLoader workers re-raise with their traceback inside the message; the user sees the original line."""
    from torch.utils.data import DataLoader

    from sepgzoo.data.datasets import Sample
    from sepgzoo.errors import user_message
    from sepgzoo.pipeline.torchdata import ImageDataset
    from sepgzoo.pipeline.transforms import build_test_transform

    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    good.write_bytes(_jpeg_bytes(gradient))
    bad.write_bytes(_jpeg_bytes(gradient)[:200])
    dataset = ImageDataset([Sample(str(good), 0, 1, "visible"), Sample(str(bad), 0, 1, "visible")],
                           build_test_transform(SIZE))
    with pytest.raises(UserError) as info:
        list(DataLoader(dataset, batch_size=1, num_workers=1))
    assert "Traceback" in str(info.value)  # what torch hands over
    message = user_message(info.value)
    assert message.startswith(f"cannot decode image {bad}") and "\n" not in message
    assert user_message(UserError("plain\ntwo lines")) == "plain\ntwo lines"  # other messages are left alone
