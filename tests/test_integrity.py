"""`unreadable_images`: every file decoded as training decodes it; the broken ones come back with the reason, in
order."""

import numpy as np
from PIL import Image

from sepgzoo.data.integrity import unreadable_images


def test_unreadable_images_returns_each_broken_file_with_its_reason_in_input_order(tmp_path, capsys):
    rng = np.random.default_rng(0)
    good = []
    for i, suffix in enumerate(["jpg", "png", "jpg", "bmp"]):
        path = tmp_path / f"good_{i}.{suffix}"
        Image.fromarray(rng.integers(0, 256, (24, 12, 3), dtype=np.uint8)).save(path)
        good.append(path)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good[0].read_bytes()[:200])
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    missing = tmp_path / "missing.jpg"
    paths = [good[0], text, good[1], truncated, good[2], folder, empty, missing, good[3]]

    problems = unreadable_images(paths, workers=3, progress=False)

    assert [path for path, _ in problems] == [str(p) for p in (text, truncated, folder, empty, missing)]
    reasons = dict(problems)
    assert "cannot identify image file" in reasons[str(text)]
    assert "truncated" in reasons[str(truncated)].lower()
    assert "directory" in reasons[str(folder)] and "not found" in reasons[str(missing)]
    assert not reasons[str(truncated)].startswith("cannot decode image")  # the path is not repeated in the reason
    assert capsys.readouterr().err == ""  # progress=False: no bar
    assert unreadable_images(good, workers=2, progress=False) == []
    unreadable_images(good[:1], progress=True)
    assert "decoding images" in capsys.readouterr().err  # the progress bar goes to stderr
