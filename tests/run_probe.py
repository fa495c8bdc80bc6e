"""A callback for tests: records the global step at which a fit process starts training."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer


class FirstStep(Callback):
    """``FirstStep.seen`` gets the ``global_step`` of each ``on_train_start`` (after any restore)."""

    seen: list[int] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        FirstStep.seen.append(trainer.global_step)
