"""Range checks of constructor arguments, by name, for tasks and data modules.

A ``batch_size`` of 0 or an ``lr`` of -1 is caught here, at construction, with a one-line
:class:`~visionsuite.errors.ConfigError` (exit 2 from the CLI) instead of a traceback from
deep inside the DataLoader or the optimiser minutes later. The checks run on the arguments a
module was built with (its ``hparams``), so they apply the same to the CLI and to Python
callers, and to every subclass's extra arguments that share a name below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from visionsuite.errors import ConfigError

#: a rule returns ``None`` when the value is fine, else what the value must be.
Rule = Callable[[Any], "str | None"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def int_at_least(low: int, *, optional: bool = False) -> Rule:
    """An ``int >= low`` (or ``None`` when ``optional``)."""

    def rule(value: Any) -> str | None:
        if optional and value is None:
            return None
        ok = _is_int(value) and value >= low
        return None if ok else f"an integer >= {low}" + (" (or null)" if optional else "")

    return rule


def finite(*, positive: bool = False, below: float | None = None) -> Rule:
    """A finite number ``>= 0`` (``> 0`` when ``positive``; ``< below`` when given)."""

    def rule(value: Any) -> str | None:
        ok = _is_number(value) and math.isfinite(value) and (value > 0 if positive else value >= 0)
        ok = ok and (below is None or value < below)
        bounds = ("> 0" if positive else ">= 0") + (f" and < {below:g}" if below is not None else "")
        return None if ok else f"a finite number {bounds}"

    return rule


def size_or_fraction(value: Any) -> str | None:
    """A hold-out size: an ``int >= 0`` or a fraction ``0 <= x < 1``."""
    if _is_int(value) and value >= 0:
        return None
    if _is_number(value) and math.isfinite(value) and (0 <= value < 1 or float(value).is_integer() and value >= 0):
        return None
    return "an integer >= 0 or a fraction in [0, 1)"


def image_size(value: Any) -> str | None:
    """``H`` (square) or ``(H, W)``, each ``>= 1`` (``None`` = the dataset's own size)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    ok = value is None or (len(values) in (1, 2) and all(_is_int(v) and v >= 1 for v in values))
    return None if ok else "an integer >= 1 or a pair [height, width] of them"


def positive_numbers(value: Any) -> str | None:
    """``None`` or a list of finite numbers ``> 0`` (a normalisation ``std``)."""
    ok = value is None or all(_is_number(v) and math.isfinite(v) and v > 0 for v in value)
    return None if ok else "a list of finite numbers > 0"


def fraction_pair(value: Any) -> str | None:
    """Two finite numbers in [0, 1] (a schedule's start and end rates, as fractions of ``lr``)."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    ok = ok and all(_is_number(v) and math.isfinite(v) and 0 <= v <= 1 for v in value)
    return None if ok else "two numbers in [0, 1] (start, end)"


def non_negative_ints(value: Any) -> str | None:
    """``None`` or a list of integers ``>= 0`` (scheduler milestones)."""
    ok = value is None or all(_is_int(v) and v >= 0 for v in value)
    return None if ok else "a list of integers >= 0"


#: argument name → rule; one table for every task and data module.
RULES: dict[str, Rule] = {
    # data modules
    "batch_size": int_at_least(1),
    "eval_batch_size": int_at_least(1, optional=True),
    "num_workers": int_at_least(0),
    "crop_padding": int_at_least(0),
    "train_subset": int_at_least(0, optional=True),
    "val_subset": int_at_least(0, optional=True),
    "test_subset": int_at_least(0, optional=True),
    "val_size": size_or_fraction,
    "test_size": size_or_fraction,
    "image_size": image_size,
    "std": positive_numbers,
    # tasks
    "lr": finite(positive=True),
    "momentum": finite(),
    "weight_decay": finite(),
    "gamma": finite(),
    "patience": int_at_least(0),
    "warmup_pct": finite(positive=True, below=1),
    "triangular_ends": fraction_pair,
    "milestones": non_negative_ints,
    "checkpoint_every_n_steps": int_at_least(1),
    "num_classes": int_at_least(1),
    "in_chans": int_at_least(1),
    "label_smoothing": finite(below=1),
    "aux_loss_weight": finite(),
    "num_sample_images": int_at_least(0),
    "backbone_lr_mult": finite(),
    "norm_bias_lr_mult": finite(positive=True),
    "encoder_lr_mult": finite(),
    "stage_lr_decay": finite(positive=True),
    "top_stages": int_at_least(1),
    "frozen_stages": int_at_least(0),
    "frozen_encoder_stages": int_at_least(0),
    "num_overlay_images": int_at_least(0),
    # detection
    "fpn_channels": int_at_least(1),
    "head_convs": int_at_least(1),
    "detections_per_img": int_at_least(1),
    "score_thresh": finite(below=1),
    "nms_thresh": finite(positive=True),
    # generative
    "latent_dim": int_at_least(1),
    "img_size": int_at_least(1),
    "beta": finite(),
    "kl_warmup_steps": int_at_least(0),
    "noise_level": finite(),
    "gp_weight": finite(),
    "n_critic": int_at_least(1),
    "d_lr": lambda v: None if v is None else finite(positive=True)(v),
    "ema_decay": lambda v: None if v is None else finite(below=1)(v),
    "num_fixed_samples": int_at_least(1),
    "kid_subset_size": int_at_least(2, optional=True),
    "scatter_points": int_at_least(0),
}


def check_arguments(owner: object, arguments: Mapping[str, Any]) -> None:
    """Raise a one-line :class:`ConfigError` for the first argument outside its range in :data:`RULES`."""
    for name, value in arguments.items():
        rule = RULES.get(name)
        problem = rule(value) if rule is not None else None
        if problem is not None:
            raise ConfigError(f"{type(owner).__name__}: {name} must be {problem}, got {value!r}")
