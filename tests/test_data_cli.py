"""`sepgzoo data` commands through click's CliRunner on the main group (where user errors become one line)."""

from __future__ import annotations

import json

from click.testing import CliRunner

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
    rows = json.loads(run("check", "regdb", "--root", regdb_root, "--json").output.split("\nError")[0])
    assert any(r["quantity"] == "split 1: train_visible" and r["found"] == 20 for r in rows)


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
