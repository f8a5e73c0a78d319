"""Shared fixtures: tiny synthetic data sets in the official SYSU-MM01, RegDB and LLCM layouts (written once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sepgzoo.data.synthetic import write_synthetic


@pytest.fixture(scope="session")
def sysu_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-identity SYSU-MM01 tree (cam1..cam6/PPPP/NNNN.jpg + exp/*_id.txt), 3 images per (id, camera)."""
    root = tmp_path_factory.mktemp("data") / "SYSU-MM01"
    write_synthetic("sysu", root, ids=12, seed=0, images_per_camera=3)
    return root


@pytest.fixture(scope="session")
def regdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-identity RegDB tree (Visible/, Thermal/, idx/ with 10 splits), 4 + 4 images per identity."""
    root = tmp_path_factory.mktemp("data") / "RegDB"
    write_synthetic("regdb", root, ids=10, seed=0, images_per_camera=4)
    return root


@pytest.fixture(scope="session")
def llcm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 9-identity LLCM tree (idx/, train_*/, test_vis/, test_nir/ with an empty cam3), 2 images per camera."""
    root = tmp_path_factory.mktemp("data") / "LLCM"
    write_synthetic("llcm", root, ids=9, seed=0, images_per_camera=2)
    return root


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """sepgzoo's cache (synthetic data, zoo folders) goes to a temporary folder; the Hugging Face hub is offline."""
    import os

    saved = {key: os.environ.get(key) for key in ("SEPGZOO_CACHE", "HF_HUB_OFFLINE")}
    os.environ["SEPGZOO_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` run only where CUDA is available (never in CI)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
