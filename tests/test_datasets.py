"""Dataset readers on synthetic official layouts: counts computed independently from the files on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from sepgzoo.data.datasets import INFRARED, VISIBLE, Sample, load_image
from sepgzoo.data.registry import build_dataset, dataset_names, get_dataset
from sepgzoo.errors import UserError
from sepgzoo.pipeline.sampler import CrossModalitySampler
from sepgzoo.pipeline.torchdata import CrossModalityDataset, ImageDataset
from sepgzoo.pipeline.transforms import build_test_transform, build_train_transform
from sepgzoo.preprocess import list_images


def id_file(root: Path, name: str) -> list[int]:
    return [int(t) for t in (root / "exp" / f"{name}_id.txt").read_text().strip().split(",")]


def files_on_disk(root: Path, cams, pids) -> list[Path]:
    return [p for cam in cams for pid in pids for p in (root / f"cam{cam}" / f"{pid:04d}").glob("*.jpg")]


def test_sysu_train_counts_and_relabelling(sysu_root):
    ds = build_dataset("sysu", sysu_root)
    train_ids = set(id_file(sysu_root, "train")) | set(id_file(sysu_root, "val"))
    visible = files_on_disk(sysu_root, (1, 2, 4, 5), train_ids)
    infrared = files_on_disk(sysu_root, (3, 6), train_ids)
    assert sum(s.modality == VISIBLE for s in ds.train) == len(visible)
    assert sum(s.modality == INFRARED for s in ds.train) == len(infrared)
    assert sorted({s.pid for s in ds.train}) == list(range(len(train_ids)))
    # labels follow ascending original ids: the folder of every sample carries its original id
    original = sorted(train_ids)
    assert all(int(Path(s.path).parent.name) == original[s.pid] for s in ds.train)
    assert all(s.modality == (INFRARED if s.camid in (3, 6) else VISIBLE) for s in ds.train)


def test_sysu_query_is_every_infrared_test_image_in_order(sysu_root):
    ds = build_dataset("sysu_mm01", sysu_root)
    test_ids = sorted(id_file(sysu_root, "test"))
    assert len(ds.query) == len(files_on_disk(sysu_root, (3, 6), test_ids))
    keys = [(s.pid, s.camid, Path(s.path).name) for s in ds.query]
    assert keys == sorted(keys)
    assert {s.pid for s in ds.query} <= set(test_ids)


def test_regdb_counts_from_idx_files(regdb_root):
    for trial in (1, 7):
        ds = build_dataset("regdb", regdb_root, trial=trial)
        lines = {f"{split}_{m}": (regdb_root / "idx" / f"{split}_{m}_{trial}.txt").read_text().split("\n")
                 for split in ("train", "test") for m in ("visible", "thermal")}
        count = {k: sum(1 for line in v if line.strip()) for k, v in lines.items()}
        assert sum(s.modality == VISIBLE for s in ds.train) == count["train_visible"]
        assert sum(s.modality == INFRARED for s in ds.train) == count["train_thermal"]
        assert len(ds.test_visible) == count["test_visible"] and len(ds.test_infrared) == count["test_thermal"]
        assert {s.camid for s in ds.test_visible} == {1} and {s.camid for s in ds.test_infrared} == {2}
        assert sorted({s.pid for s in ds.train}) == list(range(len({s.pid for s in ds.train})))


def test_llcm_counts_and_cameras(llcm_root):
    ds = build_dataset("llcm", llcm_root)
    train_lines = [line for name in ("train_vis.txt", "train_nir.txt")
                   for line in (llcm_root / "idx" / name).read_text().splitlines() if line.strip()]
    assert len(ds.train) == len(train_lines)
    assert all(s.camid == int(Path(s.path).parent.parent.name[3:]) for s in ds.train)
    nir = ds.test_samples(INFRARED)
    assert len(nir) == len(list((llcm_root / "test_nir").rglob("*.jpg")))
    assert 3 not in {s.camid for s in nir}
    assert len(ds.test_samples(VISIBLE)) == len(list((llcm_root / "test_vis").rglob("*.jpg")))


def test_load_image_is_rgb_even_for_single_channel_infrared(sysu_root):
    path = next((sysu_root / "cam3").rglob("*.jpg"))
    assert Image.open(path).mode == "L"
    assert load_image(path).mode == "RGB"


def test_truncated_and_missing_images_name_the_path(tmp_path, sysu_root):
    good = next((sysu_root / "cam1").rglob("*.jpg"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match=str(bad)):
        load_image(bad)
    with pytest.raises(UserError, match="image not found: .*nothing.jpg"):
        load_image(tmp_path / "nothing.jpg")


def test_missing_root_and_split_files_are_named(tmp_path, sysu_root, regdb_root):
    with pytest.raises(UserError, match=f"SYSU-MM01 root not found: {tmp_path / 'none'}"):
        build_dataset("sysu", tmp_path / "none")
    copy = tmp_path / "sysu"
    shutil.copytree(sysu_root / "exp", copy / "exp")
    (copy / "exp" / "val_id.txt").unlink()
    with pytest.raises(UserError, match="val_id.txt"):
        build_dataset("sysu", copy)
    idx_only = tmp_path / "regdb_idx_only"
    shutil.copytree(regdb_root / "idx", idx_only / "idx")
    with pytest.raises(UserError, match=r"train_visible_1.txt:1: image .* does not exist"):
        build_dataset("regdb", idx_only)
    regdb = tmp_path / "regdb"
    shutil.copytree(regdb_root, regdb)
    (regdb / "idx" / "test_thermal_2.txt").unlink()
    with pytest.raises(UserError, match="list file not found: .*test_thermal_2.txt"):
        build_dataset("regdb", regdb, trial=2)
    with pytest.raises(UserError, match="trial 11 is out of range"):
        build_dataset("regdb", regdb, trial=11)


def test_identity_in_one_modality_only(tmp_path, sysu_root):
    copy = tmp_path / "sysu"
    shutil.copytree(sysu_root, copy)
    pid = id_file(copy, "train")[0]
    for cam in (3, 6):
        shutil.rmtree(copy / f"cam{cam}" / f"{pid:04d}", ignore_errors=True)
    with pytest.raises(UserError, match=f"{pid} \\(only visible\\)"):
        build_dataset("sysu", copy)
    ds = build_dataset("sysu", copy, skip_unpaired=True)
    assert len({s.pid for s in ds.train}) == len(id_file(copy, "train")) + len(id_file(copy, "val")) - 1


def test_registry_errors():
    with pytest.raises(UserError, match="did you mean 'regdb'"):
        build_dataset("regbd", "/tmp")
    with pytest.raises(UserError, match="unknown option"):
        build_dataset("sysu", "/tmp", trial=3)
    with pytest.raises(UserError, match="registered: llcm, regdb, synthetic, sysu"):
        get_dataset("market1501")


def test_builtin_datasets_are_registered_with_their_protocols():
    assert {"sysu", "regdb", "llcm", "synthetic"} <= set(dataset_names())
    assert get_dataset("SYSU-MM01").name == "sysu" and get_dataset("sysu_mm01").title == "SYSU-MM01"
    assert set(get_dataset("regdb").protocols) == {"regdb_v2i", "regdb_i2v"}
    assert get_dataset("regdb").split_option == "trial" and get_dataset("sysu").split_option is None
    assert not get_dataset("synthetic").needs_root and get_dataset("synthetic").reader is get_dataset("sysu").reader


def test_list_images_takes_the_package_image_suffixes(tmp_path):
    for name in ("b.JPG", "a.png", "c.bmp", "d.webp", "e.tif", "notes.txt", "f.jpeg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.bmp", "d.webp", "e.tif", "f.jpeg"]
    assert list_images(tmp_path / "absent") == []


def test_sample_is_frozen():
    sample = Sample("a.jpg", 1, 3, INFRARED)
    with pytest.raises(AttributeError):
        sample.pid = 2


def test_paired_loader_gives_identity_blocks(sysu_root):
    ds = build_dataset("sysu", sysu_root)
    data = CrossModalityDataset(ds.train, build_train_transform((32, 16)), build_train_transform((32, 16)))
    sampler = CrossModalitySampler(data.visible_labels, data.infrared_labels, num_ids=3, num_instances=2, seed=1)
    loader = torch.utils.data.DataLoader(data, batch_size=6, sampler=sampler)
    vis, ir, vis_labels, ir_labels = next(iter(loader))
    assert vis.shape == ir.shape == (6, 3, 32, 16) and vis.dtype == torch.float32
    assert 0.0 <= float(vis.min()) and float(vis.max()) <= 1.0
    assert vis_labels.tolist() == ir_labels.tolist()
    blocks = vis_labels.view(3, 2)
    assert (blocks == blocks[:, :1]).all() and len(set(blocks[:, 0].tolist())) == 3


def test_image_dataset_and_test_transform(sysu_root):
    ds = build_dataset("sysu", sysu_root)
    item = ImageDataset(ds.query[:2], build_test_transform((64, 32)))[1]
    assert item[0].shape == (3, 64, 32) and item[1] == ds.query[1].pid and item[2] == ds.query[1].camid
