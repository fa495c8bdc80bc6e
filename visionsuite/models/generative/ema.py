"""An exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al. 2019),
the cheapest known improvement of GAN samples: sample and evaluate with the average, train the raw one.

Built on ``torch.optim.swa_utils.AveragedModel``; buffers (batch-norm running statistics) are
averaged too, so the copy is usable in eval mode without recomputing them.
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from visionsuite.errors import ConfigError


def make_ema(model: nn.Module, decay: float = 0.999) -> AveragedModel:
    """A frozen copy of ``model``; each ``.update_parameters(model)`` sets
    avg ← decay·avg + (1 − decay)·current (the first call copies ``model``)."""
    if not 0.0 < decay < 1.0:
        raise ConfigError(f"EMA decay must be in (0, 1), got {decay}")
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema
