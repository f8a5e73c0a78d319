"""The self-check report: its file names and format, and its markdown rendering (the verdict, the environment,
one table row per check, then the reasons of what failed or was skipped)."""

from __future__ import annotations

from typing import Any

from sepgzoo.doctor.config import FAILED, PASSED, SKIPPED

REPORT_JSON = "gpu-report.json"
REPORT_MD = "gpu-report.md"
REPORT_FORMAT = "sepgzoo-gpu-report/1"


def _cudnn_version(cudnn: Any) -> Any:
    """torch's cuDNN number as a version: cuDNN 9: 90100 -> 9.1.0; cuDNN 8: 8906 -> 8.9.6 (anything else as is)."""
    if not isinstance(cudnn, int):
        return cudnn
    if cudnn >= 10000:
        return f"{cudnn // 10000}.{cudnn // 100 % 100}.{cudnn % 100}"
    return f"{cudnn // 1000}.{cudnn // 100 % 10}.{cudnn % 100}"


def _environment_lines(env: dict[str, Any]) -> list[str]:
    lines = []
    for gpu in env.get("gpus", []):
        lines.append(f"- GPU: {gpu['name']} (compute capability {gpu['compute_capability']}, {gpu['memory_gib']} GiB)"
                     + (f", driver {env['nvidia_driver']}" if env.get("nvidia_driver") else ""))
    if not env.get("gpus"):
        lines.append("- GPU: none visible to torch")
    lines.append(f"- torch {env['torch']} (CUDA {env['torch_cuda']}, cuDNN {_cudnn_version(env.get('cudnn'))}), "
                 f"timm {env['timm']}, sepgzoo {env['sepgzoo']}, Python {env['python']}")
    ort = env.get("onnxruntime", {})
    lines.append(f"- ONNX Runtime {ort.get('version')} ({', '.join(ort.get('packages', [])) or 'not installed'}): "
                 f"providers {', '.join(ort.get('providers', []))}")
    trt = env.get("tensorrt", {})
    lines.append(f"- TensorRT {trt['version']}" if trt.get("usable") else f"- TensorRT: {trt.get('reason')}")
    return lines


def _check_rows(checks: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(one table row per check, one note per check or part that did not pass)."""
    rows, notes = [], []
    for name, entry in checks.items():
        result = entry.get("result", {})
        text = result.get("summary") or entry.get("reason", "")
        rows.append(f"| {name} | {entry['status']} | {entry['seconds']:.1f} | {entry['title']} | "
                    f"{text.replace('|', '/')} |")
        if entry["status"] != PASSED:
            notes.append(f"- **{name}** {entry['status']}: {entry.get('reason', '')}")
        for part, value in result.get("parts", {}).items():
            if value.get("status") != PASSED:
                notes.append(f"- **{name} / {part}** {value['status']}: {value.get('reason', '')}")
    return rows, notes


def format_markdown(report: dict[str, Any]) -> str:
    """The readable summary: the verdict, the environment, one table row per check, then reasons and errors."""
    checks = report["checks"]
    counts = {s: sum(e["status"] == s for e in checks.values()) for s in (PASSED, FAILED, SKIPPED)}
    verdict = report.get("status", "running").upper()
    rows, notes = _check_rows(checks)
    lines = [f"# sepgzoo GPU self-check: {verdict}", "",
             f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped in "
             f"{report.get('seconds', 0):.0f} s on {report['config']['device']}"
             f"{' (tiny CI sizes)' if report['config'].get('tiny') else ''}; {report['created']}; "
             f"report: {report['config']['output']}/{REPORT_JSON}", "", "## Environment", "",
             *_environment_lines(report["environment"]), "", "## Checks", "",
             "| check | status | seconds | what | result |", "|---|---|---:|---|---|", *rows]
    if notes:
        lines += ["", "## Failed and skipped", "", *notes]
    if report.get("required_not_passed"):
        lines += ["", f"Required but not passed: {', '.join(report['required_not_passed'])} (training and inference "
                      "must run on the device)."]
    if report.get("not_checked"):
        lines += ["", "## Not checked", "", *(f"- {item}" for item in report["not_checked"])]
    return "\n".join(lines) + "\n"
