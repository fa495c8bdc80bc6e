"""Fine-tuning a pretrained trunk: which of its stages train at which epoch, at which rate.

One mechanism for every task (classification's backbone, segmentation's encoder, detection's
backbone under its FPN): the task names its trunk (:meth:`BaseTask.trunk`), the trunk its stages
(:func:`visionsuite.models.stages.stage_groups_of`), and the options every task shares say what
trains: ``frozen_stages`` (the first *N* stages frozen, weights and batch-norm statistics: see
:mod:`visionsuite.backbones.freezing`), ``unfreeze_at: {epoch: [stages]}`` (scheduled
unfreezing), ``backbone_lr_mult`` (the trunk's learning rate relative to the rest) and
``stage_lr_decay`` (once more per stage below the top). Classification adds the course's regimes
– ``linear_probe`` (every stage frozen), ``top_stages`` (the top *k* stages train), ``full``.

Why it survives a resume: every parameter is in the optimiser from the first step, one group per
stage with its own rate (frozen ones simply have no gradient), so the groups never change; and
which stages train is a pure function of the epoch (:meth:`FineTuneSchedule.trainable`), applied
at every epoch start. A run resumed from ``last.ckpt`` therefore rebuilds the same groups, loads
their rates from the optimiser state, and freezes exactly what the uninterrupted run froze.
Stages the schedule never freezes are never touched, so what a model freezes by construction
(airbench's whitening layer, a torchvision detector's first stages) stays frozen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from visionsuite.backbones.freezing import set_frozen
from visionsuite.errors import ConfigError
from visionsuite.models.stages import StageGroups
from visionsuite.tasks.optim import param_groups

Regime = Literal["full", "linear_probe", "top_stages"]
REGIMES = ("full", "linear_probe", "top_stages")


@dataclass(frozen=True)
class FineTuneSchedule:
    """Which trunk stages train at each epoch, and each stage's learning-rate factor."""

    stages: tuple[str, ...]  # trunk stages in forward order (what follows them always trains)
    regime: Regime = "full"
    top_stages: int = 1
    unfreeze_at: Mapping[int, Sequence[str]] = field(default_factory=dict)
    backbone_lr_mult: float = 1.0
    stage_lr_decay: float = 1.0
    frozen_stages: int = 0

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ConfigError(f"finetune={self.regime!r}: choose one of {', '.join(REGIMES)}")
        if not 0 <= self.frozen_stages <= len(self.stages):
            raise ConfigError(f"frozen_stages must be in [0, {len(self.stages)}] for this trunk "
                              f"(stages {list(self.stages)}), got {self.frozen_stages}")  # fmt: skip
        if self.frozen_stages and self.regime != "full":
            raise ConfigError(f"frozen_stages={self.frozen_stages} and finetune={self.regime}: give one of them")
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

    @property
    def active(self) -> bool:
        """Whether anything is staged: otherwise the task optimises as if there were no stages."""
        return (self.regime != "full" or self.frozen_stages > 0 or bool(self.unfreeze_at)
                or self.backbone_lr_mult != 1 or self.stage_lr_decay != 1)  # fmt: skip

    def trainable(self, epoch: int) -> set[str]:
        """Trunk stages that train during ``epoch`` (a pure function of the epoch: idempotent)."""
        if self.regime == "full":
            start = set(self.stages[self.frozen_stages :])
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

    def apply(self, groups: StageGroups, epoch: int, *, training: bool) -> set[str]:
        """Freeze (batch-norm statistics included) every stage not trainable at ``epoch``, unfreeze
        those the schedule froze before; returns the trainable ones."""
        trainable, first = self.trainable(epoch), self.trainable(0)
        for name in self.stages:
            if name not in trainable:
                set_frozen(groups[name], True, training=training)
            elif name not in first:  # frozen by this schedule at the start, unfrozen since
                set_frozen(groups[name], False, training=training)
        return trainable

    def param_groups(
        self, task: nn.Module, groups: StageGroups, trunk_rest: list[nn.Parameter], lr: float, weight_decay: float,
        *, no_decay_norm_and_bias: bool,
    ) -> list[dict[str, Any]]:
        """One optimiser group (two with the weight-decay exemption) per stage, each with its own
        ``lr`` and a ``name`` (``stage2``), frozen stages included; then ``head``: every other
        parameter of ``task`` at ``lr``; then ``other``: ``trunk_rest`` (trunk parameters outside
        every stage) at the trunk's rate."""
        out: list[dict[str, Any]] = []
        seen: set[int] = set()

        def add(name: str, params: list[nn.Parameter], rate: float) -> None:
            params = [p for p in params if id(p) not in seen]  # stage views may share modules
            seen.update(id(p) for p in params)
            for group in param_groups(params, weight_decay, no_decay_norm_and_bias=no_decay_norm_and_bias, lr=rate):
                if group["params"]:
                    out.append({**group, "name": name})

        for name in self.stages:
            add(name, [p for m in groups[name] for p in m.parameters()], lr * self.lr_factor(name))
        rest = {id(p) for p in trunk_rest}
        add("head", [p for p in task.parameters() if id(p) not in rest and id(p) not in seen], lr)
        add("other", trunk_rest, lr * self.backbone_lr_mult)
        return out
