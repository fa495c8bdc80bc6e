"""Fine-tuning regimes of a pretrained backbone: which stages train at which epoch, at which rate.

The course's three regimes – ``linear_probe`` (frozen backbone, new head), ``top_stages`` (the
top *k* stages and the head) and ``full`` – plus scheduled unfreezing (``unfreeze_at: {epoch:
[stages]}``) and discriminative learning rates (``backbone_lr_mult`` for the whole backbone,
``stage_lr_decay`` per stage below the top).

Why it survives a resume: every parameter is in the optimiser from the first step, one group per
stage with its own rate (frozen ones simply have no gradient), so the groups never change; and
which stages train is a pure function of the epoch (:meth:`FineTuneSchedule.trainable`), applied
at every epoch start. A run resumed from ``last.ckpt`` therefore rebuilds the same groups, loads
their rates from the optimiser state, and freezes exactly what the uninterrupted run froze.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from visionsuite.errors import ConfigError
from visionsuite.tasks.optim import param_groups

Regime = Literal["full", "linear_probe", "top_stages"]
REGIMES = ("full", "linear_probe", "top_stages")


@dataclass(frozen=True)
class FineTuneSchedule:
    """Which backbone stages train at each epoch, and each stage's learning-rate factor."""

    stages: tuple[str, ...]  # backbone stages in forward order (the head always trains)
    regime: Regime = "full"
    top_stages: int = 1
    unfreeze_at: Mapping[int, Sequence[str]] = field(default_factory=dict)
    backbone_lr_mult: float = 1.0
    stage_lr_decay: float = 1.0

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ConfigError(f"finetune={self.regime!r}: choose one of {', '.join(REGIMES)}")
        if self.regime == "top_stages" and not 0 <= self.top_stages <= len(self.stages):
            raise ConfigError(f"top_stages={self.top_stages}: the backbone has {len(self.stages)} stages {list(self.stages)}")
        for epoch, names in self.unfreeze_at.items():
            unknown = [n for n in names if n not in self.stages]
            if int(epoch) < 0 or unknown:
                raise ConfigError(
                    f"unfreeze_at {{{epoch}: {list(names)}}}: epochs are ≥ 0 and stages one of {list(self.stages)}"
                )
        if self.backbone_lr_mult < 0 or not 0 < self.stage_lr_decay <= 1:
            raise ConfigError(
                f"backbone_lr_mult={self.backbone_lr_mult} (≥ 0), stage_lr_decay={self.stage_lr_decay} (in (0, 1])"
            )

    def trainable(self, epoch: int) -> set[str]:
        """Backbone stages that train during ``epoch`` (a pure function of the epoch: idempotent)."""
        if self.regime == "full":
            start = set(self.stages)
        elif self.regime == "top_stages":
            start = set(self.stages[len(self.stages) - self.top_stages :])
        else:
            start = set()
        for milestone, names in self.unfreeze_at.items():
            if epoch >= int(milestone):
                start |= set(names)
        return start

    def lr_factor(self, stage: str) -> float:
        """The stage's learning rate relative to the head's: ``backbone_lr_mult`` times
        ``stage_lr_decay`` to the power of its distance from the top stage."""
        depth = len(self.stages) - 1 - self.stages.index(stage)
        return self.backbone_lr_mult * self.stage_lr_decay**depth

    def apply(self, backbone: Any, epoch: int) -> set[str]:
        """Freeze (batch-norm statistics included) every stage not trainable at ``epoch``, unfreeze
        the others; returns the trainable ones."""
        trainable = self.trainable(epoch)
        frozen = [s for s in self.stages if s not in trainable]
        if trainable:
            backbone.unfreeze([s for s in self.stages if s in trainable])
        if frozen:
            backbone.freeze(frozen)
        return trainable

    def param_groups(
        self, backbone: Any, lr: float, weight_decay: float, *, no_decay_norm_and_bias: bool
    ) -> list[dict[str, Any]]:
        """One optimiser group (two with the weight-decay exemption) per stage, each with its own
        ``lr`` and a ``name`` (``stage2``, ``head``), frozen stages included."""
        groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for name in [*self.stages, "head"]:
            module: nn.Module = backbone.head if name == "head" else backbone.stages[name]
            factor = 1.0 if name == "head" else self.lr_factor(name)
            for group in param_groups(module, weight_decay, no_decay_norm_and_bias=no_decay_norm_and_bias, lr=lr * factor):
                params = [p for p in group["params"] if id(p) not in seen]  # stage views may share modules
                seen.update(id(p) for p in params)
                if params:
                    groups.append({**group, "params": params, "name": name})
        rest = [p for p in backbone.parameters() if id(p) not in seen]
        if rest:  # parameters outside every stage and the head: trained at the backbone's rate
            groups.append({"params": rest, "weight_decay": weight_decay, "lr": lr * self.backbone_lr_mult, "name": "other"})
        return groups
