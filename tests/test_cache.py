"""The optional resized-image cache gives exactly the tensors of the uncached pipeline, and notices changed files."""

import os

import numpy as np
import pytest
import torch

import sepgzoo.data.cache as cache_module
from sepgzoo import create_model
from sepgzoo.data.cache import ResizedImageCache
from sepgzoo.data.datasets import Sample, load_image
from sepgzoo.evaluation.features import extract_features
from sepgzoo.pipeline.transforms import build_test_transform
from sepgzoo.preprocess import resize_step

SIZE = (64, 32)


@pytest.fixture
def images(sysu_root):
    return sorted((sysu_root / "cam1").rglob("*.jpg"))[:4]


def test_cached_image_equals_the_resize_step_and_is_read_back_without_decoding(images, tmp_path, monkeypatch):
    cache = ResizedImageCache(tmp_path, SIZE)
    first = np.asarray(cache(images[0]))
    np.testing.assert_array_equal(first, np.asarray(resize_step(SIZE)(load_image(images[0]))))
    assert cache.entry(images[0]).is_file()
    monkeypatch.setattr(cache_module, "load_image", lambda path: pytest.fail("decoded again"))
    np.testing.assert_array_equal(np.asarray(cache(images[0])), first)


def test_cached_and_uncached_pipelines_give_identical_tensors(images, tmp_path, monkeypatch):
    transform = build_test_transform(SIZE)
    cache = ResizedImageCache(tmp_path, SIZE)
    for path in images:
        torch.testing.assert_close(transform(cache(path)), transform(load_image(path)), rtol=0, atol=0)
    samples = [Sample(str(p), 0, 1, "visible") for p in images]
    model = create_model("test_sepg").eval()
    monkeypatch.setenv("SEPGZOO_CACHE", str(tmp_path))
    plain = extract_features(model, samples, "visible")
    cached = extract_features(model, samples, "visible", cached=True)
    np.testing.assert_array_equal(plain, cached)
    assert len(list((tmp_path / "resized").rglob("*.npy"))) == len(images)


def test_a_changed_image_gets_a_new_entry_and_a_damaged_entry_is_rebuilt(images, tmp_path):
    path = tmp_path / "person.jpg"
    path.write_bytes(images[0].read_bytes())
    cache = ResizedImageCache(tmp_path / "cache", SIZE)
    cache(path)
    old_entry = cache.entry(path)
    path.write_bytes(images[1].read_bytes())
    os.utime(path, ns=(1, 1))
    assert cache.entry(path) != old_entry
    np.testing.assert_array_equal(np.asarray(cache(path)), np.asarray(resize_step(SIZE)(load_image(images[1]))))
    cache.entry(path).write_bytes(b"not an array")
    np.testing.assert_array_equal(np.asarray(cache(path)), np.asarray(resize_step(SIZE)(load_image(images[1]))))
