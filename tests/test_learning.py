"""Does training learn, and does training see what evaluation sees? Heads, classifiers, diagnostics, a tiny run."""

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sepgzoo.config import LossCfg, load_recipe
from sepgzoo.hub.factory import create_model
from sepgzoo.models.layers import CosineClassifier, ModalityBatchNorm1d
from sepgzoo.training.diagnostics import classifier_fit, trunk_gradient_norms
from sepgzoo.training.engine import train
from sepgzoo.training.losses import sepg_loss

SIZE = (64, 32)


def images(batch: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, 3, *SIZE, generator=torch.Generator().manual_seed(seed))


def test_cosine_classifier_is_scale_times_cosine():
    head = CosineClassifier(8, 3, scale=16.0)
    x = torch.randn(5, 8)
    w, f = head.weight.detach().numpy(), x.numpy()
    expected = 16.0 * (f @ w.T) / np.linalg.norm(f, axis=1, keepdims=True) / np.linalg.norm(w, axis=1)
    np.testing.assert_allclose(head(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(head(7.0 * x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)  # feature norm free


def test_metric_features_never_see_dropout():
    """PABA must train the vector retrieval ranks with: the part embeddings do not change with dropout masks."""
    model = create_model("test_sepg", num_classes=4, dropout=0.5).train()
    batch = (images(4, 0), images(4, 1))
    torch.manual_seed(0)
    first = model(batch)
    torch.manual_seed(1)
    second = model(batch)
    torch.testing.assert_close(first.part_embeddings, second.part_embeddings)
    assert not torch.allclose(first.part_logits, second.part_logits), "the classifiers do see dropout"


@pytest.mark.parametrize("part_norm", ["modality", "joint"])
def test_part_heads_normalise_in_training_as_evaluation_does(part_norm):
    """With running statistics set to the last batch's (momentum 1), eval-mode embeddings of each modality
    equal the training-mode ones: the part BatchNorm uses the same statistics in both modes."""
    model = create_model("test_sepg", num_classes=4, dropout=0.0, part_norm=part_norm)
    for module in model.modules():
        if isinstance(module, (torch.nn.modules.batchnorm._BatchNorm, ModalityBatchNorm1d)):
            module.momentum = 1.0
    visible, infrared = images(16, 2), images(16, 3)
    with torch.no_grad():
        trained = model.train()((visible, infrared)).part_embeddings  # [parts, 32, D]
        model.eval()
        evaluated = torch.cat([model(visible, modality="visible"), model(infrared, modality="infrared")])
    evaluated = evaluated.view(32, model.parts, -1).permute(1, 0, 2) * model.parts ** 0.5  # unit-norm parts again
    cosine = (trained * evaluated).sum(-1)
    assert cosine.min() > 0.999, f"train/eval part embeddings differ: min cosine {cosine.min():.4f}"


def test_modality_batchnorm_normalises_each_modality_with_its_own_statistics():
    norm = ModalityBatchNorm1d(3, ("visible", "infrared")).train()
    x_vis, x_ir = torch.randn(8, 3) + 5.0, torch.randn(8, 3) * 3.0 - 2.0
    for x, name in ((x_vis, "visible"), (x_ir, "infrared")):
        expected = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
        torch.testing.assert_close(norm(x, name), expected)
    torch.testing.assert_close(norm.running_mean_visible, 0.1 * x_vis.mean(0))
    torch.testing.assert_close(norm.running_mean_infrared, 0.1 * x_ir.mean(0))


def test_classifier_fit_matches_a_plain_computation():
    model = create_model("test_sepg", num_classes=4).train()
    labels_v, labels_i = torch.tensor([0, 0, 1, 2]), torch.tensor([1, 3, 3, 2])
    out = model((images(4, 4), images(4, 5)))
    fit = classifier_fit(out, labels_v, labels_i)
    labels = torch.cat([labels_v, labels_i])
    ce_parts = np.mean([F.cross_entropy(out.part_logits[i], labels).item() for i in range(model.parts)])
    acc_parts = np.mean([(out.part_logits[i].argmax(-1) == labels).float().mean().item() for i in range(model.parts)])
    assert float(fit["ce_specific"]) == pytest.approx(F.cross_entropy(out.global_logits, labels).item(), rel=1e-5)
    assert float(fit["ce_parts"]) == pytest.approx(ce_parts, rel=1e-5)
    assert float(fit["acc_parts"]) == pytest.approx(acc_parts, abs=1e-6)


def test_trunk_gradient_norms_match_autograd_per_term():
    model = create_model("test_sepg", num_classes=4).train()
    shared = []
    model.trunk.register_forward_hook(lambda mod, inp, out: shared.append(out))
    labels_v, labels_i = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1])
    terms = sepg_loss(model((images(4, 6), images(4, 7))), labels_v, labels_i, LossCfg(paba=2.5))
    norms = trunk_gradient_norms(terms, shared[0])
    assert set(norms) == {"grad_id_specific", "grad_id_parts", "grad_paba"}
    (expected,) = torch.autograd.grad(terms["paba"], shared[0], retain_graph=True)
    assert float(norms["grad_paba"]) == pytest.approx(expected.norm().item(), rel=1e-5)
    assert float(norms["grad_paba"]) != pytest.approx(float(norms["grad_id_parts"]), rel=1e-2)


def read_log(run) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "log.csv").read_text().splitlines()))


def test_training_cross_entropy_falls_below_uniform_on_a_tiny_run(sysu_root, tmp_path):
    """The full recipe (SEG + PABA, lr 0.03) on tiny data: each ID term's training CE ends below ln C and below
    where it started, and the diagnostics reach log.csv."""
    recipe = load_recipe("synthetic", [
        f"data.root={sysu_root}", "model.name=test_sepg", "model.parts=4", "model.part_dim=32", "data.height=64",
        "data.width=32", "data.ids_per_batch=4", "data.images_per_id=2", "data.workers=0", "train.epochs=12",
        "train.iters_per_epoch=6", "optim.milestones=[10]", "train.evaluate=false", "train.log_grad_norms=true"])
    rows = read_log(train(recipe, output=tmp_path / "run"))
    uniform = float(rows[0]["ln_classes"])
    assert uniform == pytest.approx(math.log(8), abs=1e-4)  # 8 training identities in the fixture
    for key in ("ce_specific", "ce_parts"):
        first, last = float(rows[0][key]), float(rows[-1][key])
        assert last < uniform and last < first, f"{key}: {first:.3f} -> {last:.3f} (ln C = {uniform:.3f})"
    assert float(rows[-1]["acc_specific"]) > 1 / 8
    assert {"grad_id_specific", "grad_id_parts", "grad_paba"} <= set(rows[0])
