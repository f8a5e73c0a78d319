"""Recipe settings of training, each checked through the code that builds it against values computed here:
train.sync_bn, optim.warmup_epochs, optim.backbone_lr_mult, loss.label_smoothing and model.classifier."""

import copy
import math
from pathlib import Path

import pytest
import timm
import torch
import torch.distributed as dist
from test_train import tiny_overrides
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sepgzoo.config import LossCfg, load_recipe
from sepgzoo.errors import UserError
from sepgzoo.models.sepg import TrainOutput
from sepgzoo.training import build, engine
from sepgzoo.training.distributed import DistInfo
from sepgzoo.training.losses import sepg_loss


def make_trainer(root: Path, *extra: str, dist_info: DistInfo = DistInfo()) -> engine.Trainer:
    """A trainer of the tiny synthetic recipe (test_sepg, 4 parts x 32, 64 x 32) on CPU; builds, writes nothing."""
    recipe = load_recipe("synthetic", tiny_overrides(root, epochs=1) + ["train.device=cpu", *extra])
    torch.manual_seed(0)
    return engine.Trainer(recipe, None, dist_info, torch.device("cpu"))


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory) -> Path:
    """Weights of timm's test_resnet in a local file: `model.pretrained=<file>` is a pretrained backbone, offline."""
    path = tmp_path_factory.mktemp("weights") / "test_resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    return path


# -- train.sync_bn ---------------------------------------------------------------------------------------------------
@pytest.fixture
def one_process_group(tmp_path):
    """DDP needs a process group; one gloo process stands in for the job (only the wrapping is run here)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


class HandedToDDP(nn.Module):
    """Stands in for DistributedDataParallel, whose constructor refuses SyncBatchNorm in a CPU module: it keeps
    what the trainer hands over."""

    def __init__(self, module: nn.Module, device_ids=None, find_unused_parameters: bool = False) -> None:
        super().__init__()
        self.module, self.device_ids, self.find_unused_parameters = module, device_ids, find_unused_parameters


def batchnorms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def assert_wraps_the_trained_model(trainer: engine.Trainer, plain: nn.Module) -> None:
    """net wraps the model the trainer saves and optimises, with the weights of `plain` (the same seed, unwrapped)."""
    model = trainer.model
    assert trainer.net.module is model
    state, reference = model.state_dict(), plain.state_dict()  # a checkpoint loads into either model
    assert list(state) == list(reference) and all(torch.equal(state[k], reference[k]) for k in reference)
    in_optimizer = [id(p) for group in trainer.optimizer.param_groups for p in group["params"]]
    assert sorted(in_optimizer) == sorted(id(p) for p in trainer.net.module.parameters())  # built before wrapping


def test_sync_bn_under_ddp_hands_ddp_the_trained_model_with_every_batchnorm_a_syncbatchnorm(sysu_root, monkeypatch):
    plain = make_trainer(sysu_root).model
    monkeypatch.setattr(engine, "DistributedDataParallel", HandedToDDP)
    trainer = make_trainer(sysu_root, "train.sync_bn=true")
    # as on GPU 0 of a 2-process job (the module stays on the CPU: only the wrapping runs here)
    trainer.dist, trainer.device = DistInfo(rank=0, world_size=2), torch.device("cuda", 0)
    trainer.net = trainer._wrap(trainer.model)
    assert isinstance(trainer.net, HandedToDDP) and trainer.net.device_ids == [0]
    assert_wraps_the_trained_model(trainer, plain)
    converted = batchnorms(trainer.model)
    assert len(converted) == len(batchnorms(plain)) > 0  # one for one, none lost or added
    assert all(type(m) is nn.SyncBatchNorm for m in converted)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in plain.modules())
    x = torch.rand(2, 3, 64, 32)  # the same function (evaluation mode: running statistics, no synchronisation)
    torch.testing.assert_close(trainer.model.eval()(x, modality="infrared"), plain.eval()(x, modality="infrared"))


def test_sync_bn_on_cpu_processes_is_refused_naming_the_key(sysu_root):
    with pytest.raises(UserError, match="train.sync_bn = true needs CUDA devices"):
        make_trainer(sysu_root, "train.sync_bn=true", dist_info=DistInfo(rank=0, world_size=2))


def test_sync_bn_with_per_modality_part_statistics_is_refused():
    with pytest.raises(UserError, match="use model.part_norm=joint with sync_bn"):
        load_recipe("synthetic", ["train.sync_bn=true", "model.part_norm=modality"])


@pytest.mark.parametrize("sync_bn, world_size", [(False, 2), (True, 1)], ids=["ddp-without-sync-bn", "one-process"])
def test_without_sync_bn_or_without_ddp_the_batchnorms_stay(sysu_root, one_process_group, sync_bn, world_size):
    plain = make_trainer(sysu_root).model
    trainer = make_trainer(sysu_root, f"train.sync_bn={str(sync_bn).lower()}",
                           dist_info=DistInfo(rank=0, world_size=world_size))
    if world_size > 1:
        assert isinstance(trainer.net, DistributedDataParallel)  # the real one: a CPU module without SyncBatchNorm
        assert_wraps_the_trained_model(trainer, plain)
    else:
        assert trainer.net is trainer.model
    assert [type(m) for m in batchnorms(trainer.model)] == [type(m) for m in batchnorms(plain)]
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in trainer.model.modules())


# -- optim.warmup_epochs, optim.backbone_lr_mult ---------------------------------------------------------------------
@pytest.mark.parametrize("warmup, milestones, factors", [
    (3, [5, 7], [1 / 3, 2 / 3, 1, 1, 1, 1 / 2, 1 / 2, 1 / 4, 1 / 4]),
    (4, [2], [1 / 4, 2 / 4, 3 / 4 * 1 / 2, 1 / 2, 1 / 2, 1 / 2, 1 / 2, 1 / 2, 1 / 2]),  # a milestone inside warm-up
    (0, [3], [1, 1, 1, 1 / 2, 1 / 2, 1 / 2, 1 / 2, 1 / 2, 1 / 2]),  # no warm-up: the full lr from epoch 0
], ids=["warmup3", "milestone-in-warmup", "no-warmup"])
def test_lr_of_each_epoch_is_the_linear_warmup_then_gamma_at_each_milestone(sysu_root, backbone_file, warmup,
                                                                            milestones, factors):
    """Epoch e (0-based) < W trains at lr * (e + 1) / W, times gamma (0.5 here) for every milestone <= e; the
    pretrained backbone at lr * backbone_lr_mult times the same factor. Read from the trainer's own optimizer,
    its scheduler stepped once per epoch as `Trainer.end_epoch` does."""
    lr, mult = 0.02, 0.25
    trainer = make_trainer(sysu_root, f"optim.lr={lr}", "optim.gamma=0.5", f"optim.backbone_lr_mult={mult}",
                           f"optim.warmup_epochs={warmup}", f"optim.milestones={milestones}",
                           f"train.epochs={len(factors)}", f"model.pretrained={backbone_file}")
    seen = []
    for _ in factors:
        seen.append({group["name"]: group["lr"] for group in trainer.optimizer.param_groups})
        assert trainer.scheduler.get_last_lr() == [group["lr"] for group in trainer.optimizer.param_groups]
        trainer.optimizer.step()  # an epoch's steps (no gradients here: nothing moves), then the schedule's step
        trainer.scheduler.step()
    assert [s["head"] for s in seen] == pytest.approx([lr * f for f in factors], rel=1e-12)
    assert [s["backbone"] for s in seen] == pytest.approx([lr * mult * f for f in factors], rel=1e-12)


@pytest.mark.parametrize("pretrained", [True, False], ids=["pretrained-file", "from-scratch"])
def test_backbone_group_holds_exactly_the_backbone_at_lr_times_mult_only_when_pretrained(sysu_root, backbone_file,
                                                                                        pretrained):
    trainer = make_trainer(sysu_root, "optim.lr=0.04", "optim.backbone_lr_mult=0.25",
                           f"model.pretrained={backbone_file if pretrained else 'none'}")
    groups = {group["name"]: group for group in trainer.optimizer.param_groups}
    assert len(trainer.optimizer.param_groups) == 2 and set(groups) == {"backbone", "head"}
    assert groups["backbone"]["lr"] == pytest.approx(0.04 * 0.25 if pretrained else 0.04, rel=1e-12)
    assert groups["head"]["lr"] == pytest.approx(0.04, rel=1e-12)
    names = {id(p): name for name, p in trainer.model.named_parameters()}
    backbone = sorted(name for name in names.values() if name.startswith(("trunk.", "specific.")))  # timm's layers
    head = sorted(set(names.values()) - set(backbone))
    assert backbone and any(".classifier." in name for name in head)
    assert sorted(names[id(p)] for p in groups["backbone"]["params"]) == backbone  # each once, nothing else
    assert sorted(names[id(p)] for p in groups["head"]["params"]) == head  # the rest, each once


# -- loss.label_smoothing --------------------------------------------------------------------------------------------
def smoothed_cross_entropy(logits: list[list[float]], labels: list[int], eps: float) -> float:
    """Mean over rows of (1 - eps) * (-log p[label]) + eps * mean over classes of (-log p), in Python floats."""
    total = 0.0
    for row, label in zip(logits, labels):
        log_z = math.log(sum(math.exp(v) for v in row))
        nll = [log_z - v for v in row]
        total += (1 - eps) * nll[label] + eps * sum(nll) / len(row)
    return total / len(labels)


def test_label_smoothing_of_the_id_losses_is_the_hand_written_smoothed_cross_entropy():
    global_logits = [[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [-2.0, 1.0, 0.0], [1.0, 4.0, -3.0]]
    part_logits = [[[0.0, 1.0, 2.0], [3.0, -1.0, 0.0], [1.0, 1.0, 1.5], [-1.0, 2.0, 0.5]],
                   [[1.0, -2.0, 0.0], [0.0, 0.0, 5.0], [2.0, 1.0, 0.0], [0.5, -0.5, 1.0]]]
    visible, infrared = torch.tensor([0, 2]), torch.tensor([1, 2])
    labels = [0, 2, 1, 2]
    out = TrainOutput(torch.tensor(global_logits), torch.tensor(part_logits), torch.zeros(2, 4, 3), num_visible=2)
    for eps in (0.0, 0.2):
        terms = sepg_loss(out, visible, infrared, LossCfg(paba=0.0, label_smoothing=eps))
        expected = smoothed_cross_entropy(global_logits, labels, eps)
        assert float(terms["id_specific"]) == pytest.approx(expected, rel=1e-6)
        parts = sum(smoothed_cross_entropy(logits, labels, eps) for logits in part_logits)
        assert float(terms["id_parts"]) == pytest.approx(parts, rel=1e-6)
    assert smoothed_cross_entropy(global_logits, labels, 0.2) != pytest.approx(
        smoothed_cross_entropy(global_logits, labels, 0.0), rel=1e-3)  # the smoothing matters on these logits


def test_recipe_label_smoothing_reaches_the_trainers_id_losses(sysu_root):
    trainer = make_trainer(sysu_root, "loss.label_smoothing=0.3")
    assert trainer.weights.label_smoothing == 0.3
    generator = torch.Generator().manual_seed(0)
    visible, infrared = (torch.rand(4, 3, 64, 32, generator=generator).contiguous(memory_format=torch.channels_last)
                         for _ in range(2))
    labels = torch.tensor([0, 0, 1, 1])
    with torch.no_grad():  # random classes: the untrained cosine classifier predicts uniformly, where smoothing is moot
        for head in [*trainer.model.global_head.values(), *trainer.model.part_heads]:
            head.classifier.weight.normal_(generator=generator)
        out = copy.deepcopy(trainer.model).train()((visible, infrared))
    terms = trainer.train_step(visible, infrared, labels, labels)
    both = torch.cat([labels, labels]).tolist()

    def by_hand(eps: float) -> tuple[float, float]:
        return (smoothed_cross_entropy(out.global_logits.tolist(), both, eps),
                sum(smoothed_cross_entropy(logits, both, eps) for logits in out.part_logits.tolist()))

    smoothed, plain = by_hand(0.3), by_hand(0.0)
    assert float(terms["id_specific"]) == pytest.approx(smoothed[0], rel=1e-4)
    assert float(terms["id_parts"]) == pytest.approx(smoothed[1], rel=1e-4)
    assert smoothed[0] != pytest.approx(plain[0], rel=1e-3) and smoothed[1] != pytest.approx(plain[1], rel=1e-3)


# -- model.classifier ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_model_classifier_builds_the_classifier_it_names(kind):
    """linear: nn.Linear with bias, logits = W x + b; cosine: scale x cos(x, w_c), no bias. Every ID classifier
    of the built model (global branch of each modality and each part), the recipe's scale (5, not the default)."""
    recipe = load_recipe("synthetic", ["model.name=test_sepg", "model.parts=3", "model.part_dim=8",
                                       f"model.classifier={kind}", "model.classifier_scale=5"])
    model = build.build_model(recipe.model, 6, (64, 32)).eval()
    heads = [*model.global_head.values(), *model.part_heads]
    assert len(heads) == 2 + 3
    generator = torch.Generator().manual_seed(0)
    for head in heads:
        classifier = head.classifier
        assert classifier.weight.shape == (6, 8)
        if kind == "linear":
            assert type(classifier) is nn.Linear and classifier.bias is not None and classifier.bias.shape == (6,)
            with torch.no_grad():  # a bias that is not zero, so that it shows in the logits
                classifier.bias.copy_(torch.randn(6, generator=generator))
        else:
            assert not isinstance(classifier, nn.Linear) and dict(classifier.named_parameters()).keys() == {"weight"}
        x = torch.randn(5, head.reduce.in_features, generator=generator)
        with torch.no_grad():
            embedding, logits = head(x)
        w = classifier.weight.detach()
        dots = (embedding[:, None, :] * w[None, :, :]).sum(-1)  # [5, 6]: x . w_c
        if kind == "linear":
            expected = dots + classifier.bias.detach()[None, :]
        else:
            norms = embedding.pow(2).sum(-1).sqrt()[:, None] * w.pow(2).sum(-1).sqrt()[None, :]
            expected = 5.0 * dots / norms
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
