"""`sepgzoo doctor --gpu`: a GPU self-check in a few minutes, written to `gpu-report.json` and `gpu-report.md`.

Five named checks run in order, each a short function of a `CheckConfig` that returns a JSON-able dict
(numbers, a one-line `summary`, and optional `parts` that can be skipped with a reason):

1. `train_step`: 20 AMP training steps of sepg_resnet50 at the paper's batch, 8 x (7 + 7) at 288 x 144
   (`sepgzoo.training.bench.bench_training_step`): images/s and peak memory.
2. `resume`: a small run of the `synthetic` recipe trained for one epoch on CPU, then resumed on the GPU
   with AMP for a second epoch (`sepgzoo.training.engine.train`); it must continue at epoch 2 with a finite loss.
3. `evaluate`: that run evaluated on the GPU (`sepgzoo.evaluation.evaluate.evaluate_run`): Rank-1 / mAP.
4. `export`: that run exported with `--fp16` (`export_checkpoint`) and, where TensorRT is installed, its fp16
   engines built (`build_engines`, i.e. `export --fp16 --trt`): the parity numbers of export.json.
5. `bench_infer`: `sepgzoo bench infer --json` of that run in a subprocess, ONNX Runtime (CUDA) and TensorRT.

The runner times each check, turns an exception into a `failed` entry (the later checks still run; a
check that needs a failed one is `skipped`), records the environment, writes the report atomically after
every check, and returns exit status 1 when any check failed.

`CheckConfig.tiny()` runs the same checks on CPU with the tiny `test_sepg` model, 64 x 32 images and a
12-identity synthetic data set: that is how CI exercises this module (`doctor --gpu --device cpu --tiny`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sepgzoo.utils.atomic import write_json, write_text

REPORT_JSON = "gpu-report.json"
REPORT_MD = "gpu-report.md"
REPORT_FORMAT = "sepgzoo-gpu-report/1"
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


class CheckFailed(RuntimeError):
    """A check ran but its result is wrong (e.g. the resumed run did not continue at epoch 2)."""


class CheckSkipped(Exception):
    """A check cannot run here; the message is the reason (e.g. "TensorRT not installed")."""


@dataclass(frozen=True)
class CheckConfig:
    """What the checks run: the GPU defaults, or `tiny()` for CI on CPU (only the device and sizes differ)."""

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
    subprocess_timeout_s: int = 300
    tiny: bool = False

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


# ---------------------------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------------------------
def cuda_missing() -> str | None:
    """Why there is no usable CUDA device (one line), or None when torch sees one."""
    import warnings

    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return None
    detail = "; ".join(" ".join(str(w.message).split()) for w in caught)[:300]
    build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return (f"no CUDA device (torch.cuda.is_available() is False{': ' + detail if detail else ''}; "
            f"torch {torch.__version__}, {build})")


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "--id=0"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def environment() -> dict[str, Any]:
    """Versions and hardware: torch / CUDA / cuDNN, GPUs, ONNX Runtime build and providers, TensorRT."""
    import torch

    from sepgzoo.version import __version__

    env: dict[str, Any] = {
        "sepgzoo": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(), "cpu_threads": torch.get_num_threads(),
        "timm": _package("timm"), "onnx": _package("onnx"),
    }
    if env["cuda_available"]:
        env["gpus"] = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            env["gpus"].append({"name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                                "memory_gib": round(props.total_memory / 2**30, 1)})
        env["nvidia_driver"] = _nvidia_driver()
    try:
        import onnxruntime

        env["onnxruntime"] = {"version": onnxruntime.__version__,
                              "packages": [p for p in ("onnxruntime", "onnxruntime-gpu") if _package(p)],
                              "providers": onnxruntime.get_available_providers()}
    except ImportError as err:
        env["onnxruntime"] = {"version": None, "error": str(err)}
    from sepgzoo.deploy.tensorrt import tensorrt_missing

    reason = tensorrt_missing()
    env["tensorrt"] = {"version": _tensorrt_version(), "usable": reason is None, "reason": reason}
    return env


def _tensorrt_version() -> str | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return str(getattr(tensorrt, "__version__", "unknown"))


def _tensorrt_reason(cfg: CheckConfig) -> str | None:
    """Why this check run builds no TensorRT engines (None when it does)."""
    if cfg.device != "cuda":
        return f"the check runs on {cfg.device} (--device {cfg.device}); TensorRT needs a CUDA device"
    from sepgzoo.deploy.tensorrt import tensorrt_missing

    return tensorrt_missing()


def _device(cfg: CheckConfig):
    import torch

    return torch.device(cfg.device)


# ---------------------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------------------
def check_train_step(cfg: CheckConfig) -> dict[str, Any]:
    """`steps` training steps (AMP on CUDA) at P x (K + K), images/s and peak memory."""
    from sepgzoo.training.bench import bench_training_step

    result = bench_training_step(cfg.model, cfg.ids, cfg.images_per_id, tuple(cfg.size), cfg.steps, _device(cfg),
                                 amp=True)
    if not result["images_per_s"] > 0 or not result["peak_memory_mib"] > 0:
        raise CheckFailed(f"implausible numbers: {result['images_per_s']} images/s, {result['peak_memory_mib']} MiB")
    result["steps"] = cfg.steps
    result["summary"] = (f"{result['images_per_s']:.1f} images/s ({result['step_ms']:.0f} ms/step, "
                         f"AMP {'on' if result['amp'] else 'off'}), peak {result['peak_memory_mib']:.0f} MiB "
                         f"{result['peak_memory_kind']}")
    return result


def _log_rows(run_dir: Path) -> list[dict[str, str]]:
    from sepgzoo.training.runs import CsvLog

    return CsvLog(run_dir / "log.csv").rows


def check_resume(cfg: CheckConfig) -> dict[str, Any]:
    """Train the small run for 1 epoch on CPU, then resume it on `cfg.device` (AMP on CUDA) for a second epoch.

    The run stands for one started on a CPU machine and continued on a GPU machine: after the CPU epoch its
    state's recipe is extended to 2 epochs with `train.device: auto` (as a run started on a CPU machine with the
    default device holds it), then `train(resume=...)` continues it here, as `sepgzoo train --resume` does.
    """
    from sepgzoo.config import load_recipe, recipe_from_dict
    from sepgzoo.hub.checkpoint import read_meta
    from sepgzoo.training.engine import train
    from sepgzoo.training.runs import STATE_NAME, load_state, save_state

    overrides = [*cfg.recipe_overrides, "train.device=cpu", "train.epochs=1", "optim.milestones=[]",
                 "train.evaluate=false"]
    start = time.perf_counter()
    run_dir = train(load_recipe(cfg.recipe, overrides), output=cfg.run_dir)
    cpu_seconds = time.perf_counter() - start
    _, state = load_state(run_dir)
    if state["epoch"] != 0:
        raise CheckFailed(f"the CPU phase saved epoch {state['epoch'] + 1}, expected 1")
    cpu_rows = _log_rows(run_dir)
    # What a run started with device auto on a CPU machine holds; on this GPU machine auto means CUDA.
    state["recipe"]["train"].update(device="auto" if cfg.device == "cuda" else cfg.device, epochs=2, amp=True)
    save_state(run_dir, state)
    write_text(run_dir / "recipe.yaml", recipe_from_dict(state["recipe"]).to_yaml())

    start = time.perf_counter()
    train(recipe_from_dict(state["recipe"]), resume=run_dir)
    resumed_seconds = time.perf_counter() - start
    import torch

    final = torch.load(run_dir / STATE_NAME, map_location="cpu", weights_only=True)
    meta = read_meta(run_dir)
    rows = _log_rows(run_dir)
    epochs = [int(row["epoch"]) for row in rows]
    losses = [float(row["total"]) for row in rows]
    amp = bool(final.get("scaler"))  # GradScaler.state_dict() is empty when AMP is off
    resumed_at = epochs[len(cpu_rows)] if len(epochs) > len(cpu_rows) else None
    result = {"cpu_epochs": len(cpu_rows), "resumed_at_epoch": resumed_at, "final_epoch": meta.get("epoch"), "log_epochs": epochs,
              "resumed_device": cfg.device, "resumed_hardware": meta.get("hardware"), "amp": amp,
              "loss_per_epoch": losses, "images_per_s_per_epoch": [float(row["images_per_s"]) for row in rows],
              "cpu_phase_seconds": round(cpu_seconds, 2), "resumed_phase_seconds": round(resumed_seconds, 2)}
    problems = []
    if final["epoch"] != 1 or meta.get("epoch") != 2:
        problems.append(f"the run ended at epoch {meta.get('epoch')} (last.pt epoch {final['epoch'] + 1}), expected 2")
    if epochs != [1, 2] or rows[:1] != cpu_rows:
        problems.append(f"log.csv holds epochs {epochs}, expected [1, 2]: the CPU epoch's row kept as it was, "
                        "then epoch 2")
    if not all(math.isfinite(loss) for loss in losses):
        problems.append(f"non-finite loss per epoch: {losses}")
    if cfg.device == "cuda" and "CPU" in str(meta.get("hardware")):
        problems.append(f"the resumed epoch ran on {meta.get('hardware')}, not on the GPU")
    if cfg.device == "cuda" and not amp:
        problems.append("AMP was not on in the resumed epoch (empty GradScaler state)")
    if problems:
        raise CheckFailed("; ".join(problems))
    result["summary"] = (f"CPU epoch 1 -> resumed on {meta.get('hardware', cfg.device)} at epoch 2 "
                         f"(AMP {'on' if amp else 'off'}); loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return result


def check_evaluate(cfg: CheckConfig) -> dict[str, Any]:
    """The resumed run evaluated on `cfg.device` with its recipe's protocol."""
    from sepgzoo.evaluation.evaluate import evaluate_run
    from sepgzoo.evaluation.report import summarise

    start = time.perf_counter()
    report = evaluate_run(cfg.run_dir, device=_device(cfg))
    seconds = time.perf_counter() - start
    metrics = summarise(report["results"])
    first = next(iter(metrics))
    if not all(math.isfinite(v) for m in metrics.values() for v in m.values()):
        raise CheckFailed(f"non-finite metrics: {metrics}")
    r1, mean_ap = metrics[first]["rank1"], metrics[first]["mAP"]
    return {"device": cfg.device, "protocol": first, "R1": r1, "mAP": mean_ap, "protocols": metrics,
            "seconds": round(seconds, 2),
            "summary": f"{first} R1 {r1:.1f} / mAP {mean_ap:.1f} ({len(metrics)} settings, {seconds:.1f} s)"}


def check_export(cfg: CheckConfig) -> dict[str, Any]:
    """`export --fp16 --trt`: ONNX fp32 + fp16 graphs with parity, then the fp16 TensorRT engines if possible."""
    from sepgzoo.deploy.onnx_export import export_checkpoint
    from sepgzoo.deploy.tensorrt import build_engines

    start = time.perf_counter()
    record = export_checkpoint(cfg.run_dir, cfg.export_dir, fp16=True, max_batch=cfg.max_batch)
    onnx_seconds = time.perf_counter() - start
    parity = {f"{modality}/{precision}": {"min_cosine": min(p["min_cosine"].values()),
                                          "batch_invariance_min_cosine": p["batch_invariance_min_cosine"],
                                          "threshold": p["threshold"], "passed": p["passed"]}
              for modality, per in record["parity"].items() for precision, p in per.items()}
    parts: dict[str, Any] = {"onnx": {"status": PASSED, "seconds": round(onnx_seconds, 2), "parity": parity}}
    reason = _tensorrt_reason(cfg)
    if reason:
        parts["tensorrt"] = skipped(reason)
    else:
        start = time.perf_counter()
        engines = build_engines(cfg.export_dir, fp16=True, max_batch=cfg.max_batch)
        parts["tensorrt"] = {
            "status": PASSED, "seconds": round(time.perf_counter() - start, 2), "precision": "fp16",
            "engines": {m: {"engine": e["engine"], "tensorrt_version": e["tensorrt_version"], "gpu_name": e["gpu_name"],
                            "min_cosine": min(e["parity"]["min_cosine"].values()),
                            "threshold": e["parity"]["threshold"]} for m, e in engines.items()}}
    worst = min(p["min_cosine"] for p in parity.values())
    trt = parts["tensorrt"]
    trt_text = (f"TensorRT fp16 min cosine {min(e['min_cosine'] for e in trt['engines'].values()):.6f}"
                if trt["status"] == PASSED else f"TensorRT skipped: {trt['reason']}")
    return {"export_dir": str(cfg.export_dir), "max_batch": cfg.max_batch, "parts": parts,
            "summary": f"ONNX fp32 + fp16 parity min cosine {worst:.6f}; {trt_text}"}


def check_bench_infer(cfg: CheckConfig) -> dict[str, Any]:
    """`sepgzoo bench infer --json` of the run in a subprocess: ONNX Runtime on `cfg.device` and TensorRT."""
    parts: dict[str, Any] = {}
    backends = []
    import onnxruntime

    if cfg.device == "cuda" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        parts["onnxruntime"] = skipped("onnxruntime has no CUDAExecutionProvider (the CPU build is installed; "
                                       "swap it for onnxruntime-gpu, see the README)")
    else:
        backends.append("onnxruntime")
    reason = _tensorrt_reason(cfg)
    if reason:
        parts["tensorrt"] = skipped(reason)
    else:
        backends.append("tensorrt")
    if not backends:
        raise CheckSkipped("; ".join(f"{name}: {part['reason']}" for name, part in parts.items()))
    command = [sys.executable, "-m", "sepgzoo", "bench", "infer", "--checkpoint", str(cfg.run_dir), "--json",
               "--iters", str(cfg.bench_iters), "--warmup", str(cfg.bench_warmup)]
    command += [arg for b in cfg.bench_batches for arg in ("--batch", str(b))]
    command += [arg for b in backends for arg in ("--backend", b)] + ["--device", cfg.device]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=cfg.subprocess_timeout_s)
    except subprocess.TimeoutExpired as err:
        raise CheckFailed(f"`{' '.join(command[1:])}` did not finish in {cfg.subprocess_timeout_s} s") from err
    if done.returncode != 0:
        raise CheckFailed(f"`sepgzoo bench infer` exited with status {done.returncode}: "
                          f"{(done.stderr or done.stdout).strip()[-1500:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise CheckFailed(f"`sepgzoo bench infer --json` printed no JSON: {done.stdout[-500:]}")
    summary = json.loads(lines[-1])
    rows = summary["results"]
    for backend in backends:
        mine = [row for row in rows if row["backend"].startswith(backend)]
        note = next((n for n in summary.get("notes", []) if n.startswith(backend)), None)
        if not mine:
            parts[backend] = skipped(note) if note else {"status": FAILED, "reason": "no result rows"}
            continue
        labels = sorted({row["backend"] for row in mine})
        part = {"status": PASSED, "backend": ", ".join(labels),
                "images_per_s": {str(row["batch"]): round(row["images_per_s"], 1) for row in mine},
                "ms_per_batch": {str(row["batch"]): round(row["ms_per_batch"], 3) for row in mine}}
        where = sorted({str(row.get("device")) for row in mine})
        part["device"] = ", ".join(where)
        if backend == "onnxruntime" and cfg.device == "cuda" and (where != ["GPU"] or
                                                                   not all("CUDA" in label for label in labels)):
            part.update(status=FAILED, reason=f"ONNX Runtime ran on {labels}, not CUDAExecutionProvider "
                                              "(CUDA/cuDNN libraries missing for onnxruntime-gpu?)")
        parts[backend] = part
    parts = {name: parts[name] for name in ("onnxruntime", "tensorrt")}
    failed = [f"{name}: {part['reason']}" for name, part in parts.items() if part["status"] == FAILED]
    result = {"command": " ".join(["sepgzoo", *command[3:]]), "batches": list(cfg.bench_batches),
              "iters": cfg.bench_iters, "parts": parts, "rows": rows, "notes": summary.get("notes", [])}
    if failed:
        raise CheckFailed("; ".join(failed))
    texts = []
    for name, part in parts.items():
        if part["status"] == PASSED:
            speeds = ", ".join(f"b{b} {v:.0f}" for b, v in part["images_per_s"].items())
            texts.append(f"{part['backend']}: {speeds} images/s")
        else:
            texts.append(f"{name} skipped")
    result["summary"] = "; ".join(texts)
    return result


def _train_title(cfg: CheckConfig) -> str:
    amp = "AMP " if cfg.device == "cuda" else ""
    return (f"{cfg.steps} {amp}training steps of {cfg.model} at {cfg.ids} x ({cfg.images_per_id} + "
            f"{cfg.images_per_id}), {cfg.size[0]} x {cfg.size[1]}")


CHECKS: list[Check] = [
    Check("train_step", _train_title, check_train_step),
    Check("resume", lambda cfg: f"`{cfg.recipe}` run: 1 epoch on CPU, resumed on {cfg.device} for epoch 2",
          check_resume),
    Check("evaluate", lambda cfg: f"evaluation of that run on {cfg.device}", check_evaluate, needs=("resume",)),
    Check("export", lambda cfg: f"export --fp16 --trt of that run (max batch {cfg.max_batch}), parity",
          check_export, needs=("resume",)),
    Check("bench_infer", lambda cfg: f"bench infer of that run: ONNX Runtime ({cfg.device}) and TensorRT, "
          f"batches {', '.join(map(str, cfg.bench_batches))}", check_bench_infer, needs=("resume",)),
]


# ---------------------------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------------------------
def _run_one(check: Check, cfg: CheckConfig, done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"title": check.title(cfg), "status": None, "seconds": 0.0}
    blocked = [name for name in check.needs if done.get(name, {}).get("status") != PASSED]
    if blocked:
        entry.update(status=SKIPPED, reason=f"needs {', '.join(blocked)}, which did not pass")
        return entry
    cuda = cfg.device == "cuda"
    if cuda:
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        entry["result"] = check.run(cfg)
        entry["status"] = PASSED
    except CheckSkipped as err:
        entry.update(status=SKIPPED, reason=str(err))
    except Exception as err:  # noqa: BLE001 - every failure goes into the report, the other checks still run
        message = " ".join(str(err).split())
        entry.update(status=FAILED, reason=f"{type(err).__name__}: {message[:2000]}",
                     traceback=traceback.format_exc()[-6000:])
    entry["seconds"] = round(time.perf_counter() - start, 2)
    if cuda:
        import torch

        entry["peak_cuda_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        torch.cuda.empty_cache()
    return entry


def run_checks(cfg: CheckConfig, checks: Sequence[Check] | None = None,
               echo: Callable[[str], Any] = print) -> tuple[int, dict[str, Any]]:
    """Run `checks` (default: all five) in order; write gpu-report.json and gpu-report.md into `cfg.output`.

    Returns (exit status: 1 if any check failed, else 0; the report).
    """
    checks = CHECKS if checks is None else list(checks)
    cfg.output.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"format": REPORT_FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "status": "running", "config": cfg.to_dict(), "environment": environment(),
                              "checks": {}}
    total = time.perf_counter()
    for index, check in enumerate(checks, 1):
        echo(f"[{index}/{len(checks)}] {check.name}: {check.title(cfg)} ...")
        entry = _run_one(check, cfg, report["checks"])
        report["checks"][check.name] = entry
        write_json(cfg.output / REPORT_JSON, report)  # progress survives a kill
        reason = f" ({entry['reason']})" if entry.get("reason") else ""
        echo(f"[{index}/{len(checks)}] {check.name}: {entry['status']} in {entry['seconds']:.1f} s{reason}")
    failed = [name for name, entry in report["checks"].items() if entry["status"] == FAILED]
    report.update(status=FAILED if failed else PASSED, failed=failed, seconds=round(time.perf_counter() - total, 1))
    write_json(cfg.output / REPORT_JSON, report)
    write_text(cfg.output / REPORT_MD, format_markdown(report))
    return (1 if failed else 0), report


def _environment_lines(env: dict[str, Any]) -> list[str]:
    lines = []
    for gpu in env.get("gpus", []):
        lines.append(f"- GPU: {gpu['name']} (compute capability {gpu['compute_capability']}, {gpu['memory_gib']} GiB)"
                     + (f", driver {env['nvidia_driver']}" if env.get("nvidia_driver") else ""))
    if not env.get("gpus"):
        lines.append("- GPU: none visible to torch")
    cudnn = env.get("cudnn")
    if isinstance(cudnn, int):  # cuDNN 9: 90100 -> 9.1.0; cuDNN 8: 8906 -> 8.9.6
        cudnn = (f"{cudnn // 10000}.{cudnn // 100 % 100}.{cudnn % 100}" if cudnn >= 10000
                 else f"{cudnn // 1000}.{cudnn // 100 % 10}.{cudnn % 100}")
    lines.append(f"- torch {env['torch']} (CUDA {env['torch_cuda']}, cuDNN {cudnn}), timm {env['timm']}, "
                 f"sepgzoo {env['sepgzoo']}, Python {env['python']}")
    ort = env.get("onnxruntime", {})
    lines.append(f"- ONNX Runtime {ort.get('version')} ({', '.join(ort.get('packages', [])) or 'not installed'}): "
                 f"providers {', '.join(ort.get('providers', []))}")
    trt = env.get("tensorrt", {})
    lines.append(f"- TensorRT {trt['version']}" if trt.get("usable") else f"- TensorRT: {trt.get('reason')}")
    return lines


def format_markdown(report: dict[str, Any]) -> str:
    """The readable summary: the verdict, the environment, one table row per check, then reasons and errors."""
    checks = report["checks"]
    counts = {s: sum(e["status"] == s for e in checks.values()) for s in (PASSED, FAILED, SKIPPED)}
    verdict = report.get("status", "running").upper()
    lines = [f"# sepgzoo GPU self-check: {verdict}", "",
             f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped in "
             f"{report.get('seconds', 0):.0f} s on {report['config']['device']}"
             f"{' (tiny CI sizes)' if report['config'].get('tiny') else ''}; {report['created']}; "
             f"report: {report['config']['output']}/{REPORT_JSON}", "", "## Environment", "",
             *_environment_lines(report["environment"]), "", "## Checks", "",
             "| check | status | seconds | what | result |", "|---|---|---:|---|---|"]
    notes = []
    for name, entry in checks.items():
        result = entry.get("result", {})
        text = result.get("summary") or entry.get("reason", "")
        lines.append(f"| {name} | {entry['status']} | {entry['seconds']:.1f} | {entry['title']} | "
                     f"{text.replace('|', '/')} |")
        if entry["status"] != PASSED:
            notes.append(f"- **{name}** {entry['status']}: {entry.get('reason', '')}")
        for part, value in result.get("parts", {}).items():
            if value.get("status") != PASSED:
                notes.append(f"- **{name} / {part}** {value['status']}: {value.get('reason', '')}")
    if notes:
        lines += ["", "## Failed and skipped", "", *notes]
    return "\n".join(lines) + "\n"


__all__ = ["CHECKS", "Check", "CheckConfig", "CheckFailed", "CheckSkipped", "REPORT_JSON", "REPORT_MD", "cuda_missing",
           "environment", "format_markdown", "run_checks"]
