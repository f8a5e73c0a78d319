"""`export --deepstream`: float NCHW graphs equal to the uint8 ones, nvinfer and tracker configs that parse and
name the files and tensors that exist."""

import configparser
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from deploy_helpers import exported

from sepgzoo.deploy.deepstream import DeepStreamExportError, write_deepstream


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    return exported(tmp_path_factory.mktemp("deepstream"))


@pytest.fixture(scope="module")
def written(export_dir) -> Path:
    record = json.loads((export_dir / "export.json").read_text())
    images = np.random.default_rng(0).integers(0, 256, (4, *record["input_size"], 3), dtype=np.uint8)
    return write_deepstream(export_dir, images)


def embed(path: Path, images) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]


def test_the_float_graphs_give_the_uint8_graphs_embeddings(export_dir, written):
    record = json.loads((export_dir / "export.json").read_text())
    height, width = record["input_size"]
    pixels = np.random.default_rng(7).integers(0, 256, (3, height, width, 3), dtype=np.uint8)  # not the check's
    for modality in ("visible", "infrared"):
        graph = onnx.load(str(written / f"{modality}.onnx")).graph
        (inp,) = graph.input
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_value for d in inp.type.tensor_type.shape.dim][1:] == [3, height, width]
        expected = embed(export_dir / f"{modality}.onnx", pixels)
        got = embed(written / f"{modality}.onnx", pixels.transpose(0, 3, 1, 2).astype(np.float32))
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_nvinfer_configs_name_existing_files_tensors_and_dims(export_dir, written):
    record = json.loads((export_dir / "export.json").read_text())
    for modality in ("visible", "infrared"):
        config = configparser.ConfigParser()
        config.read(written / f"{modality}_nvinfer.txt")
        prop = config["property"]
        graph = onnx.load(str(written / prop["onnx-file"])).graph
        assert prop["output-blob-names"] == graph.output[0].name
        assert prop["infer-dims"] == ";".join(str(d.dim_value) for d in graph.input[0].type.tensor_type.shape.dim[1:])
        assert (prop["network-type"], prop["output-tensor-meta"], prop["process-mode"]) == ("100", "1", "2")
        assert (float(prop["net-scale-factor"]), prop["offsets"], prop["model-color-format"]) == (1.0, "0;0;0", "0")
        assert int(prop["batch-size"]) == record["max_batch"]


def test_the_tracker_reid_sections_match_the_graph(written, export_dir):
    record = json.loads((export_dir / "export.json").read_text())
    for modality in ("visible", "infrared"):
        reid = yaml.safe_load((written / f"{modality}_tracker_reid.yml").read_text())["ReID"]
        assert (written / reid["onnxFile"]).is_file()
        assert reid["reidFeatureSize"] == record["embedding_dim"] == embed(
            written / reid["onnxFile"], np.zeros((1, *reid["inferDims"]), np.float32)).shape[1]
        assert reid["inferDims"] == [3, *record["input_size"]]
        assert reid["addFeatureNormalization"] == 0 and reid["netScaleFactor"] == 1.0


def test_a_graph_that_does_not_start_as_exported_is_refused_and_nothing_is_written(export_dir, written, tmp_path):
    import shutil

    export = Path(shutil.copytree(export_dir, tmp_path / "export"))  # with the deepstream/ folder written above
    before = {p.name: p.read_bytes() for p in (export / "deepstream").iterdir()}
    model = onnx.load(str(export / "infrared.onnx"))
    first = next(n for n in model.graph.node if n.op_type == "Transpose")
    first.attribute[0].ints[:] = [0, 1, 2, 3]
    onnx.save(model, str(export / "infrared.onnx"))
    with pytest.raises(DeepStreamExportError, match=r"expected Transpose\[0, 3, 1, 2\]"):
        write_deepstream(export, np.zeros((1, 64, 32, 3), np.uint8))
    assert {p.name: p.read_bytes() for p in (export / "deepstream").iterdir()} == before  # the earlier one stays
    assert sorted(p.name for p in export.iterdir() if p.name.startswith(".")) == []  # no staging folder left
