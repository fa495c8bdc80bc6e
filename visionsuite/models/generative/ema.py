"""An exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al. 2019),
the cheapest known improvement of GAN samples: sample and evaluate with the average, train the raw one.

Built on ``torch.optim.swa_utils.AveragedModel``; buffers (batch-norm running statistics) are
averaged too, so the copy is usable in eval mode without recomputing them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from visionsuite.errors import ConfigError


def warmup_decay(decay: float, updates: int) -> float:
    """The decay to apply after ``updates`` updates (the first copy included: ``AveragedModel``'s
    ``n_averaged``): ``min(decay, (1 + n) / (10 + n))``.

    TensorFlow's ``ExponentialMovingAverage(num_updates=...)`` rule. Without it a 0.999 average
    still holds 0.999^n of the untrained generator after n steps (37% after 1,000): short runs
    then sample from a mostly untrained network. With it the average follows the generator
    closely at first and reaches ``decay`` after ``(10 * decay - 1) / (1 - decay)`` updates
    (8,990 for 0.999).
    """
    return min(decay, (1.0 + updates) / (10.0 + updates))


def _ema_multi_avg_fn(decay: float, warmup: bool):
    @torch.no_grad()
    def update(ema_params: list[Tensor], params: list[Tensor], num_averaged: Tensor) -> None:
        d = warmup_decay(decay, int(num_averaged)) if warmup else decay
        if torch.is_floating_point(ema_params[0]) or torch.is_complex(ema_params[0]):
            torch._foreach_lerp_(ema_params, params, 1.0 - d)
        else:  # integer buffers (batch-norm's num_batches_tracked)
            for e, p in zip(ema_params, params, strict=True):
                e.copy_(e * d + p * (1.0 - d))

    return update


def make_ema(model: nn.Module, decay: float = 0.999, warmup: bool = True) -> AveragedModel:
    """A frozen copy of ``model``; each ``.update_parameters(model)`` sets
    avg ← d·avg + (1 − d)·current (the first call copies ``model``), with d = ``decay``, or
    with ``warmup`` (default) :func:`warmup_decay` of the number of updates so far (kept in the
    copy's ``n_averaged`` buffer, so it survives a checkpoint and resume)."""
    if not 0.0 < decay < 1.0:
        raise ConfigError(f"EMA decay must be in (0, 1), got {decay}")
    ema = AveragedModel(model, multi_avg_fn=_ema_multi_avg_fn(decay, warmup), use_buffers=True)
    ema.requires_grad_(False)
    return ema
