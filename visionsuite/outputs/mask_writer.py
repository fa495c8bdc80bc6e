"""Write ``predict`` results of a segmentation model: per image a palette PNG mask and an overlay.

Masks are written at the ORIGINAL image size: the logits of the fitted (letterboxed/resized)
image are mapped back with :func:`~visionsuite.data.geometry.restore` (the inverse of the
placement the data layer applied) before the argmax. The mask PNG is mode ``P``: its pixel values
are the class indices and its palette the class colours, so it opens in colour anywhere and
reads back as indices with ``np.array(Image.open(path))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from visionsuite.core.atomic import atomic_path
from visionsuite.data.geometry import plan, restore
from visionsuite.data.images import load_image
from visionsuite.data.palette import palette_image
from visionsuite.outputs.images import MaskOverlay, write_png
from visionsuite.outputs.output_names import prediction_path


class SegmentationMaskWriter(BasePredictionWriter):
    """For each predicted image: ``<output>/<name>.png`` (palette mask) and ``<name>_overlay.png``
    (the image beside the prediction painted over it, titled, with a legend of the classes found).

    ``predict_step`` returns ``{"paths", "logits"}`` (logits float [B, C, h, w] on the fitted
    image). ``<name>`` is the file's path relative to the predicted folder, without its suffix
    (:func:`~visionsuite.outputs.output_names.prediction_path`: two inputs never share one).

    Args:
        output: folder; default ``<trainer.default_root_dir>/predictions``.
        alpha: opacity of the class colours in the overlay.
    """

    def __init__(self, output: str | None = None, alpha: float = 0.5) -> None:
        super().__init__(write_interval="batch")
        self.output, self.alpha = output, alpha
        self.written: list[Path] = []
        self._taken: set[Path] = set()

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        dm = trainer.datamodule
        out_dir = Path(self.output) if self.output else Path(trainer.default_root_dir) / "predictions"
        root = getattr(dm, "predict_root", None)
        palette = pl_module.palette()
        for path, logits in zip(prediction["paths"], prediction["logits"], strict=True):
            source = Path(path)
            original = torch.from_numpy(load_image(source, 3, None))
            _, placement = plan(tuple(original.shape[-2:]), dm.image_size, dm.resize_mode)
            mask = restore(logits[None].float(), placement)[0].argmax(0)
            target = prediction_path(out_dir, source, root, self._taken, companions=("_overlay",))
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                palette_image(mask.numpy(), palette).save(tmp)
            names = pl_module.class_names()
            overlay = MaskOverlay(original[None].float() / 255, mask[None], None, names, palette, alpha=self.alpha)
            write_png(overlay.figure(titles=(source.name, "prediction")), target.with_name(target.stem + "_overlay.png"))
            self.written.append(target)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        out_dir = Path(self.output) if self.output else Path(trainer.default_root_dir) / "predictions"
        print(f"{len(self.written)} mask(s) and overlay(s) written to {out_dir}")
