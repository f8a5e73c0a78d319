"""`sepgzoo export --triton REPO`: every config.pbtxt parses with Triton's own schema and describes its graph."""

import json
import shutil
from pathlib import Path

import onnx
import pytest
from deploy_helpers import MAX_BATCH, exported
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from sepgzoo.deploy.triton import REPOSITORY_MARKER, write_triton_repository
from sepgzoo.errors import UserError


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return exported(tmp_path_factory.mktemp("triton"))


def test_one_onnx_model_per_modality_whose_config_matches_its_graph(export_dir, tmp_path):
    repo = tmp_path / "repo"
    assert write_triton_repository(export_dir, repo) == ["sepg_visible", "sepg_infrared"]
    record = json.loads((export_dir / "export.json").read_text())
    for modality in ("visible", "infrared"):
        folder = repo / f"sepg_{modality}"
        config = parse(folder / "config.pbtxt")
        graph_file = export_dir / record["files"][modality]["fp32"]
        assert (folder / "1" / "model.onnx").read_bytes() == graph_file.read_bytes()
        graph = onnx.load(str(graph_file)).graph
        (inp,), (out,) = config.input, config.output
        assert config.name == folder.name and config.platform == "onnxruntime_onnx"
        assert config.max_batch_size == MAX_BATCH == record["max_batch"]
        assert inp.name == graph.input[0].name == "images" and out.name == graph.output[0].name == "embeddings"
        assert inp.data_type == model_config_pb2.TYPE_UINT8 and out.data_type == model_config_pb2.TYPE_FP32
        assert list(inp.dims) == [*record["input_size"], 3] and list(out.dims) == [record["embedding_dim"]]
        assert list(config.dynamic_batching.preferred_batch_size) == [MAX_BATCH // 2, MAX_BATCH]
    assert (repo / REPOSITORY_MARKER).is_file()


def test_an_engine_without_a_passed_check_never_reaches_the_repository(export_dir, tmp_path):
    export = Path(shutil.copytree(export_dir, tmp_path / "export"))
    (export / "visible.plan").write_bytes(b"an engine built by hand")
    with pytest.raises(UserError, match="visible.plan"):
        write_triton_repository(export, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_only_an_earlier_repository_is_replaced(export_dir, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a model repository")
    with pytest.raises(UserError, match="is not a repository written by"):
        write_triton_repository(export_dir, tmp_path / "other")
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["notes.txt"]
    write_triton_repository(export_dir, tmp_path / "repo")
    write_triton_repository(export_dir, tmp_path / "repo", name="reid")  # an earlier repository: replaced whole
    assert {p.name for p in (tmp_path / "repo").iterdir()} == {REPOSITORY_MARKER, "reid_infrared", "reid_visible"}


def test_checked_engines_of_every_precision_become_plan_models(export_dir, tmp_path):
    from sepgzoo.deploy.tensorrt_platform import ENGINE_FORMAT, sidecar_path
    from sepgzoo.utils.hashing import sha256_file

    export = Path(shutil.copytree(export_dir, tmp_path / "export"))
    for name in ("visible.plan", "visible_int8.plan"):
        (export / name).write_bytes(f"checked {name}".encode())
        sidecar_path(export / name).write_text(json.dumps({
            "format": ENGINE_FORMAT, "parity": {"threshold": 0.95, "min_cosine": {"1": 0.99}, "passed": True},
            "engine_sha256": sha256_file(export / name)}))
    models = write_triton_repository(export, tmp_path / "repo")
    assert models == ["sepg_visible", "sepg_visible_trt", "sepg_visible_trt_int8", "sepg_infrared"]
    config = parse(tmp_path / "repo" / "sepg_visible_trt_int8" / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.name == "sepg_visible_trt_int8"
    plan = tmp_path / "repo" / "sepg_visible_trt_int8" / "1" / "model.plan"
    assert plan.read_bytes() == b"checked visible_int8.plan"
