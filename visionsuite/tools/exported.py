"""Predict with an exported model (``visionsuite export``) without Lightning or the task code.

``visionsuite predict-exported model.onnx IMAGES_DIR [--output predictions.csv]`` decodes the
folder's images as ``predict`` does (same decoder, size and channels, from ``model.onnx.json``),
runs the file (onnxruntime for ``.onnx``, TorchScript for ``.pt``) and writes the same CSV. For
a segmentation export, ``--output`` is a folder and gets what ``predict`` writes: per image a
palette PNG mask at the image's original size.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from visionsuite.core.atomic import atomic_path
from visionsuite.core.tool_parser import ToolParser
from visionsuite.errors import ConfigError
from visionsuite.runs.folders import tool_output_dir


def predict_folder(model_path: Path, folder: Path, output: Path, *, batch_size: int = 64, classes: list[str] | None = None) -> Path:
    """Write ``file,predicted_class,probability`` for every readable image of ``folder``."""
    from visionsuite.data.images import decode_images, list_image_files, skipped_message
    from visionsuite.outputs.predictions_csv import write_predictions
    from visionsuite.tools.export import run_exported

    if batch_size < 1:
        raise ConfigError(f"--batch_size {batch_size}: use 1 or more")
    meta = read_sidecar(model_path)
    if classes is not None and len(classes) != len(meta["classes"]):
        raise ConfigError(f"--classes: {len(classes)} name(s) given, the export predicts {len(meta['classes'])} classes")
    files = list_image_files(folder) if folder.is_dir() else []
    if not files:
        raise ConfigError(f"{folder}: no image files")
    if meta.get("task") == "segmentation":
        return predict_masks(model_path, meta, folder, files, output)
    images, failed = decode_images(files, meta["channels"], tuple(meta["image_size"]))
    if len(failed) == len(files):  # nothing to predict: refuse, so an existing output is not replaced by a header
        raise ConfigError(f"{folder}: none of its {len(files)} image file(s) is readable (nothing was written)")
    if failed:
        print("visionsuite: warning: " + skipped_message([str(files[i]) for i in failed], str(folder)), file=sys.stderr)
    paths = [str(f) for i, f in enumerate(files) if i not in set(failed)]
    x = images.numpy().astype(np.float32) / 255.0
    rows = []
    for start in range(0, len(x), batch_size):
        logits = run_exported(model_path, x[start : start + batch_size]).astype(np.float64)
        if logits.ndim != 2 or logits.shape[1] != len(meta["classes"]):
            raise ConfigError(
                f"{model_path}: the model outputs shape {list(logits.shape)}, its {model_path.name}.json lists"
                f" {len(meta['classes'])} classes"
            )
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        for i, p in enumerate(probs):
            rows.append((paths[start + i], int(p.argmax()), float(p.max())))
    written = write_predictions(output, rows, classes or meta["classes"])
    print(f"Predictions written to {written}")
    return written


def read_sidecar(model_path: Path) -> dict:
    """``<export>.json`` (written by ``visionsuite export``), checked: a missing, unreadable or
    incomplete one is one line naming it, before any output is touched."""
    meta_path = model_path.with_name(model_path.name + ".json")
    if not model_path.is_file() or not meta_path.is_file():
        raise ConfigError(f"{model_path}: needs the exported file and its {meta_path.name} (written by visionsuite export)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{meta_path}: not JSON ({err})") from None
    size = meta.get("image_size") if isinstance(meta, dict) else None
    problems = []
    if not isinstance(meta, dict) or meta.get("task") not in ("classification", "segmentation"):
        problems.append("task must be classification or segmentation")
    else:
        classes = meta.get("classes")
        if not isinstance(classes, list) or not classes:
            problems.append("classes must be a non-empty list")
        if meta.get("channels") not in (1, 3):
            problems.append("channels must be 1 or 3")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            problems.append("image_size must be [height, width] in pixels")
        if meta.get("task") == "segmentation" and not isinstance(meta.get("palette"), list):
            problems.append("a segmentation export needs its palette")
    if problems:
        raise ConfigError(f"{meta_path}: {'; '.join(problems)} (re-export with visionsuite export)")
    return meta


def predict_masks(model_path: Path, meta: dict, folder: Path, files: list[Path], output: Path) -> Path:
    """Per image: fit it as the data module did, run the export, map the logits back to the
    image's size, and write ``<output>/<name>.png`` (palette PNG, values = class indices)."""
    import torch

    from visionsuite.data.geometry import fit_sample, plan, restore
    from visionsuite.data.images import load_image
    from visionsuite.data.palette import palette_image
    from visionsuite.tools.export import run_exported

    size, mode = tuple(meta["image_size"]), meta.get("resize_mode", "letterbox")
    written, unreadable = 0, []
    for f in files:  # streamed: a folder of photographs is not held in memory
        try:
            image = torch.from_numpy(load_image(f, meta["channels"], None))
        except (OSError, ValueError):
            unreadable.append(str(f))
            continue
        fitted = fit_sample(image, size, mode).image[None].float() / 255
        logits = torch.from_numpy(run_exported(model_path, fitted.numpy()))
        if logits.ndim != 4 or logits.shape[1] != len(meta["classes"]):
            raise ConfigError(
                f"{model_path}: the model outputs shape {list(logits.shape)}, not the [1, {len(meta['classes'])}, H, W]"
                f" class maps its {model_path.name}.json describes (a segmentation export of {len(meta['classes'])} classes)"
            )
        _, placement = plan(tuple(image.shape[-2:]), size, mode)
        mask = restore(logits, placement)[0].argmax(0).numpy()
        target = output / f.relative_to(folder).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            palette_image(mask, meta["palette"]).save(tmp)
        written += 1
    if not written:  # every file unreadable: nothing was written, and saying "0 masks" with exit 0 would hide it
        raise ConfigError(f"{folder}: none of its {len(files)} image file(s) is readable (nothing was written)")
    if unreadable:
        from visionsuite.data.images import skipped_message

        print("visionsuite: warning: " + skipped_message(unreadable, str(folder)), file=sys.stderr)
    print(f"{written} mask(s) written to {output}")
    return output


def main(args: list[str]) -> int:
    parser = ToolParser(prog="visionsuite predict-exported", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an exported .onnx or TorchScript .pt file")
    parser.add_argument("images", type=Path, help="a folder of images")
    parser.add_argument("--output", type=Path, default=None,
                        help="predictions CSV (classification) or a folder of masks (segmentation); default:"
                        " predictions.csv or predictions/ in a new <stamp>-predictions folder beside the model")
    parser.add_argument("--classes", nargs="+", default=None, help="class names (default: the export's JSON)")
    parser.add_argument("--batch_size", type=int, default=64)
    opts = parser.parse_args(args)
    output = opts.output
    if output is None:
        segmentation = read_sidecar(opts.model)["task"] == "segmentation"
        folder = tool_output_dir(opts.model, "predictions")
        output = folder / ("predictions" if segmentation else "predictions.csv")
    predict_folder(opts.model, opts.images, output, batch_size=opts.batch_size, classes=opts.classes)
    return 0
