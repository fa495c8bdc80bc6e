"""The one callback that sends a task's pictures (``task.figures(stage)``) to where they are read.

Each picture is written as a PNG under ``<log_dir>/images/`` (works with any logger, or none)
and sent to W&B (``log_image``) or TensorBoard (``add_image``) when one of those loggers is
active. The task decides what to draw; this callback only delivers, after validation (each
picture file named with the step) and after test.

W&B gets the same figure as the PNG file, under the same key. A picture may also carry
interactive overlays – a :class:`MaskOverlay` (segmentation: ``predictions``/``ground_truth``
masks with class names, ``wandb.Image(..., masks=...)``, which W&B toggles per class) or an
:class:`AnnotatedImage` (detection boxes with a score slider) – sent beside it under
``<key>_interactive``.
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
from torch import Tensor

from visionsuite.core.atomic import atomic_path


#: the suffix of the W&B key that carries a picture's interactive masks or boxes.
INTERACTIVE = "_interactive"


@dataclass
class AnnotatedImage:
    """A picture plus W&B overlays: ``image`` (tensor [C, H, W] in [0, 1]) is what the PNG file,
    TensorBoard and W&B show; W&B also gets ``overlay_image`` (default ``image``) with ``overlays``,
    the extra ``wandb.Image`` arguments (``boxes=…``, ``masks=…``) that make them interactive."""

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
        deliver(trainer, pl_module.figures(stage), stage, out_dir)


def deliver(trainer: Trainer, pictures: dict[str, Any], stage: str, out_dir: Path) -> None:
    """Write each picture as ``<out_dir>/<key>[_step<N>].png`` and send it to the W&B/TensorBoard
    loggers (call on rank 0): the one delivery path of every picture a run makes."""
    if not pictures:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, picture in pictures.items():
        name = key.replace("/", "_") + (f"_step{trainer.global_step:07d}" if stage == "val" else "")
        annotated = picture if isinstance(picture, AnnotatedImage) else None
        path = write_png(annotated.image if annotated else picture, out_dir / f"{name}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[str(path)])  # the figure the PNG and TensorBoard show
                if isinstance(picture, MaskOverlay):  # and the same images with masks W&B toggles per class
                    images = [(im.permute(1, 2, 0).clamp(0, 1) * 255).byte().cpu().numpy() for im in picture.images]
                    logger.log_image(key=f"{key}{INTERACTIVE}", images=images, masks=picture.wandb_masks())
                elif annotated is not None and annotated.overlays:
                    shown = annotated.image if annotated.overlay_image is None else annotated.overlay_image
                    extra = {k: [v] for k, v in annotated.overlays.items()}
                    logger.log_image(key=f"{key}{INTERACTIVE}", images=[_hwc_uint8(shown)], **extra)
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
    """Save a matplotlib Figure, a :class:`MaskOverlay`, or an image tensor [C, H, W] / [H, W] with
    values in [0, 1], as PNG."""
    if isinstance(picture, MaskOverlay):
        picture = picture.figure()
    with atomic_path(path) as tmp:
        if isinstance(picture, torch.Tensor):
            Image.fromarray(_hwc_uint8(picture)).save(tmp)
        else:
            picture.savefig(tmp, dpi=100, bbox_inches="tight")
    return path


@dataclass
class MaskOverlay:
    """Images with their predicted (and true) class masks, and how to colour and name the classes.

    ``images`` float [N, 3, H, W] in [0, 1]; ``preds``/``targets`` int [N, H, W] (``targets`` may
    be ``None``); ``palette`` one RGB per class; pixels equal to ``ignore_index`` stay uncoloured.
    """

    images: Tensor
    preds: Tensor
    targets: Tensor | None
    class_names: list[str]
    palette: list[list[int]]
    ignore_index: int | None = None
    alpha: float = 0.5
    gap: int = field(default=2, repr=False)

    def colourise(self, masks: Tensor) -> tuple[Tensor, Tensor]:
        """RGB in [0, 1] [N, 3, H, W] of ``masks`` and where a class is drawn (bool [N, 1, H, W])."""
        lut = torch.zeros(256, 3)
        lut[: len(self.palette)] = torch.tensor(self.palette, dtype=torch.float32) / 255
        m = masks.long().cpu().clamp(0, 255)
        drawn = m < len(self.palette)
        if self.ignore_index is not None:
            drawn &= m != self.ignore_index
        return lut[m].permute(0, 3, 1, 2), drawn.unsqueeze(1)

    def blend(self, masks: Tensor) -> Tensor:
        """The images with ``masks`` painted over them (``alpha``)."""
        colour, drawn = self.colourise(masks)
        images = self.images.detach().float().cpu().clamp(0, 1)
        return torch.where(drawn, (1 - self.alpha) * images + self.alpha * colour, images)

    def figure(self, titles: tuple[str, ...] = ("image", "ground truth", "prediction")) -> Any:
        """The report picture: one row per image, columns titled image | ground truth |
        prediction (no truth column without targets), and a legend of the classes drawn."""
        from visionsuite.outputs.figures import class_legend, labelled_grid

        images = self.images.detach().float().cpu().clamp(0, 1)
        columns = [images] + ([self.blend(self.targets)] if self.targets is not None else []) + [self.blend(self.preds)]
        shown = titles if self.targets is not None else (titles[0], titles[-1])
        masks = [m for m in (self.targets, self.preds) if m is not None]
        drawn = [m[(m != self.ignore_index)] if self.ignore_index is not None else m for m in masks]
        rows = [[col[i] for col in columns] for i in range(len(images))]
        return labelled_grid(rows, shown, legend=class_legend(self.class_names, self.palette, drawn))

    def wandb_masks(self) -> list[dict[str, Any]]:
        """Per image, W&B's ``masks=`` argument: ``predictions`` (and ``ground_truth``) with class names."""
        labels = {i: name for i, name in enumerate(self.class_names)}
        if self.ignore_index is not None:
            labels[self.ignore_index] = "void"
        out = []
        for i in range(len(self.preds)):
            masks = {"predictions": {"mask_data": self.preds[i].cpu().numpy(), "class_labels": labels}}
            if self.targets is not None:
                masks["ground_truth"] = {"mask_data": self.targets[i].cpu().numpy(), "class_labels": labels}
            out.append(masks)
        return out
