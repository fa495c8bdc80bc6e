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
    """Checks the losses of every training step (one ``isfinite`` on their stack; a non-finite one
    is named: ``d_loss``, ``kl``), the monitored
    validation metric, and the weights about to be written to any checkpoint.

    It runs before the checkpoint callbacks (Lightning orders those last), so no checkpoint with
    non-finite weights or score is ever saved or marked best.
    """

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        losses = training_losses(pl_module, outputs)
        if not losses or bool(torch.isfinite(_stacked(losses)).all()):
            return
        bad = [(k, v) for k, v in losses.items() if not bool(torch.isfinite(v.detach()).all())]
        name, value = min(bad, key=lambda kv: kv[0] == "loss")  # name the term that broke, not only the sum
        what = "training loss" if name == "loss" else f"training loss term {name}"
        raise DivergenceError(
            f"{what} is {value.detach().float().item()} at step {trainer.global_step}"
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


def _stacked(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """Every loss value in one flat tensor on the first loss's device (one ``isfinite``, one sync),
    whichever device a task left each term on."""
    device = next(iter(losses.values())).device
    return torch.cat([v.detach().float().flatten().to(device) for v in losses.values()])


def training_losses(pl_module: LightningModule, outputs: Any) -> dict[str, torch.Tensor]:
    """The named scalar losses of the last training step: the task's ``last_losses`` (set by
    :class:`~visionsuite.tasks.base.BaseTask`, and by tasks with manual optimisation, whose
    ``training_step`` returns None), else the loss ``training_step`` returned."""
    named = getattr(pl_module, "last_losses", None)
    if named:
        return {k: v for k, v in named.items() if isinstance(v, torch.Tensor)}
    loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
    return {"loss": loss.reshape(())} if isinstance(loss, torch.Tensor) and loss.numel() == 1 else {}
