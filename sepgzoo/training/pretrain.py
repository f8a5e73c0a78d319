"""`sepgzoo pretrain`: an offline stand-in for ImageNet weights.

A timm backbone is trained as a plain image classifier (cross-entropy, SGD, cosine decay) on visible
images of synthetic identities whose cue combinations are disjoint from every identity of an evaluation
data set. The weights are saved as a full timm state dict (safetensors) whose classifier has the model's
default shape, so `model.pretrained=FILE` loads it strictly through `create_backbone` like real ImageNet
weights: the rows of the pretraining identities hold the trained classifier, the other rows never win.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from sepgzoo.data.synthetic import SYSU_CAMERAS, Identity, identity_combos, make_identities, render
from sepgzoo.errors import UserError
from sepgzoo.models.sepg import IMAGENET_MEAN, IMAGENET_STD
from sepgzoo.models.split import check_family
from sepgzoo.preprocess import resize_step
from sepgzoo.utils.atomic import atomic_path, write_json
from sepgzoo.utils.tensors import to_unit_range

SUMMARY_FORMAT = "sepgzoo.training.pretrain"
VISIBLE_CAMERAS = tuple(number for number, camera in SYSU_CAMERAS.items() if not camera.infrared)
UNUSED_CLASS_BIAS = -1e4  # bias of classifier rows beyond the pretraining identities: they never win


def summary_path(weights: str | Path) -> Path:
    """The JSON summary written beside a pretrained weights file (NAME.pretrain.json: never a run's model.json)."""
    return Path(weights).with_suffix(".pretrain.json")


def pretrain_backbone(backbone: str, out: str | Path, *, ids: int = 400, seed: int = 1, exclude_ids: int = 48,
                      exclude_seed: int = 0, epochs: int = 30, height: int = 64, width: int = 32,
                      images_per_id: int = 16, batch_size: int = 128, lr: float = 0.1, pad: int = 4,
                      device: str | torch.device = "cpu", force: bool = False) -> Path:
    """Pretrain `backbone` on synthetic identities disjoint from the data set (exclude_ids, exclude_seed).

    Args:
        backbone: timm model name of a family SEPG-Net can split (e.g. test_resnet, resnet50).
        out: weights file to write (.safetensors); the summary goes to `summary_path(out)`.
        ids: pretraining identities (classes).
        seed: seed of the identities, images, initialisation and batches.
        exclude_ids, exclude_seed: (ids, seed) of the synthetic evaluation data set whose identities
            (train, val and test) must not reappear; the demo recipe evaluates on (48, 0). 0 ids: none.
        epochs: passes over the images.
        height, width: image size (the recipe's data.height, data.width).
        images_per_id: visible images per identity, spread over the visible SYSU cameras.
        batch_size, lr: SGD (Nesterov) batch size and peak learning rate (1 epoch warm-up, cosine decay).
        pad: zero padding before the random crop.
        device: where to train.
        force: overwrite an existing `out`.

    Returns:
        The weights path.

    Example:
        >>> pretrain_backbone("test_resnet", "/tmp/test_resnet.safetensors")  # doctest: +SKIP
    """
    start = time.perf_counter()
    out = _check_arguments(backbone, out, force, ids=ids, exclude_ids=exclude_ids, epochs=epochs, height=height,
                           width=width, images_per_id=images_per_id, batch_size=batch_size, pad=pad)
    excluded = identity_combos(exclude_ids, exclude_seed)
    people = make_identities(ids, seed, exclude=excluded)
    model, default_shapes = _create_classifier(backbone, ids, seed)
    images, labels = render_visible(people, images_per_id, seed, (height, width))
    model.to(device)
    history = train_classifier(model, images, labels, epochs=epochs, batch_size=batch_size, lr=lr, pad=pad,
                               seed=seed, desc=f"pretrain {backbone}")
    state = timm_state_dict(model, default_shapes)
    _save_weights(out, state, {"format": SUMMARY_FORMAT, "backbone": backbone, "identities": str(ids)})
    write_json(summary_path(out), {
        "format": SUMMARY_FORMAT, "backbone": backbone, "weights": out.name, "identities": ids,
        "images": len(labels), "images_per_id": images_per_id, "size": [height, width], "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "seed": seed, "exclude": {"ids": exclude_ids, "seed": exclude_seed},
        "excluded_combos": len(excluded), "train_accuracy": round(accuracy(model, images, labels), 4),
        "final_loss": history[-1]["loss"], "history": history, "seconds": round(time.perf_counter() - start, 1)})
    return out


def _check_arguments(backbone: str, out: str | Path, force: bool, **counts: int) -> Path:
    """The output path, after UserErrors for an unusable backbone, output file or count."""
    if not timm.is_model(backbone):
        raise UserError(f"unknown timm backbone {backbone!r}; see timm.list_models() for names")
    out = Path(out)
    if out.suffix != ".safetensors":
        raise UserError(f"--out {out} must be a .safetensors file (timm reads weights files by their suffix)")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; expected a .safetensors file path")
    if out.exists() and not force:
        raise UserError(f"--out {out} exists; pass --force to overwrite it")
    minimum = {"ids": 2, "exclude_ids": 0, "pad": 0, "batch_size": 2, "height": 8, "width": 8}
    for name, value in counts.items():
        if value < minimum.get(name, 1):
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} {value} is too small; expected at least {minimum.get(name, 1)}")
    return out


def _create_classifier(backbone: str, classes: int, seed: int) -> tuple[nn.Module, dict[str, torch.Size]]:
    """The plain timm model (stride 32, as ImageNet weights are trained) with a `classes`-way classifier.

    Also returns the shapes of the model's default state dict, which the saved weights must match.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(backbone)
    check_family(model, backbone)
    if classes > model.num_classes:
        raise UserError(f"--ids {classes} is more than the {model.num_classes} classes of {backbone}'s classifier; "
                        f"expected at most {model.num_classes}")
    default_shapes = {key: value.shape for key, value in model.state_dict().items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.reset_classifier(classes)
    return model, default_shapes


def render_visible(people: list[Identity], images_per_id: int, seed: int,
                   size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """(uint8 images [N, 3, H, W], labels [N]): `images_per_id` visible images of each person, label = its index."""
    images, labels = [], []
    for label, person in enumerate(tqdm(people, desc="render", unit="id")):
        for n in range(images_per_id):
            camera = SYSU_CAMERAS[VISIBLE_CAMERAS[n % len(VISIBLE_CAMERAS)]]
            image = render(person, camera, np.random.default_rng([seed, 13, label, n]))
            images.append(np.asarray(resize_step(size)(image)))
            labels.append(label)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)


def augment(batch: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """Zero-pad `pad` pixels, random-crop back to the input size and flip half of the images."""
    size, (height, width) = batch.shape[0], batch.shape[-2:]
    padded = F.pad(batch, (pad, pad, pad, pad))
    tops = torch.randint(0, 2 * pad + 1, (size,), generator=generator).tolist()
    lefts = torch.randint(0, 2 * pad + 1, (size,), generator=generator).tolist()
    crops = torch.stack([padded[i, :, y:y + height, x:x + width] for i, (y, x) in enumerate(zip(tops, lefts))])
    flips = torch.rand(size, generator=generator) < 0.5
    return torch.where(flips[:, None, None, None], crops.flip(-1), crops)


def normalise(batch: Tensor, device: torch.device) -> Tensor:
    """uint8 images -> float, with the mean/std normalisation SEPG-Net applies to its input."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (to_unit_range(batch.to(device)) - mean) / std


def train_classifier(model: nn.Module, images: Tensor, labels: Tensor, *, epochs: int, batch_size: int, lr: float,
                     pad: int, seed: int, desc: str = "pretrain") -> list[dict]:
    """Cross-entropy training with SGD (Nesterov), 1 epoch of warm-up and cosine decay; per-epoch loss/accuracy."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(labels))
    steps = len(labels) // batch_size
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, epochs * steps))
    history = []
    model.train()
    with tqdm(total=epochs * steps, desc=desc, unit="it") as bar:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(labels), generator=generator)[:steps * batch_size].view(steps, batch_size)
            loss_sum, correct = 0.0, 0
            for batch in order:
                logits = model(normalise(augment(images[batch], pad, generator), device))
                target = labels[batch].to(device)
                loss = F.cross_entropy(logits, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                loss_sum += loss.item()
                correct += int((logits.argmax(1) == target).sum())
                bar.update()
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}", refresh=False)
            history.append({"epoch": epoch, "loss": round(loss_sum / steps, 4),
                            "accuracy": round(correct / (steps * batch_size), 4)})
    return history


def warmup_cosine(warmup_steps: int, total_steps: int):
    """LambdaLR factor: linear warm-up over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    def factor(step: int) -> float:
        warmup = min(1.0, (step + 1) / warmup_steps)
        return warmup * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    return factor


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy in eval mode on un-augmented images."""
    device = next(model.parameters()).device
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        predicted = model(normalise(images[start:start + batch_size], device)).argmax(1).cpu()
        correct += int((predicted == labels[start:start + batch_size]).sum())
    return correct / len(labels)


def timm_state_dict(model: nn.Module, default_shapes: dict[str, torch.Size]) -> dict[str, Tensor]:
    """The model's CPU state dict with its classifier padded to the default shape (unused rows: weight 0, low bias)."""
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if value.shape != default_shapes[key]:
            fill = UNUSED_CLASS_BIAS if value.dim() == 1 else 0.0
            padded = torch.full(default_shapes[key], fill, dtype=value.dtype)
            padded[: value.shape[0]] = value
            value = padded
        state[key] = value.contiguous()
    return state


def _save_weights(path: Path, state: dict[str, Tensor], metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata=metadata)
