"""The torch-free runtime: import without torch, providers, batching/batch invariance, image loading, errors."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from deploy_helpers import MAX_BATCH, exported, write_images

from sepgzoo.deploy.contract import cosine_rows
from sepgzoo.deploy.runtime import open_model, rank
from sepgzoo.errors import UserError

H, W, D = 64, 32, 384


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return exported(tmp_path_factory.getbasetemp())


BLOCK_TORCH = textwrap.dedent("""
    import importlib.abc, sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch.") or name in ("timm", "torchvision"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockTorch())
""")


def test_runtime_runs_with_torch_unimportable(export_dir, tmp_path):
    images = write_images(tmp_path / "images", 3, grey=True)
    script = BLOCK_TORCH + textwrap.dedent(f"""
        import json, sys
        import sepgzoo, sepgzoo.deploy.runtime, sepgzoo.deploy.tensorrt_build, sepgzoo.deploy.tensorrt_runtime
        from sepgzoo.deploy.runtime import open_model
        try:
            import torch
        except ImportError:
            blocked = True
        model = open_model({str(export_dir)!r}, "infrared")
        emb = model.embed_paths({[str(p) for p in images]!r}, batch_size=2)
        print(json.dumps({{"torch_loaded": "torch" in sys.modules, "blocked": blocked, "provider": model.provider,
                          "version": sepgzoo.__version__, "embeddings": emb.tolist()}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["blocked"] and not out["torch_loaded"] and out["provider"] == "CPUExecutionProvider"
    emb = np.array(out["embeddings"])
    assert emb.shape == (3, D)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)  # what a user receives has norm 1
    here = open_model(export_dir, "infrared").embed_paths(images)
    assert cosine_rows(emb, here).min() > 0.99999


def test_sepgzoo_public_names_still_work():
    import sepgzoo

    assert sepgzoo.create_model("test_sepg").num_features == D
    assert sepgzoo.Modality.VISIBLE.value == "visible" and sepgzoo.is_model("sepg_resnet50")
    assert {"SEPGNet", "TrainOutput", "list_models", "losses", "seg"} <= set(dir(sepgzoo))
    with pytest.raises(AttributeError):
        sepgzoo.not_a_name  # noqa: B018


@pytest.mark.parametrize("modality", ["visible", "infrared"])
def test_batch_invariance(export_dir, modality):
    model = open_model(export_dir, modality)
    assert model.max_batch == MAX_BATCH and model.input_size == (H, W) and model.embedding_dim == D
    images = np.random.default_rng(1).integers(0, 256, size=(MAX_BATCH, H, W, 3), dtype=np.uint8)
    full = model.embed(images)
    singles = np.concatenate([model.embed(images[i]) for i in range(MAX_BATCH)])
    three = model.embed(images[:3])
    assert cosine_rows(singles, full).min() > 0.9999 and cosine_rows(three, full[:3]).min() > 0.9999
    # more images than max_batch are split into chunks
    assert model.embed(np.concatenate([images, images[:1]])).shape == (MAX_BATCH + 1, D)


def test_fp16_variant_and_file_opening(export_dir):
    fp16 = open_model(export_dir, "visible", fp16=True)
    assert fp16.precision == "fp16" and fp16.path.name == "visible_fp16.onnx"
    by_file = open_model(export_dir / "visible.onnx")
    images = np.random.default_rng(2).integers(0, 256, size=(2, H, W, 3), dtype=np.uint8)
    assert cosine_rows(fp16.embed(images), by_file.embed(images)).min() > 0.999


def test_open_model_errors(export_dir, tmp_path):
    with pytest.raises(UserError, match="which modality"):
        open_model(export_dir)
    with pytest.raises(UserError, match="embeds visible images, but infrared"):
        open_model(export_dir / "visible.onnx", "infrared")
    with pytest.raises(UserError, match="not in this onnxruntime build"):
        open_model(export_dir, "visible", providers=["NoSuchExecutionProvider"])
    with pytest.raises(UserError, match="export.json not found"):
        open_model(tmp_path, "visible")
    with pytest.raises(UserError, match=r"uint8 \[N, 64, 32, 3\]"):
        open_model(export_dir, "visible").embed(np.zeros((1, 32, 64, 3), np.uint8))


def test_rank_orders_by_cosine():
    gallery = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    order, scores = rank(np.array([[0.0, 2.0]]), gallery, top_k=5)
    assert order.tolist() == [[2, 1, 0]] and scores[0].tolist() == pytest.approx([1.0, 0.8, 0.0])
