"""Checks that bind: an engine or graph that failed (or never had) its parity check is never left where a runtime
loads it, and the runtimes refuse one whose record does not say it passed.

TensorRT cannot run here: the builder and the engine parity check are faked; the staging, publishing and refusal
code under test is the real one, and the refusals are asserted to happen before TensorRT is touched.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from deploy_helpers import exported

import sepgzoo.deploy.onnx_export as export_module
import sepgzoo.deploy.tensorrt_build as trt_build
import sepgzoo.deploy.tensorrt_runtime as trt_runtime
from sepgzoo.deploy.contract import EXPORT_JSON, FORMAT, parity_batches, parity_images
from sepgzoo.deploy.ort_runtime import OnnxEmbedder, OnnxGraph
from sepgzoo.deploy.runtime import open_model
from sepgzoo.deploy.tensorrt_build import EngineBuildError, build_engines
from sepgzoo.deploy.tensorrt_platform import ENGINE_FORMAT, EngineNotVerified, sidecar_path, verified_sidecar
from sepgzoo.deploy.tensorrt_runtime import TensorRTEmbedder
from sepgzoo.errors import UserError
from sepgzoo.utils.hashing import sha256_file

PLATFORM = {"tensorrt_version": "10.3.0", "gpu_name": "Fake GPU", "compute_capability": "8.7"}
PASSED = {"threshold": 0.9999, "min_cosine": {"1": 0.99999, "4": 0.99998}, "passed": True}
FAILED = {"threshold": 0.9999, "min_cosine": {"1": 0.99999, "4": 0.912345}, "passed": False}


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return exported(tmp_path_factory.getbasetemp())


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under a folder (hidden ones included) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------------------
# TensorRT: build in staging, publish only what passed
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def trt_export(tmp_path):
    """An export directory as `build_engines` reads it (the fake builder never opens the graphs)."""
    record = {"format": FORMAT, "max_batch": 4, "input_size": [64, 32],
              "files": {"visible": {"fp32": "visible.onnx"}, "infrared": {"fp32": "infrared.onnx"}}}
    (tmp_path / EXPORT_JSON).write_text(json.dumps(record))
    return tmp_path


@pytest.fixture
def fake_builder(monkeypatch):
    """TensorRT 'present'; build_engine writes made-up engine bytes; engine_parity returns `results[modality]`."""
    results = {"visible": PASSED, "infrared": PASSED}

    def build_engine(onnx_path, engine_path, modality, *args, **kwargs):
        Path(engine_path).write_bytes(f"new {modality.value} engine".encode())
        return {"format": ENGINE_FORMAT, "modality": modality.value, **PLATFORM,
                "engine_sha256": sha256_file(engine_path)}

    def engine_parity(engine_path, onnx_path, max_batch, threshold):
        assert trt_build.STAGING_PREFIX in str(engine_path)  # the check runs on the staged engine, not in place
        return dict(results[Path(onnx_path).stem])

    monkeypatch.setattr(trt_build, "tensorrt_missing", lambda: None)
    monkeypatch.setattr(trt_build, "build_engine", build_engine)
    monkeypatch.setattr(trt_build, "engine_parity", engine_parity)
    return results


def _good_engines(export_dir: Path) -> None:
    """Engines of an earlier successful build, with their verified sidecars."""
    for modality in ("visible", "infrared"):
        engine = export_dir / f"{modality}.plan"
        engine.write_bytes(f"earlier {modality} engine".encode())
        sidecar_path(engine).write_text(json.dumps({"format": ENGINE_FORMAT, "modality": modality, **PLATFORM,
                                                    "parity": PASSED, "engine_sha256": sha256_file(engine)}))


def test_failed_engine_is_not_kept_and_earlier_engines_are_untouched(trt_export, fake_builder):
    _good_engines(trt_export)
    before = snapshot(trt_export)
    fake_builder["infrared"] = FAILED  # visible passes, infrared fails: nothing of this build is published
    with pytest.raises(EngineBuildError) as failure:
        build_engines(trt_export)
    message = str(failure.value)
    assert str(trt_export / "infrared.plan") in message and "0.912345" in message and "0.9999" in message
    assert "earlier infrared.plan there is untouched" in message
    assert snapshot(trt_export) == before  # byte-identical, and no staging folder left behind
    assert verified_sidecar(trt_export / "visible.plan")["parity"]["passed"]


def test_failed_engine_leaves_nothing_in_a_fresh_export(trt_export, fake_builder):
    fake_builder["visible"] = FAILED
    with pytest.raises(EngineBuildError, match=r"visible\.plan failed its parity check.*0\.912345 < threshold 0\.9999"):
        build_engines(trt_export)
    assert sorted(p.name for p in trt_export.iterdir()) == [EXPORT_JSON]
    assert "tensorrt" not in json.loads((trt_export / EXPORT_JSON).read_text())


def test_passed_engines_are_published_with_their_check(trt_export, fake_builder):
    _good_engines(trt_export)
    engines = build_engines(trt_export)
    assert sorted(p.name for p in trt_export.iterdir()) == sorted(
        [EXPORT_JSON, "visible.plan", "visible.plan.json", "infrared.plan", "infrared.plan.json"])
    for modality in ("visible", "infrared"):
        engine = trt_export / f"{modality}.plan"
        assert engine.read_bytes() == f"new {modality} engine".encode()
        sidecar = verified_sidecar(engine)  # what the runtime accepts
        assert sidecar["format"] == ENGINE_FORMAT and sidecar["parity"] == PASSED
        assert sidecar["engine_sha256"] == sha256_file(engine)
        assert engines[modality]["engine"] == engine.name
    assert json.loads((trt_export / EXPORT_JSON).read_text())["tensorrt"]["fp32"] == engines


# ---------------------------------------------------------------------------------------------------------------
# TensorRT: the runtime refuses an engine without a passed check, before TensorRT is touched
# ---------------------------------------------------------------------------------------------------------------
def test_engine_parity_embeds_the_shared_parity_images(export_dir, monkeypatch):
    """The TensorRT check runs the images the ONNX check runs (`parity_images`), at the same batches; an engine that
    returns another image's embedding fails it. The engine is ONNX Runtime standing in for TensorRT."""
    seen = []

    class StandIn(OnnxGraph):
        def __init__(self, path, modality, shift=0):
            super().__init__(export_dir / "visible.onnx", providers="cpu")
            self.shift = shift

        def embed(self, images):
            seen.append(images)
            return np.roll(super().embed(images), self.shift, axis=0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(trt_build, "TensorRTEngine", StandIn)
    record = trt_build.engine_parity("visible.plan", export_dir / "visible.onnx", 4, 0.9999)
    assert record["passed"] and record["batches"] == parity_batches(4) == [1, 3, 4]
    expected = parity_images(4, (64, 32))
    assert [len(images) for images in seen] == [1, 3, 4] and all(np.array_equal(i, expected[:len(i)]) for i in seen)
    monkeypatch.setattr(trt_build, "TensorRTEngine", lambda path, modality: StandIn(path, modality, shift=1))
    mixed_up = trt_build.engine_parity("visible.plan", export_dir / "visible.onnx", 4, 0.9999)
    assert not mixed_up["passed"] and min(mixed_up["min_cosine"].values()) < 0.99


@pytest.fixture
def tensorrt_must_not_be_touched(monkeypatch):
    def touched():
        raise AssertionError("TensorRT was touched before the sidecar was checked")

    monkeypatch.setattr(trt_runtime, "current_platform", touched)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # importing it fails (not with a UserError)


def _engine_with(tmp_path, sidecar: dict | None) -> Path:
    engine = tmp_path / "visible.plan"
    engine.write_bytes(b"an engine")
    if sidecar is not None:
        record = {"format": ENGINE_FORMAT, "modality": "visible", **PLATFORM, "engine_sha256": sha256_file(engine),
                  **sidecar}
        sidecar_path(engine).write_text(json.dumps({k: v for k, v in record.items() if v is not None}))
    return engine


@pytest.mark.parametrize("sidecar, expected", [
    (None, r"has no sidecar .* recording a passed parity check"),
    ({"parity": None}, r"records no parity check; expected parity.passed = true"),
    ({"parity": FAILED}, r"records a failed parity check \(min cosine 0\.912345, threshold 0\.9999\)"),
    ({"parity": PASSED, "engine_sha256": "0" * 64}, r"is not the engine its sidecar .* checked"),
])
def test_runtime_refuses_an_engine_without_a_passed_check(tmp_path, tensorrt_must_not_be_touched, sidecar, expected):
    engine = _engine_with(tmp_path, sidecar)
    with pytest.raises(EngineNotVerified, match=expected) as refused:
        TensorRTEmbedder(engine)
    message = str(refused.value)
    assert str(engine) in message and str(sidecar_path(engine)) in message and "sepgzoo export --trt" in message


def test_runtime_refuses_an_older_sidecar_format(tmp_path, tensorrt_must_not_be_touched):
    engine = _engine_with(tmp_path, {"parity": PASSED, "format": "sepgzoo-trt-engine/2"})
    with pytest.raises(UserError, match=r"format 'sepgzoo-trt-engine/2', expected 'sepgzoo-trt-engine/3'") as refused:
        TensorRTEmbedder(engine)
    assert str(engine) in str(refused.value) and "sepgzoo export --trt" in str(refused.value)


def test_open_model_refuses_a_failed_engine_of_an_export(trt_export, tensorrt_must_not_be_touched):
    _engine_with(trt_export, {"parity": FAILED})
    with pytest.raises(EngineNotVerified, match="records a failed parity check"):
        open_model(trt_export, "visible", backend="tensorrt")


# ---------------------------------------------------------------------------------------------------------------
# ONNX: a graph that failed parity is never left in the export folder; the runtime refuses unchecked graphs
# ---------------------------------------------------------------------------------------------------------------
def test_failed_graph_leaves_the_earlier_export_untouched(export_dir, tmp_path, monkeypatch):
    """The infrared graph fails parity after the visible one passed: the earlier export is byte-identical and no
    staging folder is left (the exporter is replaced by the already exported graphs: no re-trace)."""
    from sepgzoo.modality import Modality

    output = Path(shutil.copytree(export_dir, tmp_path / "export"))
    before = snapshot(output)
    protos = {m: onnx.load(str(export_dir / f"{m.value}.onnx")) for m in Modality}
    monkeypatch.setattr(export_module, "_trace", lambda graph, opset: protos[graph.modality])
    real_reference = export_module.torch_reference

    def reference(model, images, modality):  # right for visible, unrelated for infrared
        if export_module.as_modality(modality) is Modality.INFRARED:
            return np.random.default_rng(0).normal(size=(len(images), 384))
        return real_reference(model, images, modality)

    monkeypatch.setattr(export_module, "torch_reference", reference)
    with pytest.raises(export_module.ExportError, match="parity check failed for infrared"):
        export_module.export_checkpoint(export_dir.parent / "run", output, max_batch=2)
    assert snapshot(output) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def _with_metadata(source: Path, target: Path, **changes) -> Path:
    """A copy of an exported graph with `sepgzoo.<key>` metadata entries changed (None: removed)."""
    proto = onnx.load(str(source))
    kept = [(e.key, e.value) for e in proto.metadata_props if e.key.removeprefix("sepgzoo.") not in changes]
    del proto.metadata_props[:]
    for key, value in kept + [(f"sepgzoo.{k}", json.dumps(v)) for k, v in changes.items() if v is not None]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(proto, str(target))
    return target


@pytest.mark.parametrize("parity, expected", [(None, "no parity check"),
                                              (FAILED, r"a failed parity check \(min cosine 0\.912345")])
def test_graph_without_a_passed_check_is_refused(export_dir, tmp_path, parity, expected):
    graph = _with_metadata(export_dir / "visible.onnx", tmp_path / "visible.onnx", parity=parity)
    with pytest.raises(UserError, match=expected) as refused:
        open_model(graph)
    assert str(graph) in str(refused.value) and "sepgzoo.parity" in str(refused.value)
    with pytest.raises(UserError, match=expected):
        OnnxEmbedder(graph)
    assert OnnxGraph(graph).embed(np.zeros((1, 64, 32, 3), np.uint8)).shape == (1, 384)  # bench's unchecked runner


def _export_copy(export_dir: Path, tmp_path: Path, edit) -> Path:
    copy = Path(shutil.copytree(export_dir, tmp_path / "export"))
    record = json.loads((copy / EXPORT_JSON).read_text())
    edit(record)
    (copy / EXPORT_JSON).write_text(json.dumps(record))
    return copy


def test_export_json_without_a_passed_check_for_the_graph_is_refused(export_dir, tmp_path):
    def fail_visible_fp32(record):
        record["parity"]["visible"]["fp32"]["passed"] = False
        del record["parity"]["infrared"]["fp16"]

    copy = _export_copy(export_dir, tmp_path, fail_visible_fp32)
    with pytest.raises(UserError, match=r"records a failed parity check .*\(parity\.visible\.fp32\)") as refused:
        open_model(copy, "visible")
    assert str(copy / "visible.onnx") in str(refused.value) and str(copy / EXPORT_JSON) in str(refused.value)
    with pytest.raises(UserError, match=r"records no parity check for it \(parity\.infrared\.fp16\)"):
        open_model(copy, "infrared", fp16=True)
    assert open_model(copy, "infrared").modality.value == "infrared"  # the record is per graph


def test_graph_replaced_after_its_check_is_refused(export_dir, tmp_path):
    copy = _export_copy(export_dir, tmp_path, lambda record: None)
    _with_metadata(export_dir / "visible.onnx", copy / "visible.onnx", note="replaced")  # its own record still passes
    with pytest.raises(UserError, match=r"is not the graph .*export\.json checked \(its sha256\.visible\.onnx"):
        open_model(copy, "visible")
    assert open_model(copy / "visible.onnx").modality.value == "visible"
