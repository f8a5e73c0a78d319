"""ONNX export of the tiny model: files, graph contract (no DFT, opset, signature), metadata, parity, fp16 islands."""


import numpy as np
import onnx
import pytest
import torch
from deploy_helpers import MAX_BATCH, exported
from onnx import TensorProto, helper

from sepgzoo.deploy.contract import decode_metadata, read_export_json
from sepgzoo.deploy.onnx_export import (
    EmbeddingGraph,
    ExportError,
    check_parity,
    graph_problems,
    to_onnx,
    torch_reference,
)

H, W, D = 64, 32, 384  # test_sepg: 64 x 32 input, 6 parts x 64
FILES = ["visible.onnx", "infrared.onnx", "visible_fp16.onnx", "infrared_fp16.onnx"]


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return exported(tmp_path_factory.getbasetemp())


def test_export_writes_one_self_contained_file_per_modality(export_dir):
    assert sorted(p.name for p in export_dir.iterdir()) == sorted([*FILES, "export.json"])  # no .data files
    for name in FILES:
        proto = onnx.load(str(export_dir / name), load_external_data=False)
        assert not any(i.data_location == TensorProto.EXTERNAL for i in proto.graph.initializer)


@pytest.mark.parametrize("name", FILES)
def test_graph_contract(export_dir, name):
    proto = onnx.load(str(export_dir / name))
    assert graph_problems(proto, (H, W), D, opset=18) == []
    ops = {node.op_type for node in proto.graph.node}
    assert "DFT" not in ops and "Range" not in ops
    assert {o.domain for o in proto.opset_import} <= {"", "ai.onnx"}
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", H, W, 3]
    # SEG is inside the visible graph only (its DFT matrices are H x H and W x W constants).
    seg_matrices = [i for i in proto.graph.initializer if list(i.dims) in ([H, H], [W, W])]
    assert bool(seg_matrices) == name.startswith("visible")


def test_export_json_and_metadata(export_dir):
    record = read_export_json(export_dir)
    assert record["model"] == "test_sepg" and record["recipe"] == {"model": {"name": "test_sepg"}}
    assert record["input_size"] == [H, W] and record["embedding_dim"] == D and record["opset"] == 18
    assert record["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert record["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert {"torch", "onnx", "onnxruntime", "timm", "sepgzoo"} <= set(record["versions"])
    assert record["files"] == {"visible": {"fp32": "visible.onnx", "fp16": "visible_fp16.onnx"},
                               "infrared": {"fp32": "infrared.onnx", "fp16": "infrared_fp16.onnx"}}
    for modality in ("visible", "infrared"):
        for precision, threshold in (("fp32", 0.9999), ("fp16", 0.999)):
            parity = record["parity"][modality][precision]
            assert parity["passed"] and parity["batches"] == [1, 3, MAX_BATCH] and parity["threshold"] == threshold
            assert min(parity["min_cosine"].values()) >= threshold
            assert parity["batch_invariance_min_cosine"] >= threshold
    proto = onnx.load(str(export_dir / "infrared_fp16.onnx"), load_external_data=False)
    meta = decode_metadata((entry.key, entry.value) for entry in proto.metadata_props)
    assert meta["modality"] == "infrared" and meta["precision"] == "fp16" and meta["input_size"] == [H, W]
    assert meta["embedding_dim"] == D and meta["parity"] == record["parity"]["infrared"]["fp16"]
    assert meta["recipe"] == record["recipe"] and meta["input"]["layout"] == "NHWC"


def test_fp16_graph_keeps_seg_and_l2_in_fp32(export_dir):
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(export_dir / "visible_fp16.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in [*proto.graph.value_info, *proto.graph.output]}
    types.update({i.name: i.data_type for i in proto.graph.initializer})
    conv_weights = [types[n.input[1]] for n in proto.graph.node if n.op_type == "Conv"]
    assert conv_weights and set(conv_weights) == {TensorProto.FLOAT16}
    seg = [i for i in proto.graph.initializer if list(i.dims) in ([H, H], [W, W])]
    assert seg and {i.data_type for i in seg} == {TensorProto.FLOAT}
    (reduce_l2,) = [n for n in proto.graph.node if n.op_type == "ReduceL2"]
    assert types[reduce_l2.input[0]] == TensorProto.FLOAT


def test_embedding_graph_matches_model_on_uint8_input():
    from sepgzoo.hub.factory import create_model

    model = create_model("test_sepg").eval()  # fft SEG: the graph swaps in the MatMul form
    images = torch.randint(0, 256, (3, H, W, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = EmbeddingGraph(model, "visible")(images)
        half = EmbeddingGraph(model, "visible", fp16=True)
    expected = torch_reference(model, images.numpy(), "visible")
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-4)
    assert half.model.seg.dft_h_re.dtype == torch.float32 and model.seg.impl == "fft"  # the original is untouched


class _FakeSession:
    def __init__(self, fn):
        self.fn = fn

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def run(self, names, feeds):
        return [self.fn(feeds["images"])]


def test_parity_check_reports_failure():
    from sepgzoo.hub.factory import create_model

    model = create_model("test_sepg").eval()
    good = _FakeSession(lambda x: torch_reference(model, x, "infrared"))
    assert check_parity(good, model, "infrared", 4, 0.9999)["passed"]
    noise = np.random.default_rng(0)
    bad = _FakeSession(lambda x: torch_reference(model, x, "infrared") + noise.normal(0, 0.5, (len(x), D)))
    record = check_parity(bad, model, "infrared", 4, 0.9999)
    assert not record["passed"] and min(record["min_cosine"].values()) < 0.9999


def test_to_onnx_fails_loudly_and_writes_nothing(export_dir, tmp_path, monkeypatch):
    """Wrong opset and failed parity both raise ExportError before anything is written (no re-trace: the
    exporter is replaced by the already exported graph)."""
    import sepgzoo.deploy.onnx_export as export_module
    from sepgzoo.hub.checkpoint import load_model

    model, _ = load_model(export_dir.parent / "run", seg_impl="matmul")
    proto = onnx.load(str(export_dir / "infrared.onnx"))
    monkeypatch.setattr(export_module, "_trace", lambda graph, opset: proto)
    with pytest.raises(ExportError, match="opset 18, expected 17"):
        to_onnx(model, "infrared", tmp_path / "a.onnx", opset=17, max_batch=2)
    random_reference = lambda m, x, mod: np.random.default_rng(0).normal(size=(len(x), D))  # noqa: E731
    monkeypatch.setattr(export_module, "torch_reference", random_reference)
    with pytest.raises(ExportError, match="parity check failed"):
        to_onnx(model, "infrared", tmp_path / "b.onnx", max_batch=2)
    assert list(tmp_path.iterdir()) == []


def _graph(nodes, inputs, initializers=(), domain_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT,
                                                                                  ["batch", 8])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), *domain_opsets])


def test_graph_problems_flags_forbidden_constructs():
    images = helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", 4, 4, 3])
    nodes = [
        helper.make_node("DFT", ["a"], ["b"], name="dft"),
        helper.make_node("ATen", ["b"], ["c"], name="aten", domain="org.pytorch.aten"),
        helper.make_node("Range", ["s", "e", "d"], ["idx"], name="range"),
        helper.make_node("Gather", ["c", "idx"], ["embeddings"], name="gather"),
    ]
    model = _graph(nodes, [images], domain_opsets=[helper.make_opsetid("org.pytorch.aten", 1)])
    problems = "\n".join(graph_problems(model, (4, 4), 8, opset=18))
    for word in ("DFT", "org.pytorch.aten", "Range", "computed indices"):
        assert word in problems
    fixed = helper.make_tensor_value_info("images", TensorProto.FLOAT, [2, 4, 4, 3])
    problems = "\n".join(graph_problems(_graph([], [fixed]), (4, 4), 8, opset=17))
    assert "not uint8" in problems and "only the batch axis dynamic" in problems and "opset 18, expected 17" in problems


@pytest.mark.parametrize("modality", ["visible", "infrared"])
def test_fp16_graph_uses_each_modalitys_part_statistics(modality):
    """part_norm=modality: the exported graph normalises the parts with the statistics of its own modality."""
    from sepgzoo.hub.factory import create_model

    torch.manual_seed(0)
    model = create_model("test_sepg", part_norm="modality").eval()
    for head in model.part_heads:  # statistics that differ between the modalities
        head.bn.running_mean_infrared.normal_()
        head.bn.running_var_infrared.uniform_(0.5, 2.0)
    images = torch.randint(0, 256, (2, H, W, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        half = EmbeddingGraph(model, modality, fp16=True)(images).float().numpy()
    expected = torch_reference(model, images.numpy(), modality)
    other = torch_reference(model, images.numpy(), "infrared" if modality == "visible" else "visible")
    assert np.abs(half - expected).max() < 2e-2 < np.abs(expected - other).max()


def test_fp16_parity_is_also_checked_on_the_cuda_provider_when_it_runs(export_dir, monkeypatch):
    """ORT CPU upcasts fp16 kernels; a CUDA session is checked too, and a fallback to CPU is no CUDA check."""
    import onnxruntime as ort

    import sepgzoo.deploy.onnx_export as export_module
    from sepgzoo.hub.checkpoint import load_model

    model, _ = load_model(export_dir.parent / "run", seg_impl="matmul")
    graph = (export_dir / "infrared_fp16.onnx").read_bytes()
    record = export_module.parity_on_every_provider(graph, model, "infrared", 2, "fp16")
    assert record["passed"] and record["cuda"] == {"checked": False,
                                                   "reason": "no usable ONNX Runtime CUDA provider here"}

    real_session = ort.InferenceSession

    class FellBack:  # what onnxruntime-gpu does without a GPU: it prints and runs on CPU
        def __init__(self, graph, options, providers):
            print("EP Error ... Falling back to ['CPUExecutionProvider']")
            self.asked = providers
            self.inner = real_session(graph, options, providers=["CPUExecutionProvider"])

        def get_providers(self):
            return self.inner.get_providers()

        def run(self, names, feeds):
            return self.inner.run(names, feeds)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", FellBack)
    assert export_module.parity_session(graph, "CUDAExecutionProvider") is None

    class OnCuda(FellBack):  # a session that runs where it was asked to; on "CUDA" it can return wrong embeddings
        def get_providers(self):
            return list(self.asked)

        def run(self, names, feeds):
            out = self.inner.run(names, feeds)[0]
            return [out[:, ::-1].copy() if self.wrong and self.asked[0] == "CUDAExecutionProvider" else out]

    OnCuda.wrong = False
    monkeypatch.setattr(ort, "InferenceSession", OnCuda)
    record = export_module.parity_on_every_provider(graph, model, "infrared", 2, "fp16")
    assert record["cuda"]["runtime"] == "onnxruntime CUDAExecutionProvider" and record["cuda"]["passed"]
    OnCuda.wrong = True
    with pytest.raises(ExportError, match="on ONNX Runtime CUDA"):
        export_module.parity_on_every_provider(graph, model, "infrared", 2, "fp16")
