"""`sepgzoo eval --model EXPORT_DIR`: the deployed artifacts evaluated with the recipe's protocol.

The features come from the deployment runtime itself (`sepgzoo.deploy.runtime.open_model`: ONNX Runtime on the
CPU or CUDA, or the TensorRT engines), reading images through the same preprocessing contract a deployment uses,
so the numbers are the ones a deployment gets. This is how every exported precision is gated.
"""

from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.config import recipe_from_dict
from sepgzoo.data.datasets import Sample
from sepgzoo.deploy.contract import EXPORT_JSON, read_export_json
from sepgzoo.errors import UserError
from sepgzoo.evaluation.evaluate import evaluate_features
from sepgzoo.version import __version__

#: `--device` of `eval --model` -> (runtime backend, ONNX Runtime providers)
DEVICES = {"cpu": ("onnxruntime", "cpu"), "cuda": ("onnxruntime", "cuda"), "tensorrt": ("tensorrt", "cpu")}
PRECISIONS = ("fp32", "fp16", "int8")


class DeployedFeatures:
    """`(samples, modality) -> embeddings` from an export's graphs or engines; each (modality, image) once."""

    def __init__(self, export_dir: str | Path, precision: str = "fp32", device: str = "cpu",
                 batch_size: int = 64) -> None:
        from sepgzoo.deploy.runtime import open_model

        if device not in DEVICES:
            raise UserError(f"--device {device!r} for an export: expected one of {list(DEVICES)}")
        backend, providers = DEVICES[device]
        self.batch_size = batch_size
        self.rows: dict[tuple[str, str], np.ndarray] = {}
        if precision == "int8":
            raise UserError("--precision int8: this export has no INT8 graphs (export with --int8)")
        self.models = {modality: open_model(export_dir, modality, backend=backend, providers=providers,
                                            fp16=precision == "fp16")
                       for modality in ("visible", "infrared")}

    def __call__(self, samples: list[Sample], modality: str) -> np.ndarray:
        missing = list(dict.fromkeys(s.path for s in samples if (modality, s.path) not in self.rows))
        if missing:
            embedded = self.models[modality].embed_paths(missing, self.batch_size)
            self.rows.update({(modality, path): row for path, row in zip(missing, embedded)})
        dim = self.models[modality].embedding_dim
        rows = [self.rows[(modality, s.path)] for s in samples]
        return np.stack(rows) if rows else np.zeros((0, dim), np.float32)

    @property
    def providers(self) -> dict[str, str]:
        """Where each modality really ran (a CUDA request that fell back to the CPU says so)."""
        return {modality: model.provider for modality, model in self.models.items()}


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
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: expected one of {list(PRECISIONS)}")
    recipe = recipe_from_dict(record["recipe"], overrides)
    if recipe.eval.flip:
        raise UserError("eval.flip = true: a deployed graph embeds each image once (no flip TTA); evaluate the "
                        "export with eval.flip=false, or the checkpoint with flip")
    features = DeployedFeatures(export_dir, precision, device, recipe.eval.batch_size)
    results = evaluate_features(features, recipe, plots)
    files = {modality: record["files"][modality][precision] for modality in ("visible", "infrared")}
    return {"model": record.get("model"), "epoch": None, "selection": "deployed artifact",
            "dataset": recipe.data.dataset, "flip_tta": False, "weights_sha256": record.get("weights_sha256"),
            "artifact": {"export": str(export_dir), "precision": precision, "device": device,
                         "runtime": features.providers, "files": files,
                         "sha256": {m: record.get("sha256", {}).get(name) for m, name in files.items()}},
            "overrides": list(overrides), "results": results, "versions": {"sepgzoo": __version__}}
