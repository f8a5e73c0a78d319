"""INT8 graphs by explicit quantization (Q/DQ), made with ONNX Runtime's static quantization (`quantize_static`).

Why ONNX Runtime's tool rather than NVIDIA ModelOpt: it ships with `onnxruntime`, already a dependency; it runs on
any CPU without CUDA (so a model can be quantized where it is exported); and it writes standard
QuantizeLinear/DequantizeLinear pairs, which TensorRT's explicit quantization builds from (its only INT8 route since
10.1) and ONNX Runtime runs with its integer kernels.

Two flavours, because the two runtimes are fast on different ones (measured on a 2-core AVX-512 VNNI CPU,
`sepg_resnet50` infrared graph, batch 8; docs/deployment.md):

- `int8`: int8 activations and int8 weights, both symmetric (zero points 0), what TensorRT requires; the engines
  of `export --int8 --trt` are built from it;
- `int8-cpu`: uint8 activations (asymmetric) and int8 weights, ONNX Runtime's fast x86 path.

Weights are quantized per output channel. Only the convolutions are quantized: SEG's DFT MatMuls, the part
pooling, the heads and the final normalisation stay in float. Scales come from MinMax calibration on images of
the recipe's training split, each modality's graph on its own modality's images (fixed seed, recorded).
"""

from pathlib import Path
from typing import Any

import numpy as np

from sepgzoo.modality import Modality, as_modality

QUANTIZED_OPS = ("Conv",)
CALIBRATION_BATCH = 8


def flavours() -> dict[str, dict[str, Any]]:
    """Flavour name -> `quantize_static` keyword arguments (imported lazily: quantization loads big modules)."""
    from onnxruntime.quantization import QuantType

    return {
        "int8": {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8,
                 "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True}},
        "int8-cpu": {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8,
                     "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True}},
    }


FLAVOURS = ("int8", "int8-cpu")


def int8_filename(modality: str | Modality, flavour: str) -> str:
    return f"{as_modality(modality).value}_{flavour.replace('-', '_')}.onnx"


def quantize_graph(fp32_graph: str | Path, output: str | Path, images: np.ndarray, flavour: str) -> None:
    """Write the Q/DQ graph of `fp32_graph` calibrated on `images` (uint8 [N, H, W, 3] of the graph's modality)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter({"images": images[i:i + CALIBRATION_BATCH]}
                                for i in range(0, len(images), CALIBRATION_BATCH))

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(fp32_graph), str(output), Images(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax, **flavours()[flavour])


def quantization_record(images: dict[str, int], seed: int) -> dict[str, Any]:
    """What export.json records about how the INT8 graphs were made."""
    import onnxruntime

    return {"library": f"onnxruntime {onnxruntime.__version__} quantize_static", "format": "QDQ",
            "quantized_ops": list(QUANTIZED_OPS), "per_channel_weights": True, "calibration": "MinMax",
            "calibration_images": images, "calibration_split": "the recipe's training split", "seed": seed,
            "flavours": {"int8": "int8 activations and weights, symmetric (TensorRT explicit quantization)",
                         "int8-cpu": "uint8 activations, int8 symmetric weights (ONNX Runtime x86)"}}


def int8_parity(fp32_graph: Path, int8_graph: Path, images: np.ndarray) -> dict[str, Any]:
    """The INT8 graph against the fp32 graph on the same images (ONNX Runtime CPU), as a parity record."""
    from sepgzoo.deploy.contract import PARITY_COSINE, cosine_rows
    from sepgzoo.deploy.ort_runtime import run_on_cpu

    threshold = PARITY_COSINE["int8"]
    cosine = float(cosine_rows(run_on_cpu(fp32_graph, images), run_on_cpu(int8_graph, images)).min())
    return {"reference": "onnxruntime-cpu fp32 graph", "min_cosine": {str(len(images)): cosine},
            "threshold": threshold, "passed": cosine >= threshold}


def add_int8(export_dir: str | Path, calibration: dict[str, np.ndarray], seed: int,
             check=None) -> dict[str, Any]:
    """Add both INT8 flavours of both modalities to an export, calibrated on `calibration` (modality -> uint8
    images), and record them in export.json; the export is replaced only once everything, `check` included, passed.

    Args:
        check: `check(staged_export_dir) -> dict` run on the complete staged export (the accuracy gate); it raises
            to refuse, and what it returns is recorded as `int8_gate` in export.json.
    """
    from sepgzoo.deploy.contract import parity_images
    from sepgzoo.deploy.derived import add_graph, new_file, staged_export, write_record

    quantization = quantization_record({m: len(images) for m, images in calibration.items()}, seed)
    with staged_export(export_dir) as (staging, record):
        images = parity_images(8, tuple(record["input_size"]))
        for modality, pixels in calibration.items():
            fp32 = staging / record["files"][modality]["fp32"]
            for flavour in FLAVOURS:
                name = int8_filename(modality, flavour)
                quantize_graph(fp32, new_file(staging, name), pixels, flavour)
                add_graph(staging, record, modality, flavour, name, int8_parity(fp32, staging / name, images),
                          quantization=quantization)
        record["quantization"] = quantization
        write_record(staging, record)
        if check is not None:
            record["int8_gate"] = check(staging)
            write_record(staging, record)
    return record
