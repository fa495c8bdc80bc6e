"""The one callback that sends a task's pictures (``task.figures(stage)``) to where they are read.

Each picture is written as a PNG under ``<log_dir>/images/`` (works with any logger, or none)
and sent to W&B (``log_image``) or TensorBoard (``add_image``) when one of those loggers is
active. The task decides what to draw; this callback only delivers, after validation (each
picture file named with the step) and after test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image


@dataclass
class AnnotatedImage:
    """A picture plus W&B overlays: ``image`` (tensor [C, H, W] in [0, 1]) is what the PNG file and
    TensorBoard show; W&B gets ``overlay_image`` (default ``image``) with ``overlays``, the extra
    ``wandb.Image`` arguments (``boxes=…``, ``masks=…``) that make them interactive."""

    image: torch.Tensor
    overlays: dict[str, Any] = field(default_factory=dict)
    overlay_image: torch.Tensor | None = None


class FigureLogger(Callback):
    """After validation and test, write and log what ``pl_module.figures(stage)`` returns (rank 0)."""

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._deliver(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._deliver(trainer, pl_module, "test")

    def _deliver(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        out_dir = Path(trainer.log_dir or trainer.default_root_dir) / "images"  # a collective call under DDP
        if not trainer.is_global_zero or not hasattr(pl_module, "figures"):
            return
        pictures = pl_module.figures(stage)
        if not pictures:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        for key, picture in pictures.items():
            name = key.replace("/", "_") + (f"_step{trainer.global_step:07d}" if stage == "val" else "")
            annotated = picture if isinstance(picture, AnnotatedImage) else None
            path = write_png(annotated.image if annotated else picture, out_dir / f"{name}.png")
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger) and annotated is not None:
                    shown = annotated.image if annotated.overlay_image is None else annotated.overlay_image
                    extra = {k: [v] for k, v in annotated.overlays.items()}
                    logger.log_image(key=key, images=[_hwc_uint8(shown)], **extra)
                elif isinstance(logger, WandbLogger):
                    logger.log_image(key=key, images=[str(path)])
                elif isinstance(logger, TensorBoardLogger):
                    rgb = np.asarray(Image.open(path).convert("RGB"))
                    logger.experiment.add_image(key, rgb, global_step=trainer.global_step, dataformats="HWC")


def _hwc_uint8(picture: torch.Tensor) -> np.ndarray:
    """An image tensor [C, H, W] in [0, 1] as the uint8 HWC (HW for one channel) array PIL and W&B read."""
    pixels = (picture.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    if pixels.ndim == 3:
        pixels = pixels.permute(1, 2, 0)
        if pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
    return pixels.numpy()


def write_png(picture: Any, path: Path) -> Path:
    """Save a matplotlib Figure, or an image tensor [C, H, W] / [H, W] with values in [0, 1], as PNG."""
    if isinstance(picture, torch.Tensor):
        Image.fromarray(_hwc_uint8(picture)).save(path)
    else:
        picture.savefig(path, dpi=100, bbox_inches="tight")
    return path
