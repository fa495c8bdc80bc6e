"""The named stages of any trunk a task fine-tunes: what ``frozen_stages``, ``unfreeze_at`` and
``stage_lr_decay`` count, for classification, segmentation and detection alike.

A trunk declares its stages with a ``stage_groups()`` method (the library's backbones and encoder
views, the classic U-Net; as smp's encoders declare ``get_stages()``); for the foreign trunks the
tasks build, they are read here: timm models (smp's ``tu-`` encoders) cut after each
``feature_info`` module (``stage<log2 stride>``), and torchvision's ``IntermediateLayerGetter``
bodies (its whole detectors) cut after each returned layer (``layer1`` … for a ResNet).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn

from visionsuite.backbones.freezing import has_parameters
from visionsuite.backbones.timm_adapter import group_by_feature_modules
from visionsuite.errors import ConfigError

StageGroups = dict[str, list[nn.Module]]


def stage_groups_of(trunk: nn.Module) -> StageGroups:
    """``{stage name: its modules}``, shallow first, stages without weights left out."""
    declared = getattr(trunk, "stage_groups", None)
    if callable(declared):
        groups: StageGroups = declared()
    elif _timm_model(trunk) is not None:
        model = _timm_model(trunk)
        info = list(getattr(model.feature_info, "info", model.feature_info))
        names = [n for n, _ in model.named_children()]
        groups = {stage: [model.get_submodule(n) for n in items]
                  for stage, items in group_by_feature_modules(model, names, info).items()}  # fmt: skip
    elif isinstance(trunk, nn.ModuleDict) and isinstance(getattr(trunk, "return_layers", None), dict):
        groups = dict(_cut_after_returned_layers(trunk))
    else:
        raise ConfigError(
            f"the {type(trunk).__name__} trunk names no stages to freeze or rate: use a library backbone, "
            "an smp 'tu-<timm name>' encoder, SegNet, the classic U-Net or a ResNet torchvision detector"
        )
    return {name: modules for name, modules in groups.items() if any(has_parameters(m) for m in modules)}


def _timm_model(trunk: nn.Module) -> Any:
    model = getattr(trunk, "model", None)
    return model if model is not None and getattr(model, "feature_info", None) is not None else None


def _cut_after_returned_layers(body: nn.ModuleDict) -> Iterator[tuple[str, list[nn.Module]]]:
    pending: list[nn.Module] = []
    for name, child in body.named_children():
        pending.append(child)
        if name in body.return_layers:
            yield name, pending
            pending = []
