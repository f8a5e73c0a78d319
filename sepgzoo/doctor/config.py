"""What a self-check run is made of: its configuration (`CheckConfig`: the GPU sizes, or tiny CPU sizes for CI),
a named check (`Check`), and the outcomes a check ends in (passed, failed, skipped)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


class CheckFailed(RuntimeError):
    """A check ran but its result is wrong (e.g. the resumed run did not continue at epoch 2)."""


class CheckSkipped(Exception):
    """A check cannot run here; the message is the reason (e.g. "TensorRT not installed")."""


@dataclass(frozen=True)
class CheckConfig:
    """What the checks run: the GPU defaults, or `tiny_config()` for CI on CPU (only the device and sizes differ)."""

    output: Path
    device: str = "cuda"
    model: str = "sepg_resnet50"  # training-step check
    ids: int = 8  # P identities per batch
    images_per_id: int = 7  # K images per identity and modality
    size: tuple[int, int] = (288, 144)
    steps: int = 20  # timed training steps (after 2 warm-up steps)
    recipe: str = "synthetic"  # the small run that is resumed, evaluated, exported and benchmarked
    recipe_overrides: tuple[str, ...] = ("train.iters_per_epoch=20",)
    max_batch: int = 32  # export parity batch and TensorRT profile maximum
    bench_batches: tuple[int, ...] = (1, 8, 32)
    bench_iters: int = 20
    bench_warmup: int = 3
    tiny: bool = False
    time_limit_s: float = 240.0  # each check's own limit: a hung check fails, the others still run

    @classmethod
    def gpu(cls, output: str | Path) -> CheckConfig:
        return cls(output=Path(output))

    @classmethod
    def tiny_config(cls, output: str | Path, device: str = "cpu") -> CheckConfig:
        """For tests: the same checks with `test_sepg`, 64 x 32, 2 x (2 + 2), 2 steps, 12 synthetic identities."""
        overrides = ("model.name=test_sepg", "model.parts=4", "model.part_dim=32", "data.height=64", "data.width=32",
                     "data.ids_per_batch=2", "data.images_per_id=2", "data.workers=0", "data.synthetic_ids=12",
                     "train.iters_per_epoch=2", "eval.trials=2")
        return cls(output=Path(output), device=device, model="test_sepg", ids=2, images_per_id=2, size=(64, 32),
                   steps=2, recipe_overrides=overrides, max_batch=4, bench_batches=(1, 2), bench_iters=2,
                   bench_warmup=1, tiny=True)

    @property
    def run_dir(self) -> Path:
        return self.output / "run"

    @property
    def export_dir(self) -> Path:
        return self.run_dir / "export"

    def to_dict(self) -> dict[str, Any]:
        data = {**dataclasses.asdict(self), "output": str(self.output)}
        return json.loads(json.dumps(data))  # tuples as lists, as the JSON file holds them


@dataclass(frozen=True)
class Check:
    """A named check: `run(cfg)` returns a JSON-able dict; `needs` names checks whose failure skips this one."""

    name: str
    title: Callable[[CheckConfig], str]
    run: Callable[[CheckConfig], dict[str, Any]]
    needs: tuple[str, ...] = field(default=())


def skipped(reason: str) -> dict[str, str]:
    """A part of a check that could not run here."""
    return {"status": SKIPPED, "reason": reason}
