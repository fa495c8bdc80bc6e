"""A callback for the fine-tuning tests: what trains, at which rate, at each epoch's first batch."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class StageProbe(Callback):
    """``StageProbe.seen`` gets one record per epoch: the batch's image shape, trainable parameter
    names, optimiser groups (name, lr) and which batch norms are in training mode – after every
    hook has run."""

    seen: list[dict[str, Any]] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx != 0:
            return
        StageProbe.seen.append(
            {
                "epoch": trainer.current_epoch,
                "image_shape": tuple(batch["image"].shape),
                "trainable": sorted(n for n, p in pl_module.named_parameters() if p.requires_grad),
                "groups": [(g.get("name"), round(g["lr"], 10), len(g["params"])) for g in trainer.optimizers[0].param_groups],
                "bn_training": sorted(n for n, m in pl_module.named_modules() if "BatchNorm" in type(m).__name__ and m.training),
            }
        )
