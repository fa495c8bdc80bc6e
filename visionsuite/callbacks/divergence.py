"""Stop a run whose training has diverged, before a non-finite model is checkpointed or tested."""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from visionsuite.errors import VisionSuiteError


class DivergenceError(VisionSuiteError):
    """The loss, a monitored metric or the weights became NaN/inf."""


class DivergenceGuard(Callback):
    """Checks the loss of every training step (one ``isfinite`` on a scalar), the monitored
    validation metric, and the weights about to be written to any checkpoint.

    It runs before the checkpoint callbacks (Lightning orders those last), so no checkpoint with
    non-finite weights or score is ever saved or marked best.
    """

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            raise DivergenceError(
                f"training loss is {loss.detach().float().item()} at step {trainer.global_step}"
                f" (epoch {trainer.current_epoch}, batch {batch_idx}): the run diverged; lower the learning rate"
            )

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        monitor = getattr(pl_module, "monitor", None)
        value = trainer.callback_metrics.get(monitor) if monitor else None
        if trainer.sanity_checking or value is None or math.isfinite(float(value)):
            return
        raise DivergenceError(f"{monitor} is {float(value)} after step {trainer.global_step}: the run diverged")

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        bad = [name for name, p in pl_module.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
        if bad:
            raise DivergenceError(
                f"weights {', '.join(bad[:3])} are not finite at step {trainer.global_step}:"
                " the run diverged (no checkpoint written); lower the learning rate"
            )
