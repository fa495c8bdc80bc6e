"""Optimiser and learning-rate schedule factories, chosen by name in a config.

Kept as plain names + numbers (not class paths) so a YAML reads like the course's recipe:
``optimizer: sgd, lr: 0.1, momentum: 0.9, scheduler: multistep, milestones: [60, 90]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from torch import nn
from torch.optim import Optimizer, lr_scheduler

from visionsuite.core.registry import Registry

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
#: the schedules' names for the CLI parser (its check and its ``--help``); the names themselves come
#: from :data:`SCHEDULERS` (``tests/test_optim.py`` checks the two agree).
SchedulerName = Literal["none", "multistep", "cosine", "cosine_time", "onecycle", "triangular", "plateau"]


#: the normalisation layers whose biases :func:`param_groups` can give their own learning rate.
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def norm_biases(model: nn.Module) -> list[nn.Parameter]:
    """The bias (shift) of every batch, instance, group and layer norm of ``model``."""
    return [m.bias for m in model.modules() if isinstance(m, NORM_LAYERS) and isinstance(getattr(m, "bias", None), nn.Parameter)]


def param_groups(
    model: nn.Module | Iterable[nn.Parameter],
    weight_decay: float,
    *,
    no_decay_norm_and_bias: bool,
    lr: float | None = None,
    norm_bias_lr: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """All of ``model``'s parameters (or the parameters given), optionally exempting biases and
    norm weights from weight decay.

    Frozen parameters are included on purpose: they have no gradient, so the optimiser skips
    them until they are unfrozen – a stage unfrozen after the optimiser was built then trains,
    instead of silently staying out of the optimiser. ``lr`` gives these groups their own
    learning rate (discriminative fine-tuning: a lower one for the backbone than for the head).

    ``norm_bias_lr`` = ``(lr, mult)``: the normalisation layers' biases (``model`` must be a
    module) go in a group of their own at ``lr × mult`` with weight decay ``/ mult``, so the
    decay per step (lr × decay) is the others' (airbench's 64x rate on batch-norm biases:
    with the scale fixed, the shift is what the norm learns, and it needs the larger steps).
    """
    if norm_bias_lr is not None and norm_bias_lr[1] != 1:
        if not isinstance(model, nn.Module):
            raise ValueError("norm_bias_lr needs the module, to find its normalisation layers")
        base, mult = norm_bias_lr
        biases = norm_biases(model)
        chosen = {id(p) for p in biases}
        rest = [p for p in model.parameters() if id(p) not in chosen]
        decay = 0.0 if no_decay_norm_and_bias else weight_decay / mult
        groups = param_groups(rest, weight_decay, no_decay_norm_and_bias=no_decay_norm_and_bias, lr=base if lr is None else lr)
        return [*groups, {"params": biases, "lr": base * mult, "weight_decay": decay}] if biases else groups
    params = list(model.parameters()) if isinstance(model, nn.Module) else list(model)
    extra = {} if lr is None else {"lr": lr}
    if not no_decay_norm_and_bias or weight_decay == 0:
        return [{"params": params, "weight_decay": weight_decay, **extra}]
    decay = [p for p in params if p.ndim > 1]
    other = [p for p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay, **extra}, {"params": other, "weight_decay": 0.0, **extra}]


def build_optimizer(
    name: str,
    params: Iterable[dict[str, Any]] | Iterable[torch.Tensor],
    *,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    betas: Sequence[float] = (0.9, 0.999),
) -> Optimizer:
    """One of SGD (momentum, Nesterov), Adam, AdamW (``betas``: DCGAN uses (0.5, 0.999)), RMSprop, Adagrad."""
    options = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay, "betas": tuple(betas)}
    return OPTIMIZERS[name](params, **options)


#: every optimiser by name (``visionsuite list optimizers``); each takes the options it uses.
OPTIMIZERS: Registry[Callable[..., Optimizer]] = Registry("optimizer")
OPTIMIZERS.register("sgd")(
    lambda p, *, lr, momentum, nesterov, weight_decay, **_: torch.optim.SGD(
        p, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )
)
OPTIMIZERS.register("adam")(
    lambda p, *, lr, betas, weight_decay, **_: torch.optim.Adam(p, lr=lr, betas=betas, weight_decay=weight_decay)
)
OPTIMIZERS.register("adamw")(
    lambda p, *, lr, betas, weight_decay, **_: torch.optim.AdamW(p, lr=lr, betas=betas, weight_decay=weight_decay)
)
OPTIMIZERS.register("rmsprop")(
    lambda p, *, lr, momentum, weight_decay, **_: torch.optim.RMSprop(p, lr=lr, momentum=momentum, weight_decay=weight_decay)
)
OPTIMIZERS.register("adagrad")(lambda p, *, lr, weight_decay, **_: torch.optim.Adagrad(p, lr=lr, weight_decay=weight_decay))


def budget_cosine_factor(fraction: float, warmup_pct: float) -> float:
    """The learning-rate multiplier at ``fraction`` of a budget: linear from 0 to 1 over the first
    ``warmup_pct``, then half a cosine down to 0 at the end (1.0 and beyond: 0)."""
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < warmup_pct:
        return fraction / warmup_pct
    return 0.5 * (1 + math.cos(math.pi * (fraction - warmup_pct) / (1 - warmup_pct)))


class BudgetCosineLR(lr_scheduler.LRScheduler):
    """Warm-up then cosine over a time budget: ``clock()`` says which fraction of it has passed.

    Why: a run bounded by ``trainer.max_time`` stops at an epoch nobody knows beforehand, because
    the machine's speed varies from day to day. A schedule sized in epochs then either ends early
    (the rest of the budget at a learning rate near 0) or is cut while the rate is still high;
    one that follows elapsed time always reaches 0 at the stop (as the issues' reference scripts
    schedule). The price: the rate depends on wall-clock time, so two runs are not identical.
    """

    def __init__(self, optimizer: Optimizer, clock: Callable[[], float], warmup_pct: float = 0.0) -> None:
        if not 0 <= warmup_pct < 1:
            raise ValueError(f"warmup_pct must be in [0, 1), got {warmup_pct}")
        self.clock, self.warmup_pct = clock, warmup_pct
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        factor = budget_cosine_factor(self.clock(), self.warmup_pct)
        return [base * factor for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        """As the base class's, without the clock (a callable: not checkpoint data)."""
        return {k: v for k, v in super().state_dict().items() if k != "clock"}


def triangular_factor(step: int, total_steps: int, warmup_pct: float, ends: tuple[float, float] = (0.0, 0.0)) -> float:
    """The learning-rate multiplier at optimiser step ``step`` of ``total_steps``: linear from
    ``ends[0]`` to 1 over the first ``warmup_pct`` of the steps, then linear down to ``ends[1]``
    at the last step (``ends`` (0, 0): from one step's share of the ramp, never 0, down to 0).

    airbench's schedule (and the fast CIFAR-10 records before it): unlike one-cycle's cosine
    halves, the rate spends as long near its peak as near zero. airbench94 runs it from 0.2 to
    0.07 of the peak (``triangular_ends: [0.2, 0.07]``).
    """
    start, end = ends
    total = max(1, total_steps)
    rise = max(1, round(warmup_pct * total))
    if step < rise:
        return start + (1 - start) * (step + 1) / rise
    return end + (1 - end) * max(0.0, (total - step) / max(1, total - rise))


def build_scheduler(
    name: str,
    optimizer: Optimizer,
    *,
    max_epochs: int,
    total_steps: int,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    monitor: str = "val/loss",
    mode: str = "min",
    patience: int = 10,
    warmup_pct: float = 0.3,
    triangular_ends: tuple[float, float] = (0.0, 0.0),
    budget_clock: Callable[[], float] | None = None,
) -> dict[str, Any] | None:
    """A Lightning ``lr_scheduler`` config dict (with the right interval), or ``None``.

    ``cosine_time`` needs ``budget_clock``: a callable returning the fraction of the time budget
    spent (:class:`BudgetCosineLR`).
    """
    options = {"max_epochs": max_epochs, "total_steps": total_steps, "milestones": milestones, "gamma": gamma,
               "monitor": monitor, "mode": mode, "patience": patience, "warmup_pct": warmup_pct,
               "triangular_ends": triangular_ends, "budget_clock": budget_clock}  # fmt: skip
    return SCHEDULERS[name](optimizer, **options)


#: every learning-rate schedule by name (``visionsuite list schedulers``); each takes the options
#: it uses and returns Lightning's ``lr_scheduler`` dict (``None``: a constant rate).
SCHEDULERS: Registry[Callable[..., dict[str, Any] | None]] = Registry("scheduler")


@SCHEDULERS.register("none")
def _constant(optimizer: Optimizer, **_: Any) -> None:
    return None


@SCHEDULERS.register("multistep")
def _multistep(optimizer: Optimizer, *, milestones: Sequence[int], gamma: float, **_: Any) -> dict[str, Any]:
    sched = lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    return {"scheduler": sched, "interval": "epoch"}


@SCHEDULERS.register("cosine")
def _cosine(optimizer: Optimizer, *, max_epochs: int, **_: Any) -> dict[str, Any]:
    sched = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs))
    return {"scheduler": sched, "interval": "epoch"}


@SCHEDULERS.register("cosine_time")
def _cosine_time(
    optimizer: Optimizer, *, budget_clock: Callable[[], float] | None, warmup_pct: float, **_: Any
) -> dict[str, Any]:
    if budget_clock is None:
        raise ValueError("scheduler cosine_time needs a time budget (budget_clock)")
    return {"scheduler": BudgetCosineLR(optimizer, budget_clock, warmup_pct), "interval": "step"}


@SCHEDULERS.register("onecycle")
def _onecycle(optimizer: Optimizer, *, total_steps: int, warmup_pct: float, **_: Any) -> dict[str, Any]:
    max_lrs = [g["lr"] for g in optimizer.param_groups]
    sched = lr_scheduler.OneCycleLR(optimizer, max_lr=max_lrs, total_steps=max(1, total_steps), pct_start=warmup_pct)
    return {"scheduler": sched, "interval": "step"}


@SCHEDULERS.register("triangular")
def _triangular(
    optimizer: Optimizer, *, total_steps: int, warmup_pct: float, triangular_ends: tuple[float, float] = (0.0, 0.0), **_: Any
) -> dict[str, Any]:
    total, ends = max(1, total_steps), (float(triangular_ends[0]), float(triangular_ends[1]))
    sched = lr_scheduler.LambdaLR(optimizer, lambda step: triangular_factor(step, total, warmup_pct, ends))
    return {"scheduler": sched, "interval": "step"}


@SCHEDULERS.register("plateau")
def _plateau(optimizer: Optimizer, *, monitor: str, mode: str, gamma: float, patience: int, **_: Any) -> dict[str, Any]:
    sched = lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=gamma, patience=patience)
    return {"scheduler": sched, "interval": "epoch", "monitor": monitor}
