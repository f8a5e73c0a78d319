"""The five checks of `sepgzoo doctor --gpu`, in the order they run; each is a function of a `CheckConfig` that
returns a JSON-able dict (numbers, a one-line `summary`, and optional `parts` that can be skipped with a reason)
and calls the library directly, never a `sepgzoo` command:

1. `train_step`: 20 AMP training steps of sepg_resnet50 at the paper's batch, 8 x (7 + 7) at 288 x 144
   (`sepgzoo.training.bench.bench_training_step`): images/s and peak memory.
2. `resume`: a small run of the `synthetic` recipe trained for one epoch on CPU, then resumed on the GPU
   with AMP for a second epoch (`sepgzoo.training.engine.train`); it must continue at epoch 2 with a finite loss.
3. `evaluate`: that run evaluated on the GPU (`sepgzoo.evaluation.evaluate.evaluate_run`): Rank-1 / mAP.
4. `export`: that run exported with `--fp16` (`export_checkpoint`) and, where TensorRT is installed, its fp16
   engines built (`build_engines`, i.e. `export --fp16 --trt`): the parity numbers of export.json.
5. `bench_infer`: `bench infer` of that run (`sepgzoo.deploy.bench_infer`), ONNX Runtime (CUDA) and TensorRT.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from sepgzoo.doctor.config import FAILED, PASSED, Check, CheckConfig, CheckFailed, CheckSkipped, skipped
from sepgzoo.utils.atomic import write_text

BENCH_BACKENDS = ("torch", "onnxruntime", "tensorrt")  # what the inference check times, in its report's order


def _device(cfg: CheckConfig):
    import torch

    return torch.device(cfg.device)


def _tensorrt_reason(cfg: CheckConfig) -> str | None:
    """Why this check run builds no TensorRT engines (None when it does)."""
    if cfg.device != "cuda":
        return f"the check runs on {cfg.device} (--device {cfg.device}); TensorRT needs a CUDA device"
    from sepgzoo.deploy.tensorrt_platform import tensorrt_missing

    return tensorrt_missing()


# ---------------------------------------------------------------------------------------------------------------
# 1. train_step
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


# ---------------------------------------------------------------------------------------------------------------
# 2. resume
# ---------------------------------------------------------------------------------------------------------------
def _log_rows(run_dir: Path) -> list[dict[str, str]]:
    from sepgzoo.training.runs import CsvLog

    return CsvLog(run_dir / "log.csv").rows


def _train_one_cpu_epoch(cfg: CheckConfig) -> tuple[Path, dict[str, Any], float]:
    """The small run trained for one epoch on CPU -> (run folder, its saved training state, seconds)."""
    from sepgzoo.config import load_recipe
    from sepgzoo.training.engine import train
    from sepgzoo.training.runs import load_state

    overrides = [*cfg.recipe_overrides, "train.device=cpu", "train.epochs=1", "optim.milestones=[]",
                 "train.evaluate=false"]
    start = time.perf_counter()
    run_dir = train(load_recipe(cfg.recipe, overrides), output=cfg.run_dir)
    seconds = time.perf_counter() - start
    _, state = load_state(run_dir)
    if state["epoch"] != 0:
        raise CheckFailed(f"the CPU phase saved epoch {state['epoch'] + 1}, expected 1")
    return run_dir, state, seconds


def _move_to_this_machine(cfg: CheckConfig, run_dir: Path, state: dict[str, Any]):
    """Extend the run's saved recipe to 2 epochs with AMP and `train.device: auto`, as a run started on a CPU machine
    with the default device holds it (on this GPU machine auto means CUDA); returns the recipe to resume with."""
    from sepgzoo.config import recipe_from_dict
    from sepgzoo.training.runs import save_state

    state["recipe"]["train"].update(device="auto" if cfg.device == "cuda" else cfg.device, epochs=2, amp=True)
    save_state(run_dir, state)
    recipe = recipe_from_dict(state["recipe"])
    write_text(run_dir / "recipe.yaml", recipe.to_yaml())
    return recipe


def _resume_problems(cfg: CheckConfig, final: dict[str, Any], meta: dict[str, Any], result: dict[str, Any],
                     first_row_kept: bool) -> list[str]:
    """What is wrong with the resumed run (`result` as `check_resume` records it): where it ended, its log, its
    losses, and (on CUDA) where and how it ran."""
    epochs, losses, amp = result["log_epochs"], result["loss_per_epoch"], result["amp"]
    problems = []
    if final["epoch"] != 1 or meta.get("epoch") != 2:
        problems.append(f"the run ended at epoch {meta.get('epoch')} (last.pt epoch {final['epoch'] + 1}), expected 2")
    if epochs != [1, 2] or not first_row_kept:
        problems.append(f"log.csv holds epochs {epochs}, expected [1, 2]: the CPU epoch's row kept as it was, "
                        "then epoch 2")
    if not all(math.isfinite(loss) for loss in losses):
        problems.append(f"non-finite loss per epoch: {losses}")
    if cfg.device == "cuda" and "CPU" in str(meta.get("hardware")):
        problems.append(f"the resumed epoch ran on {meta.get('hardware')}, not on the GPU")
    if cfg.device == "cuda" and not amp:
        problems.append("AMP was not on in the resumed epoch (empty GradScaler state)")
    return problems


def check_resume(cfg: CheckConfig) -> dict[str, Any]:
    """Train the small run for 1 epoch on CPU, then resume it on `cfg.device` (AMP on CUDA) for a second epoch.

    The run stands for one started on a CPU machine and continued on a GPU machine: after the CPU epoch its
    state's recipe is extended to 2 epochs with `train.device: auto` (as a run started on a CPU machine with the
    default device holds it), then `train(resume=...)` continues it here, as `sepgzoo train --resume` does. It runs
    in this process: what carries over is on disk (last.pt, recipe.yaml, log.csv), as between two machines.
    """
    import torch

    from sepgzoo.hub.checkpoint import read_meta
    from sepgzoo.training.engine import train
    from sepgzoo.training.runs import STATE_NAME

    run_dir, state, cpu_seconds = _train_one_cpu_epoch(cfg)
    cpu_rows = _log_rows(run_dir)
    recipe = _move_to_this_machine(cfg, run_dir, state)
    start = time.perf_counter()
    train(recipe, resume=run_dir)
    resumed_seconds = time.perf_counter() - start
    final = torch.load(run_dir / STATE_NAME, map_location="cpu", weights_only=True)
    meta = read_meta(run_dir)
    rows = _log_rows(run_dir)
    epochs = [int(row["epoch"]) for row in rows]
    losses = [float(row["total"]) for row in rows]
    amp = bool(final.get("scaler"))  # GradScaler.state_dict() is empty when AMP is off
    resumed_at = epochs[len(cpu_rows)] if len(epochs) > len(cpu_rows) else None
    result = {"cpu_epochs": len(cpu_rows), "resumed_at_epoch": resumed_at, "final_epoch": meta.get("epoch"),
              "log_epochs": epochs, "resumed_device": cfg.device, "resumed_hardware": meta.get("hardware"), "amp": amp,
              "loss_per_epoch": losses, "images_per_s_per_epoch": [float(row["images_per_s"]) for row in rows],
              "cpu_phase_seconds": round(cpu_seconds, 2), "resumed_phase_seconds": round(resumed_seconds, 2)}
    problems = _resume_problems(cfg, final, meta, result, first_row_kept=rows[:1] == cpu_rows)
    if problems:
        raise CheckFailed("; ".join(problems))
    result["summary"] = (f"CPU epoch 1 -> resumed on {meta.get('hardware', cfg.device)} at epoch 2 "
                         f"(AMP {'on' if amp else 'off'}); loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return result


# ---------------------------------------------------------------------------------------------------------------
# 3. evaluate
# ---------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------
# 4. export
# ---------------------------------------------------------------------------------------------------------------
def _fp16_engines(cfg: CheckConfig) -> dict[str, Any]:
    """The `tensorrt` part of the export check: the run's fp16 engines built and parity-checked, or why not."""
    reason = _tensorrt_reason(cfg)
    if reason:
        return skipped(reason)
    from sepgzoo.deploy.tensorrt_build import build_engines

    start = time.perf_counter()
    engines = build_engines(cfg.export_dir, "fp16", max_batch=cfg.max_batch)
    return {"status": PASSED, "seconds": round(time.perf_counter() - start, 2), "precision": "fp16",
            "engines": {m: {"engine": e["engine"], "tensorrt_version": e["tensorrt_version"], "gpu_name": e["gpu_name"],
                            "min_cosine": min(e["parity"]["min_cosine"].values()),
                            "threshold": e["parity"]["threshold"]} for m, e in engines.items()}}


def check_export(cfg: CheckConfig) -> dict[str, Any]:
    """`export --fp16 --trt`: ONNX fp32 + fp16 graphs with parity, then the fp16 TensorRT engines if possible."""
    from sepgzoo.deploy.onnx_export import export_checkpoint

    start = time.perf_counter()
    record = export_checkpoint(cfg.run_dir, cfg.export_dir, fp16=True, max_batch=cfg.max_batch)
    onnx_seconds = time.perf_counter() - start
    parity = {f"{modality}/{precision}": {"min_cosine": min(p["min_cosine"].values()),
                                          "batch_invariance_min_cosine": p["batch_invariance_min_cosine"],
                                          "threshold": p["threshold"], "passed": p["passed"]}
              for modality, per in record["parity"].items() for precision, p in per.items()}
    parts: dict[str, Any] = {"onnx": {"status": PASSED, "seconds": round(onnx_seconds, 2), "parity": parity}}
    parts["tensorrt"] = trt = _fp16_engines(cfg)
    worst = min(p["min_cosine"] for p in parity.values())
    trt_text = (f"TensorRT fp16 min cosine {min(e['min_cosine'] for e in trt['engines'].values()):.6f}"
                if trt["status"] == PASSED else f"TensorRT skipped: {trt['reason']}")
    return {"export_dir": str(cfg.export_dir), "max_batch": cfg.max_batch, "parts": parts,
            "summary": f"ONNX fp32 + fp16 parity min cosine {worst:.6f}; {trt_text}"}


# ---------------------------------------------------------------------------------------------------------------
# 5. bench_infer
# ---------------------------------------------------------------------------------------------------------------
def _bench_plan(cfg: CheckConfig) -> tuple[list[str], dict[str, Any]]:
    """(backends that can run here, a skipped part for each one that cannot)."""
    import onnxruntime

    backends, parts = ["torch"], {}  # PyTorch inference on the device always runs: it needs nothing else
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
    return backends, parts


def _bench_command(cfg: CheckConfig, backends: list[str]) -> str:
    """The `sepgzoo bench infer` line that measures what this check measures (recorded, to rerun by hand)."""
    words = ["sepgzoo", "bench", "infer", "--checkpoint", str(cfg.run_dir), "--json", "--iters", str(cfg.bench_iters),
             "--warmup", str(cfg.bench_warmup)]
    words += [arg for b in cfg.bench_batches for arg in ("--batch", str(b))]
    words += [arg for b in backends for arg in ("--backend", b)] + ["--device", cfg.device]
    return " ".join(words)


def _bench_part(cfg: CheckConfig, backend: str, rows: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """One backend's part: its images/s and ms per batch, or why it has no rows; ONNX Runtime must have run on
    the CUDA provider when the check runs on CUDA."""
    mine = [row for row in rows if row["backend"].startswith(backend)]
    note = next((n for n in notes if n.startswith(backend)), None)
    if not mine:
        return skipped(note) if note else {"status": FAILED, "reason": "no result rows"}
    labels = sorted({row["backend"] for row in mine})
    where = sorted({str(row.get("device")) for row in mine})
    part = {"status": PASSED, "backend": ", ".join(labels),
            "images_per_s": {str(row["batch"]): round(row["images_per_s"], 1) for row in mine},
            "ms_per_batch": {str(row["batch"]): round(row["ms_per_batch"], 3) for row in mine},
            "device": ", ".join(where)}
    if backend == "torch" and cfg.device == "cuda" and where != ["GPU"]:
        part.update(status=FAILED, reason=f"PyTorch ran on {where}, not the GPU")
    if backend == "onnxruntime" and cfg.device == "cuda" and (where != ["GPU"] or
                                                               not all("CUDA" in label for label in labels)):
        part.update(status=FAILED, reason=f"ONNX Runtime ran on {labels}, not CUDAExecutionProvider "
                                          "(CUDA/cuDNN libraries missing for onnxruntime-gpu?)")
    return part


def _bench_text(parts: dict[str, Any]) -> str:
    texts = []
    for name, part in parts.items():
        if part["status"] == PASSED:
            speeds = ", ".join(f"b{b} {v:.0f}" for b, v in part["images_per_s"].items())
            texts.append(f"{part['backend']}: {speeds} images/s")
        else:
            texts.append(f"{name} skipped")
    return "; ".join(texts)


def check_bench_infer(cfg: CheckConfig) -> dict[str, Any]:
    """`bench infer` of the run (`sepgzoo.deploy.bench_infer`, as `sepgzoo bench infer --checkpoint` runs it):
    PyTorch and ONNX Runtime on `cfg.device`, and TensorRT; a runtime that cannot run here is a skipped part, named
    with its reason, never a pass."""
    from sepgzoo.deploy.bench_infer import bench_inference, bench_model

    backends, parts = _bench_plan(cfg)
    model, name = bench_model(cfg.run_dir)
    summary = bench_inference(model, name, tuple(cfg.bench_batches), tuple(backends), cfg.device, cfg.bench_iters,
                              cfg.bench_warmup, threads=None)
    rows, notes = summary["results"], summary.get("notes", [])
    parts.update({backend: _bench_part(cfg, backend, rows, notes) for backend in backends})
    parts = {name: parts[name] for name in BENCH_BACKENDS}
    failed = [f"{name}: {part['reason']}" for name, part in parts.items() if part["status"] == FAILED]
    if failed:
        raise CheckFailed("; ".join(failed))
    return {"command": _bench_command(cfg, backends), "batches": list(cfg.bench_batches), "iters": cfg.bench_iters,
            "parts": parts, "rows": rows, "notes": notes, "summary": _bench_text(parts)}


# ---------------------------------------------------------------------------------------------------------------
# The list the runner runs
# ---------------------------------------------------------------------------------------------------------------
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
    Check("bench_infer", lambda cfg: f"bench infer of that run: PyTorch and ONNX Runtime ({cfg.device}), TensorRT, "
          f"batches {', '.join(map(str, cfg.bench_batches))}", check_bench_infer, needs=("resume",)),
]
