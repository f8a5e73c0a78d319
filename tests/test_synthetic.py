"""Synthetic data: official layouts, determinism, modality look, and shared identity cues."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sepgzoo.data.synthetic import SYSU_CAMERAS, make_identities, render, write_synthetic
from sepgzoo.errors import UserError


def test_sysu_layout(sysu_root):
    assert sorted(p.name for p in sysu_root.iterdir()) == ["cam1", "cam2", "cam3", "cam4", "cam5", "cam6", "exp"]
    lines = {n: (sysu_root / "exp" / f"{n}_id.txt").read_text().splitlines() for n in ("train", "val", "test")}
    ids = {n: [int(t) for t in v[0].split(",")] for n, v in lines.items()}
    assert all(len(v) == 1 for v in lines.values())
    assert len(ids["train"]) + len(ids["val"]) + len(ids["test"]) == 12
    assert not set(ids["train"]) & set(ids["test"]) and not set(ids["val"]) & set(ids["test"])
    for path in sysu_root.rglob("*.jpg"):
        cam, pid, name = path.parts[-3:]
        assert cam.startswith("cam") and len(pid) == 4 and pid.isdigit() and len(name) == 8
        assert Image.open(path).mode == ("L" if cam in ("cam3", "cam6") else "RGB")
    # cam1 and cam2 hold the same identities (indoor people), as in the real data
    assert {p.name for p in (sysu_root / "cam1").iterdir()} == {p.name for p in (sysu_root / "cam2").iterdir()}


def test_regdb_layout(regdb_root):
    for trial in range(1, 11):
        train = (regdb_root / "idx" / f"train_visible_{trial}.txt").read_text().splitlines()
        test = (regdb_root / "idx" / f"test_thermal_{trial}.txt").read_text().splitlines()
        train_ids = {line.split()[0].split("/")[1] for line in train}
        test_ids = {line.split()[0].split("/")[1] for line in test}
        assert len(train_ids) == 5 and len(test_ids) == 5 and not train_ids & test_ids
        assert all((regdb_root / line.split()[0]).is_file() for line in train)
    assert len(list((regdb_root / "Thermal").rglob("*.bmp"))) == 10 * 4


def test_deterministic(tmp_path):
    a = write_synthetic("regdb", tmp_path / "a", ids=6, seed=3, images_per_camera=2)
    write_synthetic("regdb", tmp_path / "b", ids=6, seed=3, images_per_camera=2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)
    assert a["images"] == 24


def test_infrared_has_no_colour_and_identities_are_distinct():
    people = make_identities(40, seed=0)
    cues = {(p.width, p.leg_ratio, p.top, p.bottom, p.bag, p.hat) for p in people}
    assert len(cues) == 40
    rng = np.random.default_rng(0)
    assert render(people[0], SYSU_CAMERAS[3], rng).mode == "L"
    visible = np.asarray(render(people[0], SYSU_CAMERAS[1], rng), dtype=float)
    assert visible.shape == (128, 64, 3) and np.abs(visible[..., 0] - visible[..., 1]).mean() > 5


def test_shared_cues_make_identities_recoverable():
    """Silhouettes (part maps without colour) of one person are closer than those of two different people."""
    from sepgzoo.data.synthetic import BG, draw_parts
    people = make_identities(8, seed=1)

    def silhouette(person, seed):
        parts = draw_parts(person, np.random.default_rng(seed), scale=0.9, centre_x=32.0)
        return np.stack([parts == BG, parts == 2, parts == 3]).astype(float)  # body, pattern colour A / B

    def dist(a, b):
        return min(np.abs(a - b).mean(), np.abs(a - b[:, :, ::-1]).mean())  # mirrored poses allowed

    same = np.mean([dist(silhouette(p, 0), silhouette(p, 1)) for p in people])
    diff = np.mean([dist(silhouette(p, 0), silhouette(q, 1)) for p in people for q in people if p is not q])
    assert same < 0.7 * diff


def test_bad_arguments(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(UserError, match="is not empty"):
        write_synthetic("sysu", tmp_path / "full")
    with pytest.raises(UserError, match="unknown synthetic layout"):
        write_synthetic("market", tmp_path / "m")
    with pytest.raises(UserError, match="too small"):
        write_synthetic("sysu", tmp_path / "s", ids=2)
