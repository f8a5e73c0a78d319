"""SEPG-Net model contract: shared trunk, per-modality stages, shapes, gradients, registry, weights loading."""

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

import sepgzoo
from sepgzoo.config import LossCfg
from sepgzoo.errors import UserError
from sepgzoo.hub.factory import create_model, list_models
from sepgzoo.models.seg import spectral_enhance
from sepgzoo.models.sepg import SEPGNet, stripe_pool
from sepgzoo.training.losses import sepg_loss

SIZE = (64, 32)

# One small timm backbone per supported family.
FAMILY_BACKBONES = [
    "test_resnet",
    "resnext50_32x4d",
    "test_convnext",
    "test_efficientnet",
    "mobilenetv3_small_050",
    "regnetx_002",
]


def tiny(**kwargs) -> SEPGNet:
    return create_model("test_sepg", num_classes=kwargs.pop("num_classes", 5), **kwargs)


def images(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, *SIZE, generator=torch.Generator().manual_seed(seed))


def test_registry_lists_the_paper_model_and_drops_none_kwargs():
    assert {"sepg", "sepg_resnet50", "test_sepg"} <= set(list_models())
    assert list_models("sepg_*") == ["sepg_resnet50", "sepg_tiny"]
    model = create_model("test_sepg", num_classes=None, parts=None)
    assert model.parts == 6 and model.num_classes == 0
    with pytest.raises(UserError, match="unknown model 'sepg_vgg'"):
        create_model("sepg_vgg")


def test_trunk_runs_once_on_both_modalities_and_specific_stages_are_distinct():
    model = tiny().train()
    calls = []
    model.trunk.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    out = model((images(4), images(3, seed=1)))
    assert calls == [7], "eq. 5-6: one pass of the concatenated batch through the shared trunk"
    vis, ir = model.specific["visible"], model.specific["infrared"]
    assert vis is not ir
    assert not {id(p) for p in vis.parameters()} & {id(p) for p in ir.parameters()}
    for p_vis, p_ir in zip(vis.parameters(), ir.parameters()):
        torch.testing.assert_close(p_vis, p_ir)  # copies of the same stage at initialisation
    assert out.global_logits.shape == (7, 5)
    assert out.part_logits.shape == (6, 7, 5) and out.part_embeddings.shape == (6, 7, 64)
    torch.testing.assert_close(out.part_embeddings.norm(dim=-1), torch.ones(6, 7))


def test_gradient_reaches_every_trainable_parameter():
    model = tiny().train()
    for module in model.modules():  # timm zero-initialises the last BN of each block, which blocks gradients at step 0
        if isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
    out = model((images(4), images(4, seed=1)))
    labels = torch.tensor([0, 0, 1, 1])
    loss = sepg_loss(out, labels, labels, LossCfg(cross_centre=1.0))["total"]
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_eval_embedding_shape_norms_batch_one_and_batch_invariance():
    model = tiny().eval()
    x = images(3)
    with torch.no_grad():
        for modality in ("visible", "infrared", "ir"):
            emb = model(x, modality=modality)
            assert emb.shape == (3, 6 * 64) and emb.dtype == torch.float32
            torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))  # what a user receives has norm 1
            torch.testing.assert_close(emb.view(3, 6, 64).norm(dim=-1), torch.full((3, 6), 6 ** -0.5))  # equal parts
            single = torch.cat([model(x[i : i + 1], modality=modality) for i in range(3)])
            torch.testing.assert_close(single, emb, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="modality"):
        model(x)


def test_visible_images_get_seg_then_normalisation_and_the_switch_turns_it_off():
    x = images(2)
    with_seg, without = tiny(seg=True), tiny(seg=False)
    mean, std = with_seg.mean, with_seg.std
    torch.testing.assert_close(with_seg.prepare(x, sepgzoo.Modality.VISIBLE), (spectral_enhance(x) - mean) / std)
    torch.testing.assert_close(without.prepare(x, sepgzoo.Modality.VISIBLE), (x - mean) / std)
    torch.testing.assert_close(with_seg.prepare(x, sepgzoo.Modality.INFRARED), (x - mean) / std)


def test_stripe_pool_equals_adaptive_pooling():
    for height in (4, 7, 18):
        x = torch.randn(2, 5, height, 3)
        expected = F.adaptive_avg_pool2d(x, (12, 1)).squeeze(-1).transpose(1, 2)
        torch.testing.assert_close(stripe_pool(x, 12), expected)


def test_stripe_pool_builds_no_tensor_from_python_data(monkeypatch):
    """torch.tensor(list, device=cuda) is a blocking host-to-device copy in every forward on a GPU."""
    x = torch.randn(2, 5, 18, 3)
    expected = stripe_pool(x, 12)
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: pytest.fail("stripe_pool called torch.tensor"))
    torch.testing.assert_close(stripe_pool(x, 12), expected)


@pytest.mark.parametrize("backbone", FAMILY_BACKBONES)
def test_every_supported_family_builds_and_runs(backbone):
    model = create_model("sepg", backbone=backbone, num_classes=3, parts=4, part_dim=16, input_size=SIZE)
    out = model.train()((images(2), images(2, seed=1)))
    assert out.part_embeddings.shape == (4, 4, 16)
    with torch.no_grad():
        assert model.eval()(images(1), modality="visible").shape == (1, 64)


def test_unsupported_family_is_a_clear_error():
    with pytest.raises(UserError, match="Supported families"):
        create_model("sepg", backbone="test_vit")


def test_split_at_moves_the_cut():
    default, earlier = tiny(), tiny(split_at=2)
    assert default.stage_spec.shared_until == "layer3" and earlier.stage_spec.shared_until == "layer2"
    assert sum(p.numel() for p in earlier.specific.parameters()) > sum(p.numel() for p in default.specific.parameters())
    with pytest.raises(UserError, match="split_at"):
        tiny(split_at=4)


def test_backbone_weights_from_a_local_file(tmp_path):
    reference = timm.create_model("test_resnet")
    path = tmp_path / "test_resnet.pth"
    torch.save(reference.state_dict(), path)
    model = create_model("test_sepg", pretrained=str(path))
    torch.testing.assert_close(model.trunk[0][0].weight, reference.conv1[0].weight)
    torch.testing.assert_close(model.specific["infrared"][0][0].conv1.weight, reference.layer4[0].conv1.weight)
    with pytest.raises(UserError, match="does-not-exist.pth"):
        create_model("test_sepg", pretrained=str(tmp_path / "does-not-exist.pth"))


def test_reset_classifier_keeps_the_embedding():
    model = tiny().eval()
    x = images(3)
    with torch.no_grad():
        before = model(x, modality="infrared")
        model.reset_classifier(7)
        after_new_classes = model(x, modality="infrared")
        model.reset_classifier(0)
        after_removal = model(x, modality="infrared")
    torch.testing.assert_close(after_new_classes, before, rtol=0, atol=0)
    torch.testing.assert_close(after_removal, before, rtol=0, atol=0)
    assert all(head.classifier is None for head in model.part_heads)
    with pytest.raises(ValueError, match="num_classes"):
        model.train()((images(2), images(2)))
