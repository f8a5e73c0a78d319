"""Training diagnostics: how well the ID classifiers fit their own batches, and what each loss sends into the trunk.

These are read, never optimised: they answer "is the network learning?" from log.csv alone. A training
cross-entropy above ln C (C training identities) means the classifier is worse than a uniform guess on
the very batches it is trained on.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sepgzoo.models.sepg import TrainOutput


def uniform_cross_entropy(num_classes: int) -> float:
    """ln C: the cross-entropy of a classifier that predicts every identity with probability 1 / C."""
    return math.log(num_classes)


@torch.no_grad()
def classifier_fit(out: TrainOutput, labels_visible: Tensor, labels_infrared: Tensor) -> dict[str, Tensor]:
    """Unweighted ID cross-entropy and top-1 accuracy of the specific and part classifiers on this batch.

    `ce_parts` and `acc_parts` are means over parts (one part's classifier, on average), so both are
    comparable with ln C and with the specific branch whatever the number of parts.
    """
    labels = torch.cat([labels_visible, labels_infrared])
    global_logits, part_logits = out.global_logits.float(), out.part_logits.float()
    part_labels = labels.expand(part_logits.shape[0], -1)
    return {
        "ce_specific": F.cross_entropy(global_logits, labels),
        "ce_parts": F.cross_entropy(part_logits.flatten(0, 1), part_labels.flatten()),
        "acc_specific": (global_logits.argmax(-1) == labels).float().mean(),
        "acc_parts": (part_logits.argmax(-1) == part_labels).float().mean(),
    }


class TrunkOutput:
    """Keeps the shared trunk's latest output (a forward hook), so gradients can be measured where the trunk ends."""

    def __init__(self, trunk: nn.Module) -> None:
        self.value: Tensor | None = None
        trunk.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args, output: Tensor) -> None:
        self.value = output


def trunk_gradient_norms(terms: dict[str, Tensor], shared: Tensor) -> dict[str, Tensor]:
    """L2 norm of d(term)/d(shared feature map) for each weighted loss term: what each term asks of the trunk.

    Every term is differentiated separately (the graph is kept for the real backward pass), so this
    costs roughly one extra backward through the heads per term; it is off unless train.log_grad_norms.
    """
    norms = {}
    for name, term in terms.items():
        if name == "total" or not term.requires_grad:
            continue
        (grad,) = torch.autograd.grad(term, shared, retain_graph=True, allow_unused=True)
        norms[f"grad_{name}"] = torch.zeros(()) if grad is None else grad.detach().float().norm()
    return norms
