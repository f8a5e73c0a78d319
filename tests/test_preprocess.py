"""One preprocessing contract: evaluation, `embed`, the runtime and the export metadata see the same pixels;
every embedding a user receives has norm 1 and ranks as before; retired export formats are refused."""

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from deploy_helpers import exported, tiny_checkpoint, write_images
from PIL import Image

from sepgzoo.cli import main
from sepgzoo.data.datasets import Sample
from sepgzoo.deploy.contract import EXPORT_JSON, PARITY_COSINE, cosine_rows, read_export_json
from sepgzoo.deploy.runtime import open_model
from sepgzoo.errors import UserError
from sepgzoo.evaluation.features import extract_features
from sepgzoo.evaluation.metrics import evaluate, feature_distance
from sepgzoo.hub.checkpoint import load_model, read_meta
from sepgzoo.pipeline.transforms import build_test_transform, build_train_transform
from sepgzoo.preprocess import contract, decode_rgb, load_input
from sepgzoo.utils.tensors import to_unit_range

H, W = 64, 32


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """JPEGs and PNGs larger and smaller than the model's 64 x 32 input, colour and grey."""
    root = tmp_path_factory.mktemp("photos")
    return (write_images(root / "big", 3, size=(150, 61), seed=1) + write_images(root / "small", 2, size=(40, 20),
                                                                                  seed=2, grey=True))


def _samples(paths, modality):
    return [Sample(str(p), i, 1, modality) for i, p in enumerate(paths)]


def _embed_json(args):
    result = CliRunner().invoke(main, ["embed", *(str(a) for a in args)])
    assert result.exit_code == 0, result.output
    return np.array(json.loads(result.output)["embeddings"], dtype=np.float32)


def test_load_input_resizes_bilinear_and_greys_to_rgb(tmp_path):
    grey = np.arange(40 * 20, dtype=np.uint8).reshape(40, 20)
    Image.fromarray(grey).save(tmp_path / "ir.png")
    image = load_input(tmp_path / "ir.png", (H, W))
    expected = np.asarray(Image.fromarray(grey).convert("RGB").resize((W, H), Image.BILINEAR))
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    np.testing.assert_array_equal(image, expected)
    assert (image[..., 0] == image[..., 2]).all()
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(UserError, match=r"cannot decode image .*bad\.jpg"):
        load_input(tmp_path / "bad.jpg", (H, W))


def test_training_and_evaluation_transforms_start_with_the_contract(photos):
    for path in photos:
        expected = to_unit_range(torch.from_numpy(load_input(path, (H, W))).permute(2, 0, 1))
        torch.testing.assert_close(build_test_transform((H, W))(decode_rgb(path)), expected, rtol=0, atol=0)
        plain = build_train_transform((H, W), pad=0, flip_p=0, erasing_p=0)  # augmentation off: only the contract
        torch.testing.assert_close(plain(decode_rgb(path)), expected, rtol=0, atol=0)


def test_embed_checkpoint_equals_the_evaluation_features(photos, tmp_path_factory):
    checkpoint = tiny_checkpoint(tmp_path_factory.getbasetemp())
    model, _ = load_model(checkpoint)
    for modality in ("visible", "infrared"):
        evaluated = extract_features(model, _samples(photos, modality), modality, batch_size=3)
        embedded = _embed_json(["--checkpoint", checkpoint, "--modality", modality, "--json", *photos])
        np.testing.assert_allclose(embedded, evaluated, atol=1e-5, rtol=0)


def test_embed_onnx_is_within_the_parity_cosine_of_the_evaluation_features(photos, tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    model, _ = load_model(tiny_checkpoint(root))
    for modality in ("visible", "infrared"):
        evaluated = extract_features(model, _samples(photos, modality), modality)
        deployed = _embed_json(["--model", exported(root), "--modality", modality, "--json", *photos])
        assert cosine_rows(deployed, evaluated).min() >= PARITY_COSINE["fp32"]


def test_every_embedding_a_user_receives_has_norm_one(photos, tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    model, _ = load_model(tiny_checkpoint(root))
    samples = _samples(photos, "visible")
    for flip in (False, True):
        norms = np.linalg.norm(extract_features(model, samples, "visible", flip=flip), axis=1)
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    for args in (["--checkpoint", tiny_checkpoint(root)], ["--model", exported(root)]):
        norms = np.linalg.norm(_embed_json([*args, "--modality", "infrared", "--json", *photos]), axis=1)
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    runtime = open_model(exported(root), "visible").embed_paths(photos)
    np.testing.assert_allclose(np.linalg.norm(runtime, axis=1), 1.0, rtol=1e-5)
    fp16 = open_model(exported(root), "visible", fp16=True).embed_paths(photos)
    np.testing.assert_allclose(np.linalg.norm(fp16, axis=1), 1.0, rtol=1e-3)


def test_unit_norm_ranks_exactly_as_the_per_part_normalised_concatenation(photos, tmp_path_factory):
    """Old embeddings were the unit-norm embedding x sqrt(parts): every metric must be identical."""
    model, _ = load_model(tiny_checkpoint(tmp_path_factory.getbasetemp()))
    query = extract_features(model, _samples(photos[:2], "infrared"), "infrared")
    gallery = extract_features(model, _samples(photos, "visible"), "visible")
    pids_q, pids_g = np.array([0, 1]), np.array([0, 1, 0, 1, 2])
    cams_q, cams_g = np.array([3, 3]), np.array([1, 1, 2, 2, 1])
    old = np.sqrt(model.parts)
    for normalize in (True, False):
        new = evaluate(feature_distance(query, gallery, normalize), pids_q, pids_g, cams_q, cams_g, "standard")
        before = evaluate(feature_distance(query * old, gallery * old, normalize) / old, pids_q, pids_g, cams_q,
                          cams_g, "standard")
        np.testing.assert_allclose(new["cmc"], before["cmc"])
        assert new["mAP"] == pytest.approx(before["mAP"])


def test_model_json_export_json_and_onnx_metadata_state_the_contract(tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    expected = contract((H, W))
    assert expected["resize"]["filter"] == "bilinear" and expected["resize"]["height"] == H
    assert read_meta(tiny_checkpoint(root))["preprocess"] == expected
    record = read_export_json(exported(root))
    assert record["preprocess"] == expected and record["output"]["norm"] == 1.0
    assert open_model(exported(root), "infrared").metadata["preprocess"] == expected


def test_an_export_of_the_retired_format_is_refused_with_what_to_do(tmp_path_factory, tmp_path):
    old = shutil.copytree(exported(tmp_path_factory.getbasetemp()), tmp_path / "old")
    record = json.loads((old / EXPORT_JSON).read_text())
    (old / EXPORT_JSON).write_text(json.dumps({**record, "format": "sepgzoo-export/1"}))
    with pytest.raises(UserError, match=r"older sepgzoo .*norm sqrt\(parts\).*sepgzoo export"):
        open_model(old, "visible")
    (old / EXPORT_JSON).write_text(json.dumps({**record, "format": "something-else"}))
    with pytest.raises(UserError, match=r"export\.json has no sepgzoo export metadata"):
        open_model(old, "visible")
