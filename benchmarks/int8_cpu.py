"""INT8 speed on ONNX Runtime CPU: `sepg_resnet50` (random weights) at 288 x 144, batch 8, both modalities, fp32
against the two INT8 flavours side by side in one process (median of 5 runs after 1 warm-up).

Calibration uses 64 random images: this measures speed only; accuracy is gated by `sepgzoo eval --model` on real
data. Run from the repository root: `python benchmarks/int8_cpu.py [OUT]`; results in benchmarks/results/int8-cpu/.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from sepgzoo.deploy.onnx_export import export_checkpoint
from sepgzoo.deploy.quantize import FLAVOURS, int8_filename, quantize_graph
from sepgzoo.hub.checkpoint import save_model
from sepgzoo.hub.factory import create_model

BATCH, RUNS = 8, 5


def median_batch_seconds(session: ort.InferenceSession, images: np.ndarray) -> tuple[float, np.ndarray]:
    session.run(None, {"images": images})
    times, out = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        out = session.run(None, {"images": images})[0]
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(out: Path) -> None:
    torch.manual_seed(0)
    save_model(out / "run", create_model("sepg_resnet50", num_classes=10, pretrained=False),
               recipe={"model": {"name": "sepg_resnet50"}})
    export_checkpoint(out / "run", out / "export", max_batch=BATCH)
    rng = np.random.default_rng(0)
    calibration = rng.integers(0, 256, (64, 288, 144, 3), dtype=np.uint8)
    images = rng.integers(0, 256, (BATCH, 288, 144, 3), dtype=np.uint8)
    rows = {}
    for modality in ("visible", "infrared"):
        graphs = {"fp32": out / "export" / f"{modality}.onnx"}
        for flavour in FLAVOURS:
            graphs[flavour] = out / int8_filename(modality, flavour)
            quantize_graph(graphs["fp32"], graphs[flavour], calibration, flavour)
        reference = None
        for name, path in graphs.items():
            seconds, embeddings = median_batch_seconds(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]),
                                                       images)
            reference = embeddings if reference is None else reference
            rows[f"{modality} {name}"] = {"batch8_s": round(seconds, 3), "images_per_s": round(BATCH / seconds, 1),
                                          "cos_min_vs_fp32": float((embeddings * reference).sum(1).min())}
            print(modality, name, rows[f"{modality} {name}"], flush=True)
    (out / "rows.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/sepgzoo-int8-cpu"))
