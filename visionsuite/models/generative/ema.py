"""Moved to :mod:`visionsuite.models.ema` (one EMA for GANs and classifiers); this path still
imports, for one release."""

from visionsuite.models.ema import make_ema, warmup_decay, warmup_ema_multi_avg_fn

__all__ = ["make_ema", "warmup_decay", "warmup_ema_multi_avg_fn"]
