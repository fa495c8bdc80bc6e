"""Export a trained model to ONNX or TorchScript, and check it against PyTorch on real test images.

The exported graph takes float images in [0, 1] (N, C, H, W; any batch size) and returns the
task's logits: the data module's normalisation is baked in, so a caller outside Python's
training stack only decodes and scales pixels. A JSON file beside the export
(``<output>.json``) records the class names, channels and image size, which
:mod:`visionsuite.tools.exported` reads to predict without Lightning.
"""

from __future__ import annotations

import contextlib
import functools
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from visionsuite.core.atomic import atomic_path, write_text_atomic
from visionsuite.core.private_api import scripting
from visionsuite.core.tool_parser import ToolParser
from visionsuite.errors import VisionSuiteError
from visionsuite.runs.folders import tool_output_dir

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


class ExportError(VisionSuiteError):
    """The model cannot be exported (names the module that failed), or its export disagrees with PyTorch."""


class Deployable(nn.Module):
    """``task((x - mean) / std)``: what the exported file computes, from [0, 1] pixels to logits."""

    def __init__(self, task: nn.Module, normalisation: tuple[Sequence[float], Sequence[float]] | None) -> None:
        super().__init__()
        self.task = task
        mean, std = normalisation or ((0.0,), (1.0,))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        out = self.task((x - self.mean) / self.std)
        return out[0] if isinstance(out, (tuple, list)) else out


@contextlib.contextmanager
def _scripting(model: nn.Module) -> Iterator[None]:
    """Tell LightningModules inside ``model`` they are being scripted (their ``trainer`` property
    then returns ``None`` instead of raising when the tracer reads it), as ``to_torchscript`` does."""
    with scripting(model.modules()):
        yield


@contextlib.contextmanager
def _module_trail(model: nn.Module) -> Iterator[list[str]]:
    """The names of the modules being run, innermost last (what was running when tracing failed)."""
    stack: list[str] = []
    names = {id(m): f"{n or '<root>'} ({type(m).__name__})" for n, m in model.named_modules()}

    def enter(module: nn.Module, _: Any) -> None:
        stack.append(names.get(id(module), type(module).__name__))

    def leave(module: nn.Module, _: Any, __: Any) -> None:
        if stack:
            stack.pop()

    hooks = [m.register_forward_pre_hook(enter) for m in model.modules()]
    hooks += [m.register_forward_hook(leave) for m in model.modules()]
    try:
        yield stack  # an exception inside a forward leaves its module on top
    finally:
        for h in hooks:
            h.remove()


def export_model(model: nn.Module, example: Tensor, fmt: str, output: Path) -> Path:
    """Write ``model`` (eval mode) as ``fmt`` with a dynamic batch dimension; a module that cannot
    be traced raises :class:`ExportError` naming it."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    model.eval()
    output.parent.mkdir(parents=True, exist_ok=True)
    with _scripting(model), _module_trail(model) as trail, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter notices
        try:
            if fmt == "onnx":
                torch.onnx.export(
                    model, (example,), str(output), dynamo=False, opset_version=17,
                    input_names=["image"], output_names=["logits"],
                    dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                )  # fmt: skip
            else:
                with torch.no_grad():
                    traced = torch.jit.trace(model, example, check_trace=False)
                traced.save(str(output))
        except Exception as err:  # noqa: BLE001  (tracing raises many types)
            where = f"module {trail[-1]}" if trail else f"{type(model).__name__} (after tracing)"
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ExportError(f"cannot export to {fmt}: {where} failed: {first}") from None
    return output


def run_exported(path: Path, images: np.ndarray) -> np.ndarray:
    """Logits of an exported file (``.onnx`` under onnxruntime, else TorchScript) for float images."""
    try:
        runner = _load_exported(str(Path(path).resolve()), Path(path).stat().st_mtime_ns)
    except Exception as err:  # noqa: BLE001  (onnxruntime and TorchScript raise their own types for bad files)
        raise ExportError(f"{path}: not a loadable {'ONNX' if str(path).endswith('.onnx') else 'TorchScript'} model ({_first_line(err)})") from None
    try:
        return runner(images.astype(np.float32))
    except Exception as err:  # noqa: BLE001
        raise ExportError(
            f"{path}: running it on images of shape {list(images.shape[1:])} failed ({_first_line(err)});"
            f" does {Path(path).name}.json describe this export?"
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0][:200] if text else type(err).__name__)


@functools.lru_cache(maxsize=4)
def _load_exported(path: str, mtime_ns: int) -> Callable[[np.ndarray], np.ndarray]:
    """Load an exported file once per (path, mtime): callers run it batch by batch or image by
    image, and an onnxruntime session or a TorchScript load costs far more than one batch."""
    if path.endswith(".onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    module = torch.jit.load(path, map_location="cpu")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run


def check_export(model: nn.Module, path: Path, images: Tensor, *, atol: float = 1e-4, rtol: float = 1e-3,
                 label: str | None = None) -> float:  # fmt: skip
    """Max |exported − PyTorch| over ``images`` (float [0, 1]); raises :class:`ExportError` beyond tolerance."""
    with torch.no_grad():
        expected = model(images).numpy()
    got = run_exported(path, images.numpy())
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if got.shape != expected.shape or not np.allclose(got, expected, atol=atol, rtol=rtol):
        raise ExportError(f"{label or path}: exported outputs differ from PyTorch (max |diff| {diff:.3g}, shape {got.shape})")
    agree = float((got.argmax(1) == expected.argmax(1)).mean())
    print(f"Checked {label or path.name} on {len(images)} test images: max |diff| {diff:.2e}, same class for {agree:.1%}")
    return diff


def write_metadata(path: Path, class_names: Sequence[str], image_shape: Sequence[int], *,
                   segmentation: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """``<export>.json``: what the exported file needs to be used alone. A segmentation export
    also records its ``palette`` and ``resize_mode`` (masks go back to each image's own size)."""
    meta = path.with_name(path.name + ".json")
    info: dict[str, Any] = {"task": "segmentation" if segmentation else "classification", "classes": list(class_names),
                            "channels": int(image_shape[0]), "image_size": [int(image_shape[1]), int(image_shape[2])]}  # fmt: skip
    info.update(segmentation or {})
    write_text_atomic(meta, json.dumps(info, indent=2))
    return meta


def segmentation_info(trained: Any) -> dict[str, Any] | None:
    """Palette and resize mode of a trained segmentation task (``None`` for other tasks)."""
    if trained.task.target_key != "mask":
        return None
    dm = trained.datamodule
    palette = trained.task.hparams.get("palette") or getattr(dm, "palette", None) or trained.task.palette()
    return {"palette": [list(map(int, c)) for c in palette], "resize_mode": getattr(dm, "resize_mode", "letterbox")}


def main(args: list[str]) -> int:
    """``visionsuite export --run RUN [--ckpt best|last|PATH] --format onnx|torchscript`` (or ``--config C --ckpt_path …``)."""
    from visionsuite.data.augment import to_float
    from visionsuite.tools.source import add_source_arguments, load_source

    parser = ToolParser(prog="visionsuite export", description="export a trained model to ONNX or TorchScript")
    add_source_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--output", default=None,
                        help="the exported file (default: model.onnx / model.pt in a new <stamp>-export folder beside the run)")
    parser.add_argument("--check_images", type=int, default=64, help="real test images compared with PyTorch")
    opts = parser.parse_args(args)
    if opts.check_images < 1:
        raise ExportError(f"--check_images {opts.check_images}: an export is checked on at least 1 real test image")
    trained = load_source(opts)
    if getattr(trained.task, "target_key", None) not in ("label", "mask"):
        raise ExportError(
            f"export covers classification and segmentation runs; {trained.ckpt} is a {type(trained.task).__name__}"
            " (nothing was written)"
        )
    images = to_float(trained.test_batch(opts.check_images)["image"])
    model = Deployable(trained.task, trained.normalisation).eval()
    output = Path(opts.output) if opts.output else tool_output_dir(trained.ckpt, "export") / f"model{SUFFIX[opts.format]}"
    with atomic_path(output) as tmp:  # checked before it replaces anything (see visionsuite.core.atomic)
        export_model(model, images[:2], opts.format, tmp)
        check_export(model, tmp, images, label=output.name)
        write_metadata(output, trained.class_names, images.shape[1:], segmentation=segmentation_info(trained))
    print(f"Exported {trained.ckpt} to {output}")
    return 0
