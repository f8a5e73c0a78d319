"""The training loop: one plain loop over epochs with SGD, the eq. 9 loss, AMP on CUDA, DDP, kill-safe checkpoints."""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sepgzoo.config import LossCfg, OptimCfg, Recipe, recipe_from_dict
from sepgzoo.data.sources import open_dataset
from sepgzoo.errors import UserError
from sepgzoo.hub.checkpoint import WEIGHTS_NAME, save_model
from sepgzoo.models.sepg import TrainOutput
from sepgzoo.performance import compile_model, memory_format
from sepgzoo.training.build import build_model, build_train_loader, num_classes, split_validation
from sepgzoo.training.curves import LOG_NAME
from sepgzoo.training.diagnostics import TrunkOutput, classifier_fit, trunk_gradient_norms, uniform_cross_entropy
from sepgzoo.training.distributed import DistInfo, barrier, cleanup, init_distributed
from sepgzoo.training.losses import sepg_loss
from sepgzoo.training.preflight import CheckedInputs, check_inputs
from sepgzoo.training.runs import (
    CsvLog,
    check_new_run_dir,
    gather_rng_states,
    load_state,
    new_run_dir,
    restore_rng_state,
    run_dir_path,
    save_state,
    seed_everything,
)
from sepgzoo.utils.atomic import write_text
from sepgzoo.utils.device import resolve_device

SYNC_EVERY = 20  # steps between host syncs (finite-loss check, progress bar); a sync every step stalls the GPU queue


class TrainingDiverged(UserError):
    """A loss became NaN or infinite."""


def lr_factor(epoch: int, cfg: OptimCfg) -> float:
    """Multiplier of the base lr in `epoch` (0-based): linear warm-up, then x gamma at every milestone passed."""
    warmup = (epoch + 1) / cfg.warmup_epochs if epoch < cfg.warmup_epochs else 1.0
    return warmup * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)


def build_optimizer(model: nn.Module, cfg: OptimCfg, pretrained: bool) -> torch.optim.SGD:
    """SGD (Nesterov) with a lower lr for pretrained backbone parameters, as the field does."""
    backbone_lr = cfg.lr * (cfg.backbone_lr_mult if pretrained else 1.0)
    groups = [{"params": model.backbone_parameters(), "lr": backbone_lr, "name": "backbone"},
              {"params": model.head_parameters(), "lr": cfg.lr, "name": "head"}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)


@dataclass
class EpochStats:
    """Running sums of the loss terms and the throughput of one epoch.

    The sums stay on the terms' device, and the first non-finite total loss is recorded there too, so
    adding a step never waits for the device; reading `means()` or `first_non_finite()` does.
    """

    keys: list[str] = field(default_factory=list)
    sums: torch.Tensor | None = None  # float64, one entry per key
    bad_step: torch.Tensor | None = None  # 0-based step of the first non-finite total (-1: none)
    bad_values: torch.Tensor | None = None  # every term at that step
    steps: int = 0
    images: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, terms: dict[str, torch.Tensor], images: int) -> None:
        total = terms["total"].detach()
        values = torch.stack([value.detach().to(total.device, torch.float64) for value in terms.values()])
        if self.sums is None:
            self.keys = list(terms)
            self.sums = torch.zeros_like(values)
            self.bad_values = torch.zeros_like(values)
            self.bad_step = torch.full((), -1, dtype=torch.long, device=total.device)
        first_bad = (self.bad_step < 0) & ~torch.isfinite(total)
        self.bad_step = torch.where(first_bad, self.steps, self.bad_step)
        self.bad_values = torch.where(first_bad, values, self.bad_values)
        self.sums += values
        self.steps += 1
        self.images += images

    def means(self) -> dict[str, float]:
        if self.sums is None:
            return {}
        return dict(zip(self.keys, (self.sums / self.steps).tolist()))

    def first_non_finite(self) -> tuple[int, dict[str, float]] | None:
        """(0-based step, every term at that step) of the first non-finite total loss, or None."""
        if self.bad_step is None or int(self.bad_step) < 0:
            return None
        return int(self.bad_step), dict(zip(self.keys, self.bad_values.tolist()))

    @property
    def images_per_second(self) -> float:
        return self.images / max(time.perf_counter() - self.start, 1e-9)


def forward_loss(net: nn.Module, visible: torch.Tensor, infrared: torch.Tensor, labels_vis: torch.Tensor,
                 labels_ir: torch.Tensor, weights: LossCfg,
                 amp: bool) -> tuple[TrainOutput, dict[str, torch.Tensor]]:
    """The forward pass (float16 autocast when `amp`) and the eq. 9 loss on float32 outputs.

    The one definition of a step's loss, shared by the trainer and `sepgzoo bench train`.
    """
    with torch.autocast(visible.device.type, dtype=torch.float16, enabled=amp):
        out = net((visible, infrared))
    terms = sepg_loss(out._replace(global_logits=out.global_logits.float(), part_logits=out.part_logits.float(),
                                   part_embeddings=out.part_embeddings.float()),
                      labels_vis, labels_ir, weights)
    return out, terms


def apply_gradients(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """The second half of every training step (the trainer's and `bench train`'s): backward of the scaled loss and
    one optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


#: the progress bar's short name of each loss term of `sepg_loss`, in the order shown
SHORT_NAMES = {"total": "loss", "id_specific": "id", "paba": "paba", "id_parts": "parts", "cross_centre": "cc"}


def progress_postfix(terms: dict[str, torch.Tensor], lr: float, images_per_second: float) -> dict[str, str]:
    """What the progress bar shows after a step: every loss term by its short name, the lr and images/s.

    The terms are read from the device in one transfer (one host sync for all of them).
    """
    shown = [key for key in SHORT_NAMES if key in terms]
    values = torch.stack([terms[key].detach().float() for key in shown]).tolist()
    return {**{SHORT_NAMES[key]: f"{value:.3f}" for key, value in zip(shown, values)},
            "lr": f"{lr:.2e}", "img/s": f"{images_per_second:.0f}"}


def restore_scaler(scaler: torch.amp.GradScaler, state: dict[str, Any]) -> None:
    """A run saved without AMP (CPU, amp=false) saved {}, which an enabled scaler refuses: it keeps its defaults."""
    if state:
        scaler.load_state_dict(state)  # a disabled scaler ignores it


@dataclass
class Trainer:
    """Everything one training run holds; `fit()` runs the remaining epochs."""

    recipe: Recipe
    run_dir: Path | None  # None until `open_run`: building a trainer writes nothing
    dist: DistInfo
    device: torch.device
    state: dict[str, Any] | None = None  # a loaded last.pt to resume from
    dataset: Any = None  # the parsed data set (opened from the recipe when None)

    def __post_init__(self) -> None:
        r = self.recipe
        dataset = self.dataset if self.dataset is not None else open_dataset(r.data)
        self.train_samples, self.val_samples = split_validation(list(dataset.train), r.data.val_ids)
        self.num_classes = num_classes(self.train_samples)
        self.model = build_model(r.model, self.num_classes, (r.data.height, r.data.width)).to(self.device)
        self.pretrained = r.model.pretrained != "none"
        self.optimizer = build_optimizer(self.model, r.optim, self.pretrained)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: lr_factor(e, r.optim))
        self.amp = r.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.loader, self.sampler = build_train_loader(r.data, self.train_samples, r.train.seed, self.dist,
                                                       r.train.iters_per_epoch, self.device)
        self.weights = r.loss
        self.trunk_output = TrunkOutput(self.model.trunk) if r.train.log_grad_norms else None
        self.start_epoch = 0
        if self.state is not None:
            self._restore(self.state)
        self.net = self._wrap(self.model)
        self.log, self.tensorboard = None, None
        if self.run_dir is not None:
            self.open_run(self.run_dir)

    def open_run(self, run_dir: Path) -> None:
        """Start writing into the run folder (rank 0): the epoch log (kept up to the resumed epoch), TensorBoard."""
        self.run_dir = run_dir
        if not self.dist.is_main:
            return
        self.log = CsvLog(run_dir / LOG_NAME)
        self.log.rows = [row for row in self.log.rows if int(row["epoch"]) <= self.start_epoch]  # 1-based epochs
        self.tensorboard = _tensorboard_writer(run_dir)

    def _wrap(self, model: nn.Module) -> nn.Module:
        """The module the steps call: `model` in the training memory format, under DDP, compiled (train.compile)."""
        cfg = self.recipe.train
        model.to(memory_format=memory_format(cfg.channels_last))  # in place: self.model is what is saved
        if not self.dist.enabled:
            return compile_model(model, cfg.compile)
        if cfg.sync_bn:
            if self.device.type != "cuda":
                raise UserError(f"train.sync_bn = true needs CUDA devices (SyncBatchNorm does not run on "
                                f"{self.device.type}); set train.sync_bn=false for this run")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        unused = not (self.weights.id_specific and self.weights.id_parts)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return compile_model(DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused), cfg.compile)

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_scaler(self.scaler, state["scaler"])
        self.start_epoch = state["epoch"] + 1
        restore_rng_state(state["rng"], self.dist, self.recipe.train.seed, self.start_epoch)

    # -- the loop ------------------------------------------------------------------------------------------------
    def fit(self) -> None:
        for epoch in range(self.start_epoch, self.recipe.train.epochs):
            self.end_epoch(epoch, self.train_epoch(epoch))

    def train_epoch(self, epoch: int) -> EpochStats:
        self.net.train()
        self.sampler.set_epoch(epoch)
        stats = EpochStats()
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{self.recipe.train.epochs}", unit="it",
                   disable=not self.dist.is_main, dynamic_ncols=True, leave=False)
        for step, (visible, infrared, labels_vis, labels_ir) in enumerate(bar):
            terms = self.train_step(visible, infrared, labels_vis, labels_ir)
            stats.add(terms, visible.shape[0] + infrared.shape[0])
            if (step + 1) % SYNC_EVERY == 0 or step + 1 == len(self.loader):
                self._check_finite(stats, epoch)
                bar.set_postfix(progress_postfix(terms, self.scheduler.get_last_lr()[-1], stats.images_per_second))
        bar.close()
        self._check_finite(stats, epoch)
        return stats

    def train_step(self, visible, infrared, labels_vis, labels_ir) -> dict[str, torch.Tensor]:
        to = dict(device=self.device, non_blocking=True)
        fmt = memory_format(self.recipe.train.channels_last)
        visible, infrared = (x.to(**to, memory_format=fmt) for x in (visible, infrared))
        labels_vis, labels_ir = labels_vis.to(**to), labels_ir.to(**to)
        out, terms = forward_loss(self.net, visible, infrared, labels_vis, labels_ir, self.weights, self.amp)
        diagnostics = classifier_fit(out, labels_vis, labels_ir)
        if self.trunk_output is not None:
            diagnostics.update(trunk_gradient_norms(terms, self.trunk_output.value))
        apply_gradients(terms["total"], self.optimizer, self.scaler)
        return {key: value.detach() for key, value in {**terms, **diagnostics}.items()}

    def _check_finite(self, stats: EpochStats, epoch: int) -> None:
        bad = stats.first_non_finite()
        if bad is None:
            return
        step, terms = bad
        values = ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
        raise TrainingDiverged(
            f"loss is not finite at epoch {epoch + 1}, iteration {step + 1} ({values}; noticed at iteration "
            f"{stats.steps}); lower optim.lr or check the data. The last complete checkpoint is in {self.run_dir}"
        )

    def end_epoch(self, epoch: int, stats: EpochStats) -> dict[str, Any]:
        """Step the schedule; then rank 0 validates, logs the epoch and writes the checkpoint files atomically."""
        row = self.epoch_row(epoch, stats)
        self.scheduler.step()
        if self.dist.is_main:
            row.update(self.validate())
        rng = gather_rng_states(self.dist)  # a collective; after validation, which draws from rank 0's RNG
        if self.dist.is_main:
            self.log_epoch(epoch, row)
            self.checkpoint(epoch, rng)
        barrier(self.dist)
        return row

    def epoch_row(self, epoch: int, stats: EpochStats) -> dict[str, Any]:
        """The epoch's line of log.csv: lrs, mean loss terms and diagnostics, throughput, ln C."""
        lrs = self.scheduler.get_last_lr()
        return {"epoch": epoch + 1, "lr": lrs[-1], "backbone_lr": lrs[0], **stats.means(),
                "images_per_s": round(stats.images_per_second, 1),
                "seconds": round(time.perf_counter() - stats.start, 1),
                "world_size": self.dist.world_size, "ln_classes": round(uniform_cross_entropy(self.num_classes), 4)}

    def log_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        """log.csv, TensorBoard (when installed) and one printed line."""
        self.log.append(row)
        if self.tensorboard is not None:
            for key, value in row.items():
                self.tensorboard.add_scalar(key, value, epoch + 1)
            self.tensorboard.flush()
        tqdm.write(_format_row(row))

    def checkpoint(self, epoch: int, rng: list[dict[str, Any]]) -> None:
        """model.safetensors + model.json (the model) and last.pt (everything `--resume` needs)."""
        save_model(self.run_dir, self.model, recipe=self.recipe.to_dict(), epoch=epoch + 1,
                   world_size=self.dist.world_size, num_train_ids=self.num_classes, selection="last epoch",
                   hardware=describe_hardware(self.device, self.dist.world_size))
        save_state(self.run_dir, {
            "epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng,
            "recipe": self.recipe.to_dict(), "world_size": self.dist.world_size,
        })

    def validate(self) -> dict[str, float]:
        """Metrics on the held-out training identities (never the test set); empty without data.val_ids."""
        if not self.val_samples:
            return {}
        from sepgzoo.evaluation.evaluate import evaluate_validation

        return evaluate_validation(self.model, self.val_samples, self.recipe, self.device)


def describe_hardware(device: torch.device, world_size: int) -> str:
    """e.g. "1 x NVIDIA H100 80GB HBM3" or "1 process x CPU (x86_64, 2 threads)", for model.json and the zoo."""
    if device.type == "cuda":
        return f"{world_size} x {torch.cuda.get_device_name(device)}"
    import platform

    return f"{world_size} process(es) x CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def _tensorboard_writer(run_dir: Path):
    """TensorBoard event files in the run folder when tensorboard is installed; None otherwise."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _format_row(row: dict[str, Any]) -> str:
    parts = [f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in row.items()]
    return "  ".join(parts)


def train(recipe: Recipe, output: str | Path | None = None, resume: str | Path | None = None) -> Path:
    """Train a recipe (or continue a run with `resume`); returns the run directory.

    Everything the run needs (data, evaluation protocols, model, sampler, run folder) is checked before the
    run folder is created (`sepgzoo.training.preflight`).

    Example:
        >>> run = train(load_recipe("synthetic"), output="runs/demo")
    """
    state = None
    if resume is not None:
        run_dir, state = load_state(resume)
        recipe = recipe_from_dict(state["recipe"])
    device = resolve_device(recipe.train.device)
    dist_info = init_distributed(device.type, recipe.train.dist_timeout_s)
    try:
        if device.type == "cuda":
            device = torch.device("cuda", dist_info.local_rank)  # init_distributed made it the current device
            torch.cuda.set_device(device)
            torch.backends.cudnn.benchmark = True  # training shapes never change (drop_last): autotune once
        if state is None:
            run_dir = run_dir_path(recipe.name, output) if dist_info.is_main else Path(output or "")
            if dist_info.is_main:
                check_new_run_dir(run_dir)
            seed_everything(recipe.train.seed + dist_info.rank)
        checked = check_inputs(recipe)
        trainer = Trainer(recipe, None, dist_info, device, state, dataset=checked.dataset)
        if dist_info.is_main and state is None:
            new_run_dir(run_dir)
            write_text(run_dir / "recipe.yaml", recipe.to_yaml())
        trainer.open_run(run_dir)
        if dist_info.is_main:
            tqdm.write(f"training {recipe.name}: {trainer.num_classes} identities, world size {dist_info.world_size}, "
                       f"device {device}, epochs {trainer.start_epoch + 1}..{recipe.train.epochs} -> {run_dir}")
        trainer.fit()
        # Every rank leaves the process group together (NCCL's teardown is collective), before rank 0 evaluates
        # alone: a rank waiting in a collective through a 10-trial evaluation would outlast the timeout.
        barrier(dist_info)
        cleanup(dist_info)
        if not dist_info.is_main:
            return run_dir
        if trainer.log.rows:
            from sepgzoo.training.curves import plot_run_curves

            plot_run_curves(run_dir)
        if recipe.train.evaluate:
            record_final_evaluation(trainer, checked)
        return run_dir
    finally:
        cleanup(dist_info)


def record_final_evaluation(trainer: Trainer, checked: CheckedInputs) -> None:
    """The training's own evaluation of its last epoch, written once as the run's `metrics.json`.

    The model evaluated is the one in memory, in the memory format it is saved and loaded in, so the record
    equals what `sepgzoo eval` computes from the saved files. A resumed run that already holds its record
    (every epoch done and evaluated) keeps it.
    """
    from sepgzoo.evaluation.evaluate import evaluate_model
    from sepgzoo.evaluation.records import TRAINING_RECORD, write_training_record
    from sepgzoo.evaluation.scoring import evaluation_report

    if (trainer.run_dir / TRAINING_RECORD).is_file():
        tqdm.write(f"{trainer.run_dir / TRAINING_RECORD} already holds this run's evaluation; kept as it is")
        return
    model = trainer.model.to(memory_format=torch.contiguous_format)
    results = evaluate_model(model, trainer.recipe, trainer.device, dataset=checked.dataset)
    report = evaluation_report(results, trainer.recipe, model.config.name, trainer.recipe.train.epochs,
                               "last epoch", trainer.run_dir / WEIGHTS_NAME)
    write_training_record(trainer.run_dir, report)
