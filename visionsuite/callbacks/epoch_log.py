"""One line per training epoch: the log of a run whose output goes to a file.

Lightning's progress bar redraws itself with carriage returns, hundreds of times an epoch: in a
terminal that is what a person wants, in a file (``visionsuite fit … > train.log``, a batch job)
it is megabytes of one unreadable line. The ``visionsuite`` command therefore turns the bar off
when stdout is not a terminal and adds :class:`EpochLog` instead, which prints, on rank 0, at
the end of each training epoch::

    epoch 3/15  step 1290  train/loss 0.3512  val/acc 0.8713  val/loss 0.3562  lr 1.81e-03  5123 img/s  elapsed 0:00:41

* ``epoch`` counts from 1 (``metrics.csv`` and checkpoints count from 0), out of ``max_epochs``;
  ``step`` is the global step (optimiser steps), as in ``metrics.csv``;
* ``train/<loss>``: the mean over the epoch's batches of each training loss (and named term:
  ``train/kl``, ``train/d_loss``) this rank computed;
* ``val/…``: the scalar validation metrics logged in this epoch (none when it did not validate);
* ``lr``: the first parameter group's learning rate of each optimiser (``/``-separated);
* ``img/s``: training images per second over the epoch's training time, validation excluded,
  times the number of processes; ``elapsed``: wall time since training started in this process.

In a terminal the progress bar stays as configured. ``VISIONSUITE_PROGRESS_BAR=1`` keeps the bar
even when stdout is a file, ``VISIONSUITE_PROGRESS_BAR=0`` prints these lines even in a terminal
(:mod:`visionsuite.core.console`). A run whose config turns the bar off itself gets these lines.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from visionsuite.callbacks.divergence import training_losses
from visionsuite.core.console import line


class EpochLog(Callback):
    """Prints one line per training epoch (see the module docstring); rank 0 only."""

    def __init__(self) -> None:
        self._started: float | None = None
        self._reset()

    def _reset(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}  # summed on the loss's device: no sync per step
        self._batches = 0
        self._images = 0
        self._epoch_start = time.perf_counter()
        self._val_start: float | None = None
        self._val_seconds = 0.0
        self._val_metrics: dict[str, float] = {}

    # -- collecting ----------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        for name, value in training_losses(pl_module, outputs).items():
            value = value.detach().float().reshape(())
            self._sums[name] = self._sums[name] + value.to(self._sums[name].device) if name in self._sums else value
        self._batches += 1
        self._images += _batch_size(pl_module, batch)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self._val_start is None:
            return
        self._val_seconds += time.perf_counter() - self._val_start
        self._val_start = None
        self._val_metrics = {
            key: float(value)
            for key, value in sorted(trainer.callback_metrics.items())
            if key.startswith("val/") and isinstance(value, torch.Tensor) and value.numel() == 1
        }

    # -- printing ------------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            line(self.epoch_line(trainer))

    def epoch_line(self, trainer: Trainer) -> str:
        """The line for the epoch that is ending."""
        now = time.perf_counter()
        epoch = f"epoch {trainer.current_epoch + 1}"
        if trainer.max_epochs not in (None, -1):
            epoch += f"/{trainer.max_epochs}"
        parts = [epoch, f"step {trainer.global_step}"]
        losses = sorted(self._sums.items(), key=lambda kv: (kv[0] != "loss", kv[0]))
        parts += [f"train/{name} {_number(float(total) / max(1, self._batches))}" for name, total in losses]
        parts += [f"{key} {_number(value)}" for key, value in self._val_metrics.items()]
        rates = [group["lr"] for opt in trainer.optimizers for group in opt.param_groups[:1]]
        if rates:
            parts.append("lr " + "/".join(f"{float(lr):.2e}" for lr in rates))
        train_seconds = now - self._epoch_start - self._val_seconds
        if self._images and train_seconds > 0:
            rate = self._images * trainer.world_size / train_seconds
            parts.append(f"{rate:.0f} img/s" if rate >= 10 else f"{rate:.2g} img/s")  # a slow CPU step: 0.31, not 0
        parts.append(f"elapsed {_clock(now - (self._started if self._started is not None else self._epoch_start))}")
        return "  ".join(parts)


def _batch_size(pl_module: LightningModule, batch: Any) -> int:
    """Images in a training batch: the task's own count (``BaseTask.batch_size``), else the
    length of ``batch["image"]`` or of the batch's first element; 0 when unknown."""
    counter = getattr(pl_module, "batch_size", None)
    try:
        if callable(counter):
            return int(counter(batch))
        first = batch["image"] if isinstance(batch, dict) else batch[0]
        return len(first)
    except (KeyError, IndexError, TypeError):
        return 0


def _number(value: float) -> str:
    """Four significant digits (``0.8713``, ``123.5``, ``2.3e-05``); ``nan``/``inf`` as such."""
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _clock(seconds: float) -> str:
    """``H:MM:SS``."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
