"""An exponential moving average of all of a task's weights, evaluated and checkpointed in
their place: airbench's and timm's ``ModelEmaV3`` recipe, on Lightning's ``WeightAveraging``.

What it changes for a run (Lightning's mechanism, kept): validation runs on the average (so the
best checkpoint is chosen on it), every checkpoint's ``state_dict`` holds the average (so
``test``, ``predict``, ``export`` and ensembles use it without knowing about EMA), and the raw
weights travel as ``current_model_state`` with the average's update count, so a resumed run
continues both bit-identically. The decay warms up (``warmup``) as the GAN generator's EMA does
(:func:`visionsuite.models.ema.warmup_decay`): a short run is not dominated by its random
initialisation.

A resume from a checkpoint written without EMA starts the average at that checkpoint's weights
(Lightning's behaviour; one warning line says so).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn

from visionsuite.core.private_api import averaged_model
from visionsuite.errors import ConfigError
from visionsuite.models.ema import warmup_ema_multi_avg_fn


class WeightEMA(WeightAveraging):
    """EMA of every parameter and buffer of the task, updated after each optimiser step."""

    def __init__(self, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay, self.warmup = decay, warmup
        update = warmup_ema_multi_avg_fn(decay) if warmup else get_ema_multi_avg_fn(decay)
        super().__init__(use_buffers=True, multi_avg_fn=update)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Outside ``fit`` (test, predict of an EMA run) the checkpoint's weights already are the
        average: nothing to restore, and nothing to warn about."""
        if averaged_model(self) is not None:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
