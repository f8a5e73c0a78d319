"""PABA and the eq. 9 total against plain per-identity loops."""

import math

import pytest
import torch
import torch.nn.functional as F

from sepgzoo.config import LossCfg
from sepgzoo.models.sepg import TrainOutput
from sepgzoo.training.losses import cross_centre_loss, paba_loss, sepg_loss


def loop_paba(parts_a, parts_b, labels_a, labels_b, margin):
    """Eq. 7-8 written out with Python loops and math.dist."""
    total = 0.0
    for a, b, la, lb in ((parts_a, parts_b, labels_a, labels_b), (parts_b, parts_a, labels_b, labels_a)):
        for i in range(a.shape[0]):
            ids = [p for p in sorted(set(la.tolist())) if p in set(lb.tolist())]
            hinges = []
            for p in ids:
                members = [a[i, j].tolist() for j in range(a.shape[1]) if la[j] == p]
                anchor = [sum(col) / len(members) for col in zip(*members)]
                pos = max(math.dist(anchor, b[i, j].tolist()) for j in range(b.shape[1]) if lb[j] == p)
                negs = [math.dist(anchor, b[i, j].tolist()) for j in range(b.shape[1]) if lb[j] != p]
                hinges.append(max(pos - min(negs) + margin, 0.0) if negs else 0.0)
            total += sum(hinges) / len(hinges) if hinges else 0.0
    return total


@pytest.mark.parametrize("seed", range(4))
def test_paba_equals_loop(seed):
    g = torch.Generator().manual_seed(seed)
    labels_a = torch.randint(0, 5, (14,), generator=g)
    labels_b = torch.randint(0, 5, (11,), generator=g)
    parts_a = F.normalize(torch.randn(3, 14, 8, generator=g), dim=-1)
    parts_b = F.normalize(torch.randn(3, 11, 8, generator=g), dim=-1)
    for margin in (0.5, 2.0):
        expected = loop_paba(parts_a, parts_b, labels_a, labels_b, margin)
        assert paba_loss(parts_a, parts_b, labels_a, labels_b, margin).item() == pytest.approx(expected, rel=1e-5)


def test_paba_hand_built_case():
    """1-D features: identity 0 at {0, 2} (visible) / {1, 3} (infrared); identity 1 at {10} / {10}.
    a->b: anchor(0) = 1, pos = |1 - 3| = 2, neg = |1 - 10| = 9 -> 0; anchor(1) = 10, pos = 0,
    neg = |10 - 3| = 7 -> 0. With margin 8: (2 - 9 + 8) = 1 and (0 - 7 + 8) = 1 -> mean 1.
    b->a: anchor(0) = 2, pos = 2, neg = 8 -> with margin 8: 2; anchor(1) = 10, pos 0, neg 8 -> 0 -> mean 1."""
    a = torch.tensor([[0.0], [2.0], [10.0]])[None]
    b = torch.tensor([[1.0], [3.0], [10.0]])[None]
    la, lb = torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1])
    assert paba_loss(a, b, la, lb, margin=8.0).item() == pytest.approx(2.0)
    assert paba_loss(a, b, la, lb, margin=0.5).item() == pytest.approx(0.0)


def test_paba_ignores_identities_missing_from_a_modality_and_has_gradients():
    parts_a = torch.randn(2, 4, 3, requires_grad=True)
    parts_b = torch.randn(2, 3, 3, requires_grad=True)
    la, lb = torch.tensor([0, 0, 1, 7]), torch.tensor([0, 1, 1])
    loss = paba_loss(parts_a, parts_b, la, lb, margin=1.0)
    assert loss.item() == pytest.approx(loop_paba(parts_a.detach(), parts_b.detach(), la, lb, 1.0), rel=1e-5)
    loss.backward()
    assert torch.isfinite(parts_a.grad).all() and parts_a.grad.abs().sum() > 0


def test_cross_centre_equals_loop():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 6, 4, generator=g), torch.randn(2, 6, 4, generator=g)
    la, lb = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 1, 1, 3, 3])
    expected = 0.0
    for i in range(2):
        gaps = [((a[i][la == p].mean(0) - b[i][lb == p].mean(0)) ** 2).sum() for p in (0, 1)]
        expected += sum(gaps) / 2
    assert cross_centre_loss(a, b, la, lb).item() == pytest.approx(float(expected), rel=1e-5)


def test_total_loss_is_the_weighted_sum_of_eq9():
    g = torch.Generator().manual_seed(0)
    parts, batch, classes = 3, 4, 5
    out = TrainOutput(
        global_logits=torch.randn(2 * batch, classes, generator=g),
        part_logits=torch.randn(parts, 2 * batch, classes, generator=g),
        part_embeddings=F.normalize(torch.randn(parts, 2 * batch, 6, generator=g), dim=-1),
        num_visible=batch,
    )
    yv, yi = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1])
    terms = sepg_loss(out, yv, yi, LossCfg(id_specific=1.0, paba=2.5, id_parts=1.0))
    labels = torch.cat([yv, yi])
    id_specific = F.cross_entropy(out.global_logits, labels)
    id_parts = sum(F.cross_entropy(out.part_logits[i], labels) for i in range(parts))
    paba = paba_loss(out.part_embeddings[:, :batch], out.part_embeddings[:, batch:], yv, yi, 0.5)
    assert terms["total"].item() == pytest.approx((id_specific + 2.5 * paba + id_parts).item(), rel=1e-5)
    assert set(terms) == {"id_specific", "id_parts", "paba", "total"}
    assert "paba" not in sepg_loss(out, yv, yi, LossCfg(paba=0.0))


def test_no_shared_identity_gives_zero_losses_with_finite_gradients():
    parts_a = torch.randn(2, 4, 3, requires_grad=True)
    parts_b = torch.randn(2, 2, 3, requires_grad=True)
    la, lb = torch.tensor([0, 0, 1, 1]), torch.tensor([5, 6])
    total = paba_loss(parts_a, parts_b, la, lb) + cross_centre_loss(parts_a, parts_b, la, lb)
    assert total.item() == 0.0
    total.backward()
    assert torch.isfinite(parts_a.grad).all() and torch.isfinite(parts_b.grad).all()


def test_the_loss_needs_no_value_from_the_device_to_know_a_shape():
    """Under FakeTensorMode tensors have shapes but no values: an operator whose output size depends on the data
    (unique, nonzero, boolean indexing) or a read of a value (`.item()`, `if tensor:`) raises there. On a GPU each
    of those is a host sync that stalls the queue of a training step."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from sepgzoo.models.sepg import TrainOutput

    with FakeTensorMode():
        p, k, parts, classes = 4, 3, 6, 10
        labels = torch.arange(p).repeat_interleave(k)
        out = TrainOutput(torch.randn(2 * p * k, classes), torch.randn(parts, 2 * p * k, classes),
                          F.normalize(torch.randn(parts, 2 * p * k, 16), dim=-1), p * k)
        terms = sepg_loss(out, labels, labels, LossCfg(cross_centre=1.0, label_smoothing=0.1))
        assert set(terms) == {"id_specific", "id_parts", "paba", "cross_centre", "total"}
        assert terms["total"].shape == ()
        from sepgzoo.training.diagnostics import classifier_fit

        assert all(value.shape == () for value in classifier_fit(out, labels, labels).values())  # logged each step
