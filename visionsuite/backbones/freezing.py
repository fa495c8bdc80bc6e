"""Freezing part of a network and naming its stages: one mechanism for every task.

Classification's fine-tuning regimes, the ``frozen_stages`` option every task shares and
:meth:`Backbone.freeze` all end here. A frozen module keeps its weights (``requires_grad`` off)
and its batch-norm statistics: its norms are put in eval mode and flagged, and every ``train()``
of a :class:`~visionsuite.backbones.Backbone` or of a task puts flagged norms back in eval mode
(:func:`keep_frozen_norms`). Nothing before a frozen first stage trains, so autograd stops above
it: the backward pass never runs through it.

Why a flag and not timm's/torchvision's ``FrozenBatchNorm2d`` (which the segmentation encoders used
until the two mechanisms became one): it can be undone (scheduled unfreezing, ``unfreeze_at``),
the modules keep their types (a checkpoint of a frozen run loads into an unfrozen model, and the
other way round) and the state-dict keys stay those of the pretrained weights. Both run a frozen
norm as the same affine map and cost the same per step within noise on the smp U-Net-Lite0 with
three frozen encoder stages (``benchmarks/results/frozen_norms.md``). Whole
torchvision detectors keep torchvision's own
``FrozenBatchNorm2d``: there it is part of the architecture its COCO weights were trained with.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

#: the attribute that marks a norm layer frozen (read by every ``train()`` that keeps it in eval).
FROZEN_FLAG = "_vs_frozen"


def set_frozen(modules: Iterable[nn.Module], frozen: bool, *, training: bool) -> None:
    """Freeze (or unfreeze) ``modules`` in place: their parameters' ``requires_grad``, and their
    batch norms' mode and flag. ``training``: the mode an unfrozen norm returns to (its owner's)."""
    for module in modules:
        module.requires_grad_(not frozen)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if frozen:
                    m.eval()
                    setattr(m, FROZEN_FLAG, True)
                elif getattr(m, FROZEN_FLAG, False):
                    setattr(m, FROZEN_FLAG, False)
                    m.train(training)


def keep_frozen_norms(root: nn.Module) -> None:
    """Put every flagged norm below ``root`` back in eval mode (call after ``root.train()``)."""
    for m in root.modules():
        if getattr(m, FROZEN_FLAG, False):
            m.eval()


def has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None
