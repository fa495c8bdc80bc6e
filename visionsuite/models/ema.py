"""An exponential moving average of a network's weights: the one EMA of the suite.

GANs sample and evaluate with an average of the generator (Karras et al. 2018; Yazıcı et al.
2019), the cheapest known improvement of their samples; classifiers evaluate and checkpoint an
average of all their weights (airbench, timm's ``ModelEmaV3``): :class:`visionsuite.callbacks.ema.WeightEMA`, for
any task, by ``ema_decay``. Both train the raw weights.

Built on ``torch.optim.swa_utils.AveragedModel``; buffers (batch-norm running statistics) are
averaged too, so the copy is usable in eval mode without recomputing them.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

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


def warmup_ema_multi_avg_fn(decay: float):
    """torch's EMA update, with the decay of :func:`warmup_decay` for the updates so far."""

    def update(ema_params: list[Tensor], params: list[Tensor], num_averaged: Tensor) -> None:
        get_ema_multi_avg_fn(warmup_decay(decay, int(num_averaged)))(ema_params, params, num_averaged)

    return update


def make_ema(model: nn.Module, decay: float = 0.999, warmup: bool = True) -> AveragedModel:
    """A frozen copy of ``model``; each ``.update_parameters(model)`` sets
    avg ← d·avg + (1 − d)·current (the first call copies ``model``), with d = ``decay``, or
    with ``warmup`` (default) :func:`warmup_decay` of the number of updates so far (kept in the
    copy's ``n_averaged`` buffer, so it survives a checkpoint and resume)."""
    if not 0.0 < decay < 1.0:
        raise ConfigError(f"EMA decay must be in (0, 1), got {decay}")
    update = warmup_ema_multi_avg_fn(decay) if warmup else get_ema_multi_avg_fn(decay)
    ema = AveragedModel(model, multi_avg_fn=update, use_buffers=True)
    ema.requires_grad_(False)
    return ema
