"""Speed settings keep the numbers: channels_last (now on CPU too) and train.compile give the same step; the
benchmark's step is the trainer's (eq. 9 computed here); the loader flags follow the device; feature extraction in
channels_last leaves the model as it was."""

import copy
import json

import numpy as np
import pytest
import torch
from test_losses import loop_paba
from test_train import run_cli, tiny_overrides

from sepgzoo import performance
from sepgzoo.config import load_recipe
from sepgzoo.data.datasets import VISIBLE
from sepgzoo.errors import UserError
from sepgzoo.evaluation.features import extract_features
from sepgzoo.hub.factory import create_model
from sepgzoo.training import bench, build, engine
from sepgzoo.training.distributed import DistInfo

CL = torch.channels_last


def _trainer(sysu_root, tmp_path, *extra: str) -> engine.Trainer:
    recipe = load_recipe("synthetic", tiny_overrides(sysu_root, epochs=1) + ["train.device=cpu", *extra])
    torch.manual_seed(0)
    return engine.Trainer(recipe, tmp_path, DistInfo(), torch.device("cpu"))


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]  # 1x1 kernels are both formats


def _step_and_grads(trainer: engine.Trainer) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    visible, infrared = (torch.rand(4, 3, 64, 32, generator=generator) for _ in range(2))
    labels = torch.tensor([0, 0, 1, 1])
    terms = trainer.train_step(visible, infrared, labels, labels)
    grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.grad is not None}
    return terms, grads


def _assert_same_step(a: engine.Trainer, b: engine.Trainer) -> None:
    b.model.load_state_dict(a.model.state_dict())  # the very same initial weights, each in its own format
    terms_a, grads_a = _step_and_grads(a)
    terms_b, grads_b = _step_and_grads(b)
    assert set(terms_a) == set(terms_b) and set(grads_a) == set(grads_b) and grads_a
    for key in terms_a:
        torch.testing.assert_close(terms_a[key], terms_b[key], rtol=1e-4, atol=1e-6, msg=key)
    # Float rounding of other summation orders: 1e-4 of each tensor's largest entry, and 1e-6 absolute for
    # gradients that are zero but for rounding (a bias just before a BatchNorm: ~1e-8 of noise).
    for name in grads_a:
        scale = float(grads_b[name].abs().max())
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-4 * scale + 1e-6, msg=name)


# -- channels_last ----------------------------------------------------------------------------------------------
def test_channels_last_applies_on_cpu_and_follows_the_recipe(sysu_root, tmp_path):
    on = _trainer(sysu_root, tmp_path / "on")
    off = _trainer(sysu_root, tmp_path / "off", "train.channels_last=false")
    assert performance.memory_format(True) is CL and performance.memory_format(False) is torch.contiguous_format
    assert all(w.is_contiguous(memory_format=CL) and not w.is_contiguous() for w in _conv_weights(on.model))
    assert all(w.is_contiguous() for w in _conv_weights(off.model))
    assert on.net is on.model and off.net is off.model  # train.compile is off by default


def test_one_step_gives_the_same_loss_and_gradients_with_and_without_channels_last(sysu_root, tmp_path):
    _assert_same_step(_trainer(sysu_root, tmp_path / "on"),
                      _trainer(sysu_root, tmp_path / "off", "train.channels_last=false"))


@pytest.mark.slow
def test_compiled_step_gives_the_same_loss_and_gradients(sysu_root, tmp_path):
    """train.compile: TorchInductor (a C++ compiler on CPU); the first step compiles (tens of seconds)."""
    compiled = _trainer(sysu_root, tmp_path / "compiled", "train.compile=true")
    assert compiled.net is not compiled.model and hasattr(compiled.net, "_orig_mod")
    _assert_same_step(_trainer(sysu_root, tmp_path / "eager"), compiled)


def test_compile_with_gradient_norm_logging_is_refused(sysu_root, tmp_path):
    with pytest.raises(UserError, match="train.compile and train.log_grad_norms"):
        _trainer(sysu_root, tmp_path, "train.compile=true", "train.log_grad_norms=true")


# -- the benchmark uses the trainer's settings --------------------------------------------------------------------
def test_bench_train_reports_and_switches_the_memory_format(monkeypatch):
    formats = []
    real = performance.memory_format
    monkeypatch.setattr(bench, "memory_format", lambda enabled: formats.append(enabled) or real(enabled))
    args = ["bench", "train", "--model", "test_sepg", "--ids", "2", "--images-per-id", "2", "--size", "64", "32",
            "--steps", "2", "--warmup", "0", "--device", "cpu", "--json"]
    default = json.loads(run_cli(*args, stdout_only=True)[1])
    off = json.loads(run_cli(*args, "--no-channels-last", stdout_only=True)[1])
    assert formats == [True, False]  # the recipe default (train.channels_last = true), then the flag
    assert default["channels_last"] is True and default["compile"] is False and off["channels_last"] is False
    assert len(default["step_ms_each"]) == 2 and default["step_ms_median"] > 0
    assert default["warmup_steps"] == 0 and default["warmup_s"] == 0


#: eq. 9 weights of the paper (lambda1, lambda2, lambda3): the shipped recipes' and `sepgzoo bench train`'s
PAPER_WEIGHTS = {"id_specific": 1.0, "paba": 2.5, "id_parts": 1.0}


def eq9_by_hand(out, labels: torch.Tensor) -> dict[str, float]:
    """Eq. 9 from a training forward's outputs, in float64: the ID losses as the mean of -log softmax at the label
    (the global branch, and each part, summed over parts), PABA by loops (test_losses.loop_paba), weighted 1/2.5/1."""
    both = torch.cat([labels, labels])  # visible rows first, then infrared: the same identities in each
    rows = torch.arange(len(both))

    def cross_entropy(logits: torch.Tensor) -> float:
        return float(-logits.double().log_softmax(-1)[rows, both].mean())

    parts, nv = out.part_embeddings.double(), out.num_visible
    terms = {"id_specific": cross_entropy(out.global_logits),
             "id_parts": sum(cross_entropy(logits) for logits in out.part_logits),
             "paba": loop_paba(parts[:, :nv], parts[:, nv:], labels, labels, margin=0.5)}
    weighted = {key: PAPER_WEIGHTS[key] * value for key, value in terms.items()}
    return {**weighted, "total": sum(weighted.values())}


def training_outputs(model: torch.nn.Module, visible: torch.Tensor, infrared: torch.Tensor, amp: bool):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16, enabled=amp):
        return copy.deepcopy(model).train()((visible, infrared))


def identity_blocks(labels: torch.Tensor, ids: int, per_id: int) -> bool:
    """`ids` distinct identities, each `per_id` times in a row: the P x K layout of a training batch."""
    blocks = labels.view(ids, per_id)
    return bool((blocks == blocks[:, :1]).all()) and len(set(blocks[:, 0].tolist())) == ids


def test_bench_step_takes_the_trainers_batch_layout_and_both_compute_eq9(sysu_root, tmp_path, monkeypatch):
    """`sepgzoo bench train` times the trainer's step: the same P x (K + K) layout, memory format and loss weights,
    and on the same model and images the bench's loss, the trainer's terms and eq. 9 computed here agree
    (float32, and float16 autocast with the loss on float32 outputs, as on CUDA)."""
    trainer = _trainer(sysu_root, tmp_path)  # test_sepg, 64 x 32, P = 2, K = 2, channels_last (the default)
    data = trainer.recipe.data
    assert {key: getattr(trainer.weights, key) for key in PAPER_WEIGHTS} == PAPER_WEIGHTS
    assert trainer.weights.cross_centre == 0 and trainer.weights.margin == 0.5
    initial = copy.deepcopy(trainer.model)
    seen = {}
    real_step = bench.training_step

    def the_trainers_model(name, num_classes, input_size):
        seen["built"] = (name, num_classes, input_size)
        return copy.deepcopy(initial)

    def recording_step(net, optimizer, scaler, visible, infrared, labels, weights, use_amp):
        loss = real_step(net, optimizer, scaler, visible, infrared, labels, weights, use_amp)
        seen.setdefault("step", ((visible.clone(), infrared.clone(), labels.clone()), weights, use_amp, loss))
        return loss

    monkeypatch.setattr(bench, "create_model", the_trainers_model)
    monkeypatch.setattr(bench, "training_step", recording_step)
    bench.bench_training_step("test_sepg", data.ids_per_batch, data.images_per_id, (data.height, data.width), steps=1,
                              device=torch.device("cpu"), classes=trainer.num_classes, warmup=0)
    assert seen["built"] == ("test_sepg", trainer.num_classes, (data.height, data.width))
    (visible, infrared, labels), weights, use_amp, bench_loss = seen["step"]

    # the layout: the trainer's loader and the bench both give P identities x K images, the same in each modality
    loader_visible, loader_infrared, labels_visible, labels_infrared = next(iter(trainer.loader))
    assert visible.shape == loader_visible.shape and infrared.shape == loader_infrared.shape
    assert torch.equal(labels_visible, labels_infrared)
    for batch_labels in (labels, labels_visible):
        assert identity_blocks(batch_labels, data.ids_per_batch, data.images_per_id)
    assert visible.is_contiguous(memory_format=CL) and infrared.is_contiguous(memory_format=CL)
    assert weights == trainer.weights and use_amp is False  # autocast is for CUDA only

    # the numbers: eq. 9 of the same model's outputs on the same images, float32 and float16 autocast
    totals = {}
    for amp in (False, True):
        expected = eq9_by_hand(training_outputs(initial, visible, infrared, amp), labels)
        totals[amp] = expected["total"]
        if amp:  # on a CPU only a direct call takes the CUDA path: float16 autocast, the loss on float32 outputs
            model = copy.deepcopy(initial)
            bench_loss = real_step(model, torch.optim.SGD(model.parameters(), lr=0.01),
                                   torch.amp.GradScaler("cpu", enabled=False), visible, infrared, labels, weights, True)
        trainer.model.load_state_dict(initial.state_dict())
        trainer.amp = amp
        terms = trainer.train_step(visible, infrared, labels, labels)
        assert bench_loss.dtype == torch.float32 and terms["total"].dtype == torch.float32
        assert float(bench_loss) == pytest.approx(expected["total"], rel=1e-4), amp
        assert "cross_centre" not in terms
        for key, value in expected.items():
            assert float(terms[key]) == pytest.approx(value, rel=1e-4), (amp, key)
    assert totals[True] != pytest.approx(totals[False], rel=1e-4)  # float16 autocast really ran


def test_conv_calls_sees_every_convolution_of_a_step_once_at_its_batch():
    model = create_model("test_sepg", num_classes=4, input_size=(64, 32)).train()
    visible, infrared = torch.rand(2, 3, 64, 32), torch.rand(3, 3, 64, 32)
    calls = bench.conv_calls(model, visible, infrared)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(map(id, (c.conv for c in calls))) == sorted(map(id, convs))  # each one, once
    batch = {id(m): 5 for m in model.trunk.modules()}
    batch |= {id(m): n for name, n in (("visible", 2), ("infrared", 3)) for m in model.specific[name].modules()}
    assert [c.shape[0] for c in calls] == [batch[id(c.conv)] for c in calls]
    assert not calls[0].needs_input_grad and all(c.needs_input_grad for c in calls[1:])  # the stem sees images


def test_conv_time_runs_each_convolution_forward_and_backward(monkeypatch):
    model = create_model("test_sepg", num_classes=4, input_size=(64, 32)).train().to(memory_format=CL)
    visible, infrared = (torch.rand(2, 3, 64, 32).contiguous(memory_format=CL) for _ in range(2))
    calls = bench.conv_calls(model, visible, infrared)
    assert all(c.memory_format == CL for c in calls[1:])  # the stem sees the SEG batch, which torch.fft makes NCHW
    ran = []

    def fake_timed(fn, device):
        model.zero_grad(set_to_none=True)
        fn()
        ran.append([m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.grad is not None])
        return 1.0

    monkeypatch.setattr(bench, "timed", fake_timed)
    assert bench.conv_time(calls, torch.device("cpu"), amp=False, repeats=3) == len(calls)  # a median per call
    assert ran == [[c.conv] for c in calls for _ in range(3)]  # forward and backward of that convolution alone


# -- data loading --------------------------------------------------------------------------------------------------
def test_loader_options_pin_memory_only_for_cuda_and_keep_workers():
    assert performance.loader_options("cpu", 0) == {"num_workers": 0, "pin_memory": False}
    assert performance.loader_options(torch.device("cuda", 1), 0) == {"num_workers": 0, "pin_memory": True}
    assert performance.loader_options("cpu", 4) == {"num_workers": 4, "pin_memory": False, "persistent_workers": True,
                                              "prefetch_factor": performance.PREFETCH_BATCHES}
    assert performance.loader_options("cuda", 2, persistent=False)["persistent_workers"] is False


def test_train_loader_pins_memory_for_the_training_device_not_for_the_machine(sysu_root, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a CUDA machine training on its CPU
    recipe = load_recipe("synthetic", tiny_overrides(sysu_root) + ["data.workers=2"])
    from sepgzoo.data.sources import open_dataset

    train = list(open_dataset(recipe.data).train)
    cpu_loader, _ = build.build_train_loader(recipe.data, train, 0, DistInfo(), 2, torch.device("cpu"))
    cuda_loader, _ = build.build_train_loader(recipe.data, train, 0, DistInfo(), 2, torch.device("cuda"))
    assert not cpu_loader.pin_memory and cuda_loader.pin_memory
    assert cpu_loader.persistent_workers and cpu_loader.prefetch_factor == performance.PREFETCH_BATCHES


# -- evaluation ----------------------------------------------------------------------------------------------------
def test_feature_extraction_in_channels_last_matches_and_restores_the_model(sysu_root, tmp_path):
    trainer = _trainer(sysu_root, tmp_path, "train.channels_last=false")
    model = trainer.model
    samples = [s for s in trainer.train_samples if s.modality == VISIBLE][:5]
    plain = extract_features(model, samples, VISIBLE, batch_size=2, channels_last=False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    fast = extract_features(model, samples, VISIBLE, batch_size=2)  # default on CPU: channels_last
    np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-6)
    assert all(w.is_contiguous() for w in _conv_weights(model))  # back in its own format
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    model.to(memory_format=CL)  # a channels_last model (a training run's) stays as it is
    np.testing.assert_allclose(extract_features(model, samples, VISIBLE, batch_size=2), plain, rtol=1e-4, atol=1e-6)
    assert all(w.is_contiguous(memory_format=CL) and not w.is_contiguous() for w in _conv_weights(model))
