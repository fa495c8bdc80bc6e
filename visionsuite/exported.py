"""Predict with an exported model (``visionsuite export``) without Lightning or the task code.

``visionsuite predict-exported model.onnx IMAGES_DIR [--output predictions.csv]`` decodes the
folder's images as ``predict`` does (same decoder, size and channels, from ``model.onnx.json``),
runs the file (onnxruntime for ``.onnx``, TorchScript for ``.pt``) and writes the same CSV.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from visionsuite.errors import ConfigError


def predict_folder(model_path: Path, folder: Path, output: Path, *, batch_size: int = 64, classes: list[str] | None = None) -> Path:
    """Write ``file,predicted_class,probability`` for every readable image of ``folder``."""
    from visionsuite.data.images import decode_images, list_image_files, skipped_message
    from visionsuite.export import run_exported
    from visionsuite.predictions_csv import write_predictions

    meta_path = model_path.with_name(model_path.name + ".json")
    if not model_path.is_file() or not meta_path.is_file():
        raise ConfigError(f"{model_path}: needs the exported file and its {meta_path.name} (written by visionsuite export)")
    meta = json.loads(meta_path.read_text())
    files = list_image_files(folder) if folder.is_dir() else []
    if not files:
        raise ConfigError(f"{folder}: no image files")
    images, failed = decode_images(files, meta["channels"], tuple(meta["image_size"]))
    if failed:
        print("visionsuite: warning: " + skipped_message([str(files[i]) for i in failed], str(folder)))
    paths = [str(f) for i, f in enumerate(files) if i not in set(failed)]
    x = images.numpy().astype(np.float32) / 255.0
    rows = []
    for start in range(0, len(x), batch_size):
        logits = run_exported(model_path, x[start : start + batch_size]).astype(np.float64)
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        for i, p in enumerate(probs):
            rows.append((paths[start + i], int(p.argmax()), float(p.max())))
    written = write_predictions(output, rows, classes or meta["classes"])
    print(f"Predictions written to {written}")
    return written


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="visionsuite predict-exported", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an exported .onnx or TorchScript .pt file")
    parser.add_argument("images", type=Path, help="a folder of images")
    parser.add_argument("--output", type=Path, default=Path("predictions.csv"))
    parser.add_argument("--classes", nargs="+", default=None, help="class names (default: the export's JSON)")
    parser.add_argument("--batch_size", type=int, default=64)
    opts = parser.parse_args(args)
    predict_folder(opts.model, opts.images, opts.output, batch_size=opts.batch_size, classes=opts.classes)
    return 0
