"""Runs the self-check: each check in order, timed, with its outcome; the report written after every check.

An exception becomes a `failed` entry with its traceback and the later checks still run; a check whose `needs`
did not pass is `skipped`. `gpu-report.json` is rewritten (atomically) after every check, so a killed run leaves
its progress; at the end come the verdict and `gpu-report.md`.
"""

from __future__ import annotations

import contextlib
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sepgzoo.doctor.checks import CHECKS
from sepgzoo.doctor.config import FAILED, PASSED, SKIPPED, Check, CheckConfig, CheckFailed, CheckSkipped
from sepgzoo.doctor.environment import environment
from sepgzoo.doctor.report import REPORT_FORMAT, REPORT_JSON, REPORT_MD, format_markdown
from sepgzoo.utils.atomic import write_json, write_text


def _cuda_memory(begin: bool) -> dict[str, float]:
    """Clear the CUDA cache around a check; at its end, the peak memory it allocated."""
    import torch

    if begin:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return {}
    peak = {"peak_cuda_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    torch.cuda.empty_cache()
    return peak


#: what must have passed (not merely been skipped) for the self-check to succeed: training and inference on the device
REQUIRED = ("train_step", "bench_infer")


@contextlib.contextmanager
def time_limit(seconds: float, name: str) -> Iterator[None]:
    """Raise CheckFailed in this (main) thread when the block outlasts `seconds` (SIGALRM; a no-op where missing)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise CheckFailed(f"{name} did not finish within its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def not_checked(checks: dict[str, dict[str, Any]]) -> list[str]:
    """Everything the run did not check, by name with its reason: skipped checks and skipped parts of checks."""
    names = [f"{name}: {entry.get('reason')}" for name, entry in checks.items() if entry["status"] == SKIPPED]
    for name, entry in checks.items():
        for part, value in (entry.get("result") or {}).get("parts", {}).items():
            if isinstance(value, dict) and value.get("status") == SKIPPED:
                names.append(f"{name} / {part}: {value.get('reason')}")
    return names


def _run_one(check: Check, cfg: CheckConfig, done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One check's report entry: title, status, seconds, and its result, or the reason it failed or was skipped."""
    entry: dict[str, Any] = {"title": check.title(cfg), "status": None, "seconds": 0.0}
    blocked = [name for name in check.needs if done.get(name, {}).get("status") != PASSED]
    if blocked:
        entry.update(status=SKIPPED, reason=f"needs {', '.join(blocked)}, which did not pass")
        return entry
    cuda = cfg.device == "cuda"
    if cuda:
        _cuda_memory(begin=True)
    start = time.perf_counter()
    try:
        with time_limit(cfg.time_limit_s, check.name):
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
        entry.update(_cuda_memory(begin=False))
    return entry


def run_checks(cfg: CheckConfig, checks: Sequence[Check] | None = None,
               echo: Callable[[str], Any] = print) -> tuple[int, dict[str, Any]]:
    """Run `checks` (default: all five) in order; write gpu-report.json and gpu-report.md into `cfg.output`.

    Returns (exit status: 1 if any check failed or a REQUIRED one did not pass, else 0; the report). Each check
    runs under `cfg.time_limit_s`; the report lists by name everything that was not checked (`not_checked`).
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
    missing = [name for name in REQUIRED if name in report["checks"] and report["checks"][name]["status"] != PASSED]
    report.update(status=FAILED if failed or missing else PASSED, failed=failed, required_not_passed=missing,
                  not_checked=not_checked(report["checks"]), seconds=round(time.perf_counter() - total, 1))
    write_json(cfg.output / REPORT_JSON, report)
    write_text(cfg.output / REPORT_MD, format_markdown(report))
    return (1 if failed or missing else 0), report
