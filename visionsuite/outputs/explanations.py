"""Saliency and Grad-CAM of fixed validation images after every validation, through the same
delivery as every other picture (PNG under ``images/``, W&B, TensorBoard).

Add it to a classification run: ``--trainer.callbacks+=visionsuite.outputs.ExplanationFigures
--trainer.callbacks.stage layer4``. The images are the first ``num_images`` of the first
validation batch (evaluation loaders do not shuffle), so successive pictures show how what the
network looks at changes with training.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from visionsuite.models.explanations import grad_cam, saliency, stage_module
from visionsuite.outputs.figures import (
    denormalize,
    explanation_figure,
    predicted_captions,
)
from visionsuite.outputs.images import deliver


class ExplanationFigures(Callback):
    """Log ``val/explanations`` after validation: each image beside its saliency and Grad-CAM
    maps, labelled with the predicted class and its probability.

    Args:
        stage: backbone stage for Grad-CAM (default: the last); an unknown name stops the run
            at start with the list of valid stages.
        num_images: validation images explained.
    """

    def __init__(self, stage: str | None = None, num_images: int = 8) -> None:
        self.stage, self.num_images = stage, num_images

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        backbone = getattr(pl_module, "model", None)
        stages = getattr(backbone, "stages", None)
        self.stage = self.stage or (list(stages.keys())[-1] if stages is not None else "?")
        stage_module(backbone, self.stage)  # raises now, listing the valid stages, not after an epoch

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        out_dir = Path(trainer.log_dir or trainer.default_root_dir) / "images"  # a collective call under DDP
        if not trainer.is_global_zero or "val" not in pl_module.first_batches:
            return
        batch, _ = pl_module.first_batches["val"]
        layer = stage_module(pl_module.model, self.stage)
        was_training = pl_module.training
        pl_module.eval()
        with torch.inference_mode(False), torch.enable_grad():  # validation runs under inference mode
            images = batch["image"][: self.num_images].detach().clone().float()
            maps = {"val/saliency": saliency(pl_module, images), f"val/gradcam_{self.stage}": grad_cam(pl_module, layer, images)}
        pl_module.train(was_training)
        dm = trainer.datamodule
        shown = denormalize(images, getattr(dm, "mean", None), getattr(dm, "std", None)).clamp(0, 1).cpu()
        with torch.no_grad():
            probs = pl_module(images).float().softmax(-1).cpu()
        captions = predicted_captions(probs, pl_module.class_names())
        titled = {"saliency": maps["val/saliency"], f"Grad-CAM {self.stage}": maps[f"val/gradcam_{self.stage}"]}
        from visionsuite.outputs.metrics_file import scored_step

        step = scored_step(trainer, pl_module, "val")  # a validate of a checkpoint: that checkpoint's step
        figure = explanation_figure(shown, titled, captions, title=f"what the network looks at (epoch {trainer.current_epoch}, step {step})")
        deliver(trainer, {"val/explanations": figure}, "val", out_dir)

