"""`sepgzoo doctor --gpu`: the no-CUDA exit, the whole self-check on CPU at tiny sizes, failing checks.

The GPU run itself (`make gpu-check`) needs CUDA; here the same runner and check functions run on CPU
with `--device cpu --tiny` (test_sepg, 64 x 32, 12 synthetic identities), so the wiring
train -> resume -> eval -> export -> bench infer -> report is what CI tests.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sepgzoo.cli import main
from sepgzoo.doctor.config import Check, CheckConfig, CheckSkipped
from sepgzoo.doctor.report import REPORT_JSON, REPORT_MD
from sepgzoo.doctor.runner import run_checks

CHECKS = ["train_step", "resume", "evaluate", "export", "bench_infer"]
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_without_cuda_one_line_on_stderr_exit_1_and_nothing_written(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)  # the default output folder would be ./runs/gpu-check-*
    result = invoke("doctor", "--gpu")
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("sepgzoo doctor --gpu: no CUDA device (torch.cuda.is_available() is False")
    assert "run it on a GPU machine" in lines[0] and "Traceback" not in lines[0]
    assert list(tmp_path.iterdir()) == []

    result = invoke("doctor", "--gpu", "--output", str(tmp_path / "out"))
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_cpu_needs_tiny_and_a_used_output_folder_is_refused(tmp_path):
    result = invoke("doctor", "--gpu", "--device", "cpu", "--output", str(tmp_path / "a"))
    assert result.exit_code == 2 and "needs --tiny" in result.output and not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    result = invoke("doctor", "--gpu", "--device", "cpu", "--tiny", "--output", str(tmp_path / "b"))
    assert result.exit_code == 1 and "is not empty" in result.output
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["keep.txt"]


def test_doctor_without_gpu_prints_the_environment():
    result = invoke("doctor")
    assert result.exit_code == 0
    env = json.loads(result.stdout)
    assert env["torch"] == torch.__version__ and {"cudnn", "onnxruntime", "tensorrt"} <= set(env)


class MakeResult:
    """What the tests read of a finished `make device-check` run (as click's Result: exit code and output)."""

    def __init__(self, done: subprocess.CompletedProcess) -> None:
        self.exit_code, self.output, self.stdout = done.returncode, done.stdout + done.stderr, done.stdout


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory) -> tuple[Path, dict, object]:
    """`make device-check` as CI runs it: this Python (no venv made, no network), on CPU at tiny sizes."""
    out = tmp_path_factory.mktemp("gpu-check") / "out"
    args = f"DEVICE_CHECK_ARGS=--device cpu --tiny --output {out}"
    done = subprocess.run(["make", "--no-print-directory", "device-check", f"PYTHON={sys.executable}", args],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert (out / REPORT_JSON).is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return out, json.loads((out / REPORT_JSON).read_text()), MakeResult(done)


def test_tiny_run_passes_every_check_and_writes_both_reports(tiny_check):
    out, report, result = tiny_check
    assert result.exit_code == 0, result.output
    assert report["format"] == "sepgzoo-gpu-report/1" and report["status"] == "passed" and report["failed"] == []
    assert list(report["checks"]) == CHECKS
    for name, entry in report["checks"].items():
        assert entry["status"] == "passed", (name, entry.get("reason"), entry.get("traceback"))
        assert entry["seconds"] > 0 and entry["title"] and entry["result"]["summary"]
    assert report["config"]["device"] == "cpu" and report["config"]["tiny"] is True
    env = report["environment"]
    assert {"torch", "torch_cuda", "cudnn", "cuda_available", "onnxruntime", "tensorrt"} <= set(env)
    assert "CPUExecutionProvider" in env["onnxruntime"]["providers"]
    assert not [p for p in out.rglob("*.tmp")]  # atomic writes leave no temporary files

    markdown = (out / REPORT_MD).read_text()
    assert markdown.startswith("# sepgzoo GPU self-check: PASSED")
    for name in CHECKS:
        assert f"| {name} | passed |" in markdown
    assert markdown in result.stdout  # the summary is also printed
    assert "export / tensorrt** skipped" in markdown
    parts = report["checks"]["bench_infer"]["result"]["parts"]
    assert parts["torch"]["status"] == "passed" and parts["torch"]["device"] == "CPU"  # PyTorch inference always runs
    assert report["required_not_passed"] == []
    assert any(item.startswith("bench_infer / tensorrt: ") for item in report["not_checked"])  # named, not passed
    assert "## Not checked" in markdown


def test_tiny_run_numbers(tiny_check):
    out, report, _ = tiny_check
    checks = {name: entry["result"] for name, entry in report["checks"].items()}
    train = checks["train_step"]
    assert train["model"] == "test_sepg" and train["images_per_s"] > 0 and train["peak_memory_mib"] > 0
    assert train["step_ms"] > 0 and train["steps"] == 2 and train["amp"] is False  # AMP only on CUDA

    resume = checks["resume"]  # started on CPU for epoch 1, continued at epoch 2
    assert resume["cpu_epochs"] == 1 and resume["resumed_at_epoch"] == 2 and resume["final_epoch"] == 2
    assert resume["log_epochs"] == [1, 2] and all(math.isfinite(x) for x in resume["loss_per_epoch"])
    state = torch.load(out / "run" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["recipe"]["train"]["epochs"] == 2

    evaluation = checks["evaluate"]
    assert evaluation["protocol"] == "sysu_all_single" and 0 <= evaluation["R1"] <= 100
    assert 0 < evaluation["mAP"] <= 100

    export = checks["export"]["parts"]
    assert export["onnx"]["status"] == "passed"
    assert set(export["onnx"]["parity"]) == {"visible/fp32", "visible/fp16", "infrared/fp32", "infrared/fp16"}
    assert all(p["passed"] and p["min_cosine"] >= p["threshold"] for p in export["onnx"]["parity"].values())
    assert export["tensorrt"]["status"] == "skipped" and "TensorRT" in export["tensorrt"]["reason"]
    assert (out / "run" / "export" / "visible_fp16.onnx").is_file()

    bench = checks["bench_infer"]["parts"]
    assert bench["onnxruntime"]["status"] == "passed" and "CPUExecutionProvider" in bench["onnxruntime"]["backend"]
    assert set(bench["onnxruntime"]["images_per_s"]) == {"1", "2"}
    assert all(v > 0 for v in bench["onnxruntime"]["images_per_s"].values())
    assert bench["tensorrt"]["status"] == "skipped" and "TensorRT" in bench["tensorrt"]["reason"]


def test_a_failing_check_is_reported_the_others_still_run_and_the_status_is_1(tmp_path):
    ran = []

    def ok(cfg):
        ran.append("ok")
        return {"value": 1.5, "summary": "fine"}

    def boom(cfg):
        ran.append("boom")
        raise RuntimeError("the GPU caught fire")

    def not_here(cfg):
        raise CheckSkipped("TensorRT not installed")

    checks = [Check("first", lambda cfg: "works", ok), Check("broken", lambda cfg: "raises", boom),
              Check("dependent", lambda cfg: "needs broken", ok, needs=("broken",)),
              Check("skipper", lambda cfg: "cannot run here", not_here), Check("last", lambda cfg: "works", ok)]
    lines = []
    status, report = run_checks(CheckConfig.tiny_config(tmp_path / "out"), checks, echo=lines.append)
    assert status == 1 and ran == ["ok", "boom", "ok"]
    entries = report["checks"]
    assert {name: e["status"] for name, e in entries.items()} == {
        "first": "passed", "broken": "failed", "dependent": "skipped", "skipper": "skipped", "last": "passed"}
    assert entries["broken"]["reason"] == "RuntimeError: the GPU caught fire"
    assert "Traceback" in entries["broken"]["traceback"]
    assert "needs broken" in entries["dependent"]["reason"] and entries["skipper"]["reason"] == "TensorRT not installed"
    assert entries["first"]["result"] == {"value": 1.5, "summary": "fine"}
    assert report["status"] == "failed" and report["failed"] == ["broken"]
    assert json.loads((tmp_path / "out" / REPORT_JSON).read_text()) == report
    markdown = (tmp_path / "out" / REPORT_MD).read_text()
    assert markdown.startswith("# sepgzoo GPU self-check: FAILED")
    assert all(f"| {name} |" in markdown for name in entries) and "the GPU caught fire" in markdown
    assert any("broken: failed" in line for line in lines)


@pytest.mark.gpu
def test_tiny_run_on_cuda_resumes_with_amp_on_the_gpu(tmp_path):
    """The CUDA branches at tiny sizes (about a minute on a GPU): AMP steps, CPU -> GPU resume, GPU evaluation."""
    out = tmp_path / "out"
    result = invoke("doctor", "--gpu", "--tiny", "--output", str(out))
    report = json.loads((out / REPORT_JSON).read_text())
    checks = report["checks"]
    assert result.exit_code == 0, {name: entry.get("reason") for name, entry in checks.items()}
    assert report["environment"]["gpus"] and checks["train_step"]["result"]["amp"] is True
    assert checks["train_step"]["result"]["peak_memory_kind"] == "CUDA allocated"
    resume = checks["resume"]["result"]
    assert resume["amp"] is True and resume["log_epochs"] == [1, 2] and "CPU" not in resume["resumed_hardware"]
    assert all(entry["status"] in ("passed", "skipped") for entry in checks.values())


def test_a_check_past_its_time_limit_fails_and_the_others_still_run(tmp_path):
    import time

    cfg = CheckConfig.tiny_config(tmp_path / "out")
    cfg = CheckConfig(**{**cfg.__dict__, "time_limit_s": 0.5})
    slow = Check("slow", lambda c: "sleeps", lambda c: time.sleep(5) or {"summary": "never"})
    quick = Check("quick", lambda c: "returns", lambda c: {"summary": "ok"})
    status, report = run_checks(cfg, [slow, quick], echo=lambda line: None)
    assert status == 1 and report["checks"]["slow"]["status"] == "failed"
    assert "did not finish within its time limit of 0.5 s" in report["checks"]["slow"]["reason"]
    assert report["checks"]["quick"]["status"] == "passed" and report["checks"]["slow"]["seconds"] < 2


def test_required_checks_that_were_only_skipped_fail_the_self_check(tmp_path):
    def no_gpu(cfg):
        raise CheckSkipped("no CUDA device")

    cfg = CheckConfig.tiny_config(tmp_path / "out")
    checks = [Check("train_step", lambda c: "training", no_gpu), Check("bench_infer", lambda c: "inference", no_gpu)]
    status, report = run_checks(cfg, checks, echo=lambda line: None)
    assert status == 1 and report["status"] == "failed" and report["failed"] == []
    assert report["required_not_passed"] == ["train_step", "bench_infer"]
    assert report["not_checked"] == ["train_step: no CUDA device", "bench_infer: no CUDA device"]


def test_recipes_and_weights_resolve_from_the_source_tree_when_not_installed(monkeypatch):
    import importlib.resources

    from sepgzoo.config import recipe_dir
    from sepgzoo.hub.zoo import weights_dir

    def not_installed(package):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(importlib.resources, "files", not_installed)
    assert recipe_dir() == ROOT / "recipes" and (recipe_dir() / "sysu.yaml").is_file()
    assert weights_dir() == ROOT / "weights" and (weights_dir() / "manifest.json").is_file()
