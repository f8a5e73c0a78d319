"""Embed images with an exported sepgzoo model, using only onnxruntime, numpy and pillow (no torch, no sepgzoo).

    python infer_onnx.py EXPORT_DIR --modality infrared a.jpg b.jpg [--provider CUDAExecutionProvider]

Prints one line per image (path and the first values of its embedding) and, for two or more images,
the cosine similarity matrix.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def load(path: str, height: int, width: int) -> np.ndarray:
    """uint8 RGB [H, W, 3] as `preprocess` in export.json says: RGB (grey x3), PIL bilinear to H x W, no crop."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", type=Path, help="directory written by `sepgzoo export` (has export.json)")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--modality", choices=["visible", "infrared"], required=True)
    parser.add_argument("--provider", default="CPUExecutionProvider", help="ONNX Runtime execution provider")
    args = parser.parse_args()

    info = json.loads((args.export_dir / "export.json").read_text())
    parity = info.get("parity", {}).get(args.modality, {}).get("fp32", {})
    if parity.get("passed") is not True:  # `sepgzoo export` writes only graphs that passed; refuse anything else
        raise SystemExit(f"{args.export_dir / 'export.json'} records no passed parity check for the {args.modality} "
                         f"graph (parity.{args.modality}.fp32.passed); export it again with `sepgzoo export`")
    height, width = info["input_size"]
    session = ort.InferenceSession(str(args.export_dir / info["files"][args.modality]["fp32"]),
                                   providers=[args.provider, "CPUExecutionProvider"])
    # onnxruntime-gpu falls back to CPU silently when CUDA libraries are missing: report what is really used.
    print(f"provider in use: {session.get_providers()[0]}")

    batch = np.stack([load(p, height, width) for p in args.images])  # uint8 [N, H, W, 3]; the graph does the rest
    max_batch = int(info["max_batch"])
    embeddings = np.concatenate([session.run(["embeddings"], {"images": batch[i : i + max_batch]})[0]
                                 for i in range(0, len(batch), max_batch)])
    for path, row in zip(args.images, embeddings):
        print(path, " ".join(f"{v:.4f}" for v in row[:6]), "...", f"(D={row.size})")
    if len(args.images) > 1:
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)  # parts are unit-norm, not the whole
        print("cosine similarity:\n", np.array2string(unit @ unit.T, precision=3))


if __name__ == "__main__":
    main()
