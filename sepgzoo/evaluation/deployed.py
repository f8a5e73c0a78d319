"""`sepgzoo eval --model EXPORT_DIR`: the deployed artifacts evaluated with the recipe's protocol.

The features come from the deployment runtime itself (`sepgzoo.deploy.runtime.open_model`: ONNX Runtime on the
CPU or CUDA, or the TensorRT engines), reading images through the same preprocessing contract a deployment uses,
so the numbers are the ones a deployment gets. This is how every exported precision is gated.
"""

from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.config import recipe_from_dict
from sepgzoo.deploy.contract import EXPORT_JSON, read_export_json
from sepgzoo.errors import UserError
from sepgzoo.evaluation.scoring import FeatureCache, evaluate_features
from sepgzoo.version import __version__

#: `--device` of `eval --model` -> (runtime backend, ONNX Runtime providers)
DEVICES = {"cpu": ("onnxruntime", "cpu"), "cuda": ("onnxruntime", "cuda"), "tensorrt": ("tensorrt", "cpu")}
PRECISIONS = ("fp32", "fp16", "int8", "int8-cpu")


def check_precision(precision: str) -> None:
    """A precision an export can hold: PRECISIONS, or a projected graph `dim<K>` (`export --dim K`)."""
    from sepgzoo.deploy.projection import is_projection_name

    if precision not in PRECISIONS and not is_projection_name(precision):
        raise UserError(f"--precision {precision!r}: expected one of {list(PRECISIONS)} or dim<K> (a projected "
                        "graph of `export --dim K`)")


def open_deployed(export_dir: str | Path, precision: str = "fp32", device: str = "cpu") -> dict[str, Any]:
    """Both modalities of an export as a deployment opens them (`open_model`: only what passed its checks)."""
    from sepgzoo.deploy.runtime import open_model

    if device not in DEVICES:
        raise UserError(f"--device {device!r} for an export: expected one of {list(DEVICES)}")
    backend, providers = DEVICES[device]
    return {modality: open_model(export_dir, modality, backend=backend, providers=providers, precision=precision)
            for modality in ("visible", "infrared")}


def evaluate_export(export_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), precision: str = "fp32",
                    device: str = "cpu", plots: str | Path | None = None) -> dict[str, Any]:
    """Evaluate an export directory with the recipe it records (plus `--set` overrides); writes nothing.

    Raises:
        UserError: the export records no recipe, or the recipe asks for flip TTA (a deployed graph has none).
    """
    export_dir = Path(export_dir)
    record = read_export_json(export_dir)
    if "recipe" not in record:
        raise UserError(f"{export_dir / EXPORT_JSON} records no recipe; export a run folder written by "
                        "`sepgzoo train` to evaluate it with its protocol")
    check_precision(precision)
    recipe = recipe_from_dict(record["recipe"], overrides)
    if recipe.eval.flip:
        raise UserError("eval.flip = true: a deployed graph embeds each image once (no flip TTA); evaluate the "
                        "export with eval.flip=false, or the checkpoint with flip")
    models = open_deployed(export_dir, precision, device)
    batch = recipe.eval.batch_size
    embed = lambda samples, modality: models[modality].embed_paths([s.path for s in samples], batch)  # noqa: E731
    results = evaluate_features(FeatureCache(embed), recipe, plots)
    files = {modality: record["files"][modality][precision] for modality in ("visible", "infrared")}
    return {"model": record.get("model"), "epoch": None, "selection": "deployed artifact",
            "dataset": recipe.data.dataset, "flip_tta": False, "weights_sha256": record.get("weights_sha256"),
            "artifact": {"export": str(export_dir), "precision": precision, "device": device,
                         "runtime": {modality: model.provider for modality, model in models.items()}, "files": files,
                         "sha256": {m: record.get("sha256", {}).get(name) for m, name in files.items()}},
            "overrides": list(overrides), "results": results, "versions": {"sepgzoo": __version__}}


#: an INT8 or projected graph may lose at most this many points of Rank-1 or mAP against the fp32 graph, on any setting
INT8_TOLERANCE_POINTS = 1.0
GATED_METRICS = {"rank1": "R1", "mAP": "mAP"}  # `summarise` key -> what the message calls it


def gate_precisions(export_dir: str | Path, precisions: tuple[str, ...], overrides: list[str] | tuple[str, ...] = (),
                    device: str = "cpu", tolerance: float = INT8_TOLERANCE_POINTS) -> dict[str, Any]:
    """Evaluate the fp32 graphs and each of `precisions` with the recipe's protocol; refuse (UserError naming
    both numbers) any precision more than `tolerance` points below fp32 in Rank-1 or mAP on any setting.

    Returns the table that export.json records: percent metrics per precision and setting.
    """
    from sepgzoo.evaluation.report import summarise

    scores = {p: summarise(evaluate_export(export_dir, overrides, p, device)["results"]) for p in ("fp32", *precisions)}
    failures = [f"{precision} {setting} {label} {scores[precision][setting][metric]:.2f} against fp32 "
                f"{reference[metric]:.2f}"
                for precision in precisions for setting, reference in scores["fp32"].items()
                for metric, label in GATED_METRICS.items()
                if reference[metric] - scores[precision][setting][metric] > tolerance]
    if failures:
        raise UserError(f"accuracy gate: more than {tolerance:g} point(s) below fp32: {'; '.join(failures)}; "
                        "the export is left as it was (calibrate or fit on more images with --calib-images)")
    return {"tolerance_points": tolerance, "device": device, "metrics_percent": scores}


def calibration_images(recipe, input_size: tuple[int, int], count: int, seed: int) -> dict[str, np.ndarray]:
    """Up to `count` images of each modality drawn (fixed seed) from the recipe's training split, as uint8 pixels
    read through the preprocessing contract."""
    from sepgzoo.data.sources import open_dataset
    from sepgzoo.preprocess import load_inputs

    train = list(open_dataset(recipe.data).train)
    rng = np.random.default_rng(seed)
    chosen = {}
    for modality in ("visible", "infrared"):
        paths = sorted(s.path for s in train if s.modality == modality)
        picked = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
        chosen[modality] = load_inputs([paths[i] for i in sorted(picked)], input_size)
    return chosen


def export_int8(export_dir: str | Path, count: int = 256, seed: int = 0, overrides: list[str] | tuple[str, ...] = (),
                device: str = "cpu") -> dict[str, Any]:
    """`export --int8`: both INT8 flavours of both graphs, calibrated on the training split, kept only when
    `gate_precisions` passes on the staged export; returns the new export.json record."""
    from sepgzoo.deploy.quantize import FLAVOURS, add_int8

    recipe, record = _recipe_of(export_dir, overrides, "INT8 calibrates on the recipe's training split")
    calibration = calibration_images(recipe, tuple(record["input_size"]), count, seed)
    return add_int8(export_dir, calibration, seed,
                    check=lambda staged: gate_precisions(staged, FLAVOURS, overrides, device))


def export_projection(export_dir: str | Path, dim: int, count: int = 256, seed: int = 0,
                      overrides: list[str] | tuple[str, ...] = (), device: str = "cpu") -> dict[str, Any]:
    """`export --dim K`: a PCA projection to K dimensions folded into both graphs, fitted on the training split and
    kept only when `gate_precisions` passes on the staged export; returns the new export.json record."""
    from sepgzoo.deploy.projection import add_projection, projection_name

    recipe, record = _recipe_of(export_dir, overrides, "--dim fits its projection on the recipe's training split")
    fitting = calibration_images(recipe, tuple(record["input_size"]), count, seed)
    return add_projection(export_dir, fitting, dim, seed,
                          check=lambda staged: gate_precisions(staged, (projection_name(dim),), overrides, device))


def _recipe_of(export_dir: str | Path, overrides, why: str):
    """(the export's recipe with `overrides`, its export.json record); UserError when it records none."""
    record = read_export_json(export_dir)
    if "recipe" not in record:
        raise UserError(f"{Path(export_dir) / EXPORT_JSON} records no recipe: {why} and gates on its test split")
    return recipe_from_dict(record["recipe"], overrides), record
