"""`sepgzoo data` commands through click's CliRunner on the main group (where user errors become one line)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import sepgzoo.data.sysu as sysu_module
from sepgzoo.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["data", *(str(a) for a in args)])


def test_stats_json_sysu(sysu_root):
    result = run("stats", "sysu", "--root", sysu_root, "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    for key in ("train_ids", "train_visible", "train_infrared", "query", "gallery", "valid_queries"):
        assert isinstance(stats[key], int)
    test_ids = [int(t) for t in (sysu_root / "exp" / "test_id.txt").read_text().strip().split(",")]
    folders = [sysu_root / f"cam{cam}" / f"{pid:04d}" for cam in (3, 6) for pid in test_ids]
    expected_query = sum(len(list(folder.glob("*.jpg"))) for folder in folders)
    assert stats["query"] == expected_query and stats["options"]["sampler"] == "agw"
    indoor = json.loads(run("stats", "sysu", "--root", sysu_root, "--mode", "indoor", "--json").output)
    assert indoor["gallery"] < stats["gallery"] and indoor["valid_queries"] <= indoor["query"]


def test_stats_table_regdb_default_direction(regdb_root):
    result = run("stats", "regdb", "--root", regdb_root)
    assert result.exit_code == 0 and "regdb_v2i" in result.output and "train_ids" in result.output
    i2v = json.loads(run("stats", "regdb", "--root", regdb_root, "--direction", "i2v", "--trial", 3, "--json").output)
    assert i2v["protocol"] == "regdb_i2v" and i2v["trial"] == 3 and i2v["query"] == 5 * 4


def test_check_reports_differences(sysu_root, regdb_root):
    result = run("check", "sysu", "--root", sysu_root)
    assert result.exit_code == 1
    assert "query: found" in result.output and "expected 3803" in result.output and "Traceback" not in result.output
    report = json.loads(run("check", "regdb", "--root", regdb_root, "--json").stdout)
    assert any(r["quantity"] == "split 1: train_visible" and r["found"] == 20 for r in report["counts"])
    assert report["decoded"] and report["images"] == 10 * (4 + 4) and report["unreadable"] == []


def test_user_errors_are_one_line(tmp_path):
    result = run("stats", "sysu", "--root", tmp_path / "missing")
    assert result.exit_code == 1 and "SYSU-MM01 root not found" in result.output and "Traceback" not in result.output
    result = run("stats", "sysu", "--root", tmp_path, "--direction", "v2i")
    assert result.exit_code == 1


def test_synth_command(tmp_path):
    result = run("synth", "--layout", "regdb", "--out", tmp_path / "r", "--ids", 6, "--images-per-camera", 2)
    assert result.exit_code == 0 and "wrote regdb layout" in result.output
    assert (tmp_path / "r" / "idx" / "test_thermal_10.txt").is_file()


def test_dataset_argument_is_a_registered_name(tmp_path, sysu_root):
    result = run("stats", "regbd", "--root", tmp_path)
    assert result.exit_code == 2 and "did you mean 'regdb'" in result.output and "registered: llcm" in result.output
    result = run("stats", "SYSU_MM01", "--root", sysu_root, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["dataset"] == "sysu"
    result = run("check", "synthetic", "--root", sysu_root)
    assert result.exit_code == 1 and "'synthetic' has no known counts" in result.output


# ---------------------------------------------------------------------------------------------------------------
# data check decodes every image
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def sysu_copy(sysu_root, tmp_path) -> Path:
    """A writable copy of the synthetic SYSU-MM01 tree."""
    return Path(shutil.copytree(sysu_root, tmp_path / "SYSU-MM01"))


@pytest.fixture
def counts_match(monkeypatch, sysu_root):
    """The official counts replaced by the synthetic tree's own, so that only decoding can fail the check."""
    found = {r["quantity"]: r["found"] for r in sysu_module.check_counts(sysu_root)}
    monkeypatch.setattr(sysu_module, "KNOWN_COUNTS", [(q, found[q], True) for q, _, _ in sysu_module.KNOWN_COUNTS])


def _image(root: Path, cam: int, nth: int = 0) -> Path:
    return sorted((root / f"cam{cam}").rglob("*.jpg"))[nth]


def test_check_names_a_truncated_jpeg_and_still_prints_the_counts(sysu_copy):
    broken = _image(sysu_copy, 1)
    broken.write_bytes(broken.read_bytes()[:200])
    result = run("check", "sysu", "--root", sysu_copy)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(r"^quantity +expected +found +status$", result.stdout, re.M) and "\nquery " in result.stdout
    assert re.search(rf"1 of 158 images cannot be decoded:\n  {re.escape(str(broken))}: .*truncated", result.stdout,
                     re.I)
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "counts differ from the official sysu release (" in error and "expected 3803" in error
    assert f"1 of 158 images cannot be decoded ({broken})" in error


def test_check_of_an_intact_copy_decodes_every_image_and_passes(sysu_root, counts_match):
    result = run("check", "sysu", "--root", sysu_root)
    assert result.exit_code == 0, result.output
    assert "decoded all 158 images" in result.stdout
    assert result.stdout.rstrip().endswith("all verified counts match the official sysu release and all 158 images "
                                           "decode")


def test_check_fast_skips_decoding_and_says_so(sysu_copy, counts_match):
    broken = _image(sysu_copy, 1)
    broken.write_bytes(broken.read_bytes()[:200])
    result = run("check", "sysu", "--root", sysu_copy, "--fast")
    assert result.exit_code == 0, result.output
    assert "images not decoded (--fast)" in result.stdout and str(broken) not in result.output
    report = json.loads(run("check", "sysu", "--root", sysu_copy, "--fast", "--json").stdout)
    assert report["decoded"] is False and report["images"] is None and report["unreadable"] is None


def test_check_json_lists_every_unreadable_file_and_the_error_the_first_three(sysu_copy, counts_match):
    truncated = _image(sysu_copy, 3)
    truncated.write_bytes(truncated.read_bytes()[:200])
    impostors = [_image(sysu_copy, cam) for cam in (1, 2, 6)]  # test and training images alike
    for path in impostors:
        path.write_text("this is not an image\n")
    result = run("check", "sysu", "--root", sysu_copy, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert all(r["status"] != "DIFFERS" for r in report["counts"]) and report["images"] == 158
    reasons = {Path(r["path"]): r["reason"] for r in report["unreadable"]}
    assert set(reasons) == {truncated, *impostors}
    assert "truncated" in reasons[truncated].lower()
    assert all("cannot identify image file" in reasons[path] for path in impostors)
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "counts differ" not in error and "4 of 158 images cannot be decoded (" in error and "and 1 more)" in error
    assert sum(str(path) in error for path in [truncated, *impostors]) == 3
