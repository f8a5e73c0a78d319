"""Writes that fail (a full or read-only disk, an output that is a file, an existing folder): one clear line, and
what was there before stays intact and loadable."""

import errno
import hashlib
import shutil
import tempfile

import pytest
import torch
from click.testing import CliRunner
from deploy_helpers import exported, tiny_checkpoint

from sepgzoo.cli import main
from sepgzoo.deploy.contract import read_export_json
from sepgzoo.deploy.runtime import open_model
from sepgzoo.errors import UserError
from sepgzoo.hub.checkpoint import load_model, save_model
from sepgzoo.hub.factory import create_model


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import safetensors.torch

    first = create_model("test_sepg", num_classes=3).eval()
    save_model(tmp_path, first)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(UserError, match=r"cannot write .*model.safetensors: No space left on device \(the previous "
                                        r"file is intact\)"):
        save_model(tmp_path, create_model("test_sepg", num_classes=3))
    monkeypatch.undo()
    loaded, _ = load_model(tmp_path)
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, "visible"), first(x, "visible"), rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_read_only_folder_is_one_line_naming_the_file(tmp_path, monkeypatch):
    from sepgzoo.utils.atomic import write_text

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(UserError, match=r"cannot write .*notes.txt: Read-only file system \(nothing was written\)"):
        write_text(tmp_path / "notes.txt", "x")


def test_an_output_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "taken"
    target.write_text("mine")
    for command in (["train", "--recipe", "synthetic", "--output", str(target)],
                    ["export", "--checkpoint", str(tiny_checkpoint(tmp_path)), "--output", str(target)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code != 0 and "is a file" in result.output and "Traceback" not in result.output
        assert target.read_text() == "mine"


def test_an_export_never_replaces_a_folder_that_is_not_an_export(tmp_path):
    run = tiny_checkpoint(tmp_path)
    before = _digest(run)
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(run), "--output", str(run)])
    assert result.exit_code != 0 and "holds no export.json" in result.output and _digest(run) == before


def test_a_failed_export_leaves_the_previous_export_intact_and_loadable(tmp_path_factory, tmp_path, monkeypatch):
    import sepgzoo.deploy.onnx_export as export_module

    previous = shutil.copytree(exported(tmp_path_factory.getbasetemp()), tmp_path / "export")
    before = _digest(previous)
    real, calls = export_module.to_onnx, []

    def fails_on_the_second_graph(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise export_module.ExportError("parity check failed (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(export_module, "to_onnx", fails_on_the_second_graph)
    checkpoint = tiny_checkpoint(tmp_path_factory.getbasetemp())
    with pytest.raises(UserError, match="simulated"):
        export_module.export_checkpoint(checkpoint, previous)
    assert _digest(previous) == before and read_export_json(previous)["files"]
    assert open_model(previous, "infrared").embed_paths([]).shape[0] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no staging folder left behind
    monkeypatch.undo()
    record = export_module.export_checkpoint(checkpoint, previous)  # a complete export replaces the old one
    assert sorted(p.name for p in previous.iterdir()) == sorted([*record["sha256"], "export.json"])
