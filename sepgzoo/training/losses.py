"""SEPG-Net losses: PABA (paper eq. 7-8), the cross-centre loss of the ablation, and the eq. 9 total."""

import torch
import torch.nn.functional as F
from torch import Tensor

from sepgzoo.config import LossCfg
from sepgzoo.models.sepg import TrainOutput


def pairwise_distance(x: Tensor, y: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distances [..., Nx, Ny] between the rows of x [..., Nx, D] and y [..., Ny, D].

    The square root is taken of a clamped value so that a zero distance has a finite gradient.
    """
    sq = (x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(-2) - 2 * x @ y.transpose(-1, -2)
    return sq.clamp_min(eps).sqrt()


def identity_centres(parts: Tensor, labels: Tensor, of_labels: Tensor) -> Tensor:
    """Mean feature of the identity of each label in `of_labels`: parts [N, B, D], labels [B], of_labels [M]
    -> [N, M, D]. A label absent from `labels` gets a zero centre (callers give it no weight)."""
    member = (of_labels[:, None] == labels[None, :]).to(parts.dtype)  # [M, B]
    return torch.matmul(member / member.sum(dim=1, keepdim=True).clamp_min(1.0), parts)


def shared_identity_weights(labels_a: Tensor, labels_b: Tensor) -> Tensor:
    """A weight per sample of modality a: 1 / (its identity's count in a) when that identity is also in modality b,
    else 0, normalised to sum 1 (all 0 when no identity is shared). Averaging a per-sample quantity with these
    weights is the mean over the identities present in both modalities, each counted once.

    Masks over the batch layout, never `unique` or boolean indexing: every shape is known before the data, so
    the step never waits for the device to learn a size.
    """
    same_a = labels_a[:, None] == labels_a[None, :]
    in_b = (labels_a[:, None] == labels_b[None, :]).any(dim=1)
    weights = in_b.to(torch.float32) / same_a.sum(dim=1).to(torch.float32)
    return weights / weights.sum().clamp_min(1e-12)


def _paba_one_direction(parts_a: Tensor, parts_b: Tensor, labels_a: Tensor, labels_b: Tensor, margin: float) -> Tensor:
    """Eq. 7 for every part at once, anchors from modality a, samples from modality b; summed over parts.

    Computed once per sample of modality a (each row holds its identity's anchor) and averaged with
    `shared_identity_weights`, which counts every shared identity once.
    """
    anchors = identity_centres(parts_a, labels_a, labels_a)  # [N, Ba, D]: row i is the anchor of i's identity
    dist = pairwise_distance(anchors, parts_b)  # [N, Ba, Bb]
    same = labels_a[:, None] == labels_b[None, :]  # [Ba, Bb]
    hardest_positive = dist.masked_fill(~same, float("-inf")).amax(dim=-1)  # [N, Ba]
    hardest_negative = dist.masked_fill(same, float("inf")).amin(dim=-1)
    # No positive (identity absent from b) or no other identity in b: an infinite gap, a hinge of 0.
    hinge = F.relu(hardest_positive - hardest_negative + margin)
    return (hinge * shared_identity_weights(labels_a, labels_b).to(hinge.dtype)).sum()


def paba_loss(parts_a: Tensor, parts_b: Tensor, labels_a: Tensor, labels_b: Tensor, margin: float = 0.5) -> Tensor:
    """Pseudo Anchor-guided Bidirectional Aggregation loss, paper eq. 7-8.

    For each part i and each identity p present in both modalities: the pseudo-anchor is the mean of
    p's modality-a part-i features; the positive term is the largest Euclidean distance from it to
    p's modality-b features, the negative term the smallest distance to other identities'
    modality-b features; hinge(pos - neg + margin). Mean over identities, sum over parts, both
    directions (a -> b and b -> a).

    Args:
        parts_a: [N_parts, B_a, D] features of modality a (L2-normalised in SEPG-Net).
        parts_b: [N_parts, B_b, D] features of modality b.
        labels_a: [B_a] identity labels.
        labels_b: [B_b] identity labels.
        margin: hinge margin (0.5 in the paper).

    Example:
        >>> loss = paba_loss(out.part_embeddings[:, :nv], out.part_embeddings[:, nv:], y_vis, y_ir)
    """
    return _paba_one_direction(parts_a, parts_b, labels_a, labels_b, margin) + _paba_one_direction(
        parts_b, parts_a, labels_b, labels_a, margin
    )


def cross_centre_loss(parts_a: Tensor, parts_b: Tensor, labels_a: Tensor, labels_b: Tensor) -> Tensor:
    """Hetero-centre loss (Zhu et al. 2020, the paper's "+CC" ablation row): squared distance between an
    identity's visible and infrared centres, mean over identities present in both, summed over parts."""
    gap = identity_centres(parts_a, labels_a, labels_a) - identity_centres(parts_b, labels_b, labels_a)  # [N, Ba, D]
    weights = shared_identity_weights(labels_a, labels_b).to(gap.dtype)
    return ((gap * gap).sum(-1) * weights).sum()


def sepg_loss(
    out: TrainOutput, labels_visible: Tensor, labels_infrared: Tensor, weights: LossCfg
) -> dict[str, Tensor]:
    """Eq. 9: lambda1 * ID(specific) + lambda2 * PABA + lambda3 * sum of part ID losses (+ cross-centre).

    Returns the weighted named terms and their sum under "total"; a term whose weight is 0 is not computed.
    """
    labels = torch.cat([labels_visible, labels_infrared])
    nv = out.num_visible
    parts_vis, parts_ir = out.part_embeddings[:, :nv], out.part_embeddings[:, nv:]
    terms: dict[str, Tensor] = {}
    if weights.id_specific:
        terms["id_specific"] = weights.id_specific * F.cross_entropy(
            out.global_logits, labels, label_smoothing=weights.label_smoothing
        )
    if weights.id_parts:
        part_logits = out.part_logits.flatten(0, 1)
        part_ce = F.cross_entropy(
            part_logits, labels.repeat(out.part_logits.shape[0]), label_smoothing=weights.label_smoothing
        )
        terms["id_parts"] = weights.id_parts * part_ce * out.part_logits.shape[0]  # sum over parts of per-part means
    if weights.paba:
        terms["paba"] = weights.paba * paba_loss(parts_vis, parts_ir, labels_visible, labels_infrared, weights.margin)
    if weights.cross_centre:
        terms["cross_centre"] = weights.cross_centre * cross_centre_loss(
            parts_vis, parts_ir, labels_visible, labels_infrared
        )
    terms["total"] = torch.stack(list(terms.values())).sum()
    return terms
