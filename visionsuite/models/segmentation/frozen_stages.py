"""Freeze the first stages of a segmentation model's encoder (mmsegmentation's ``frozen_stages``,
torchvision detection's ``trainable_backbone_layers`` counted from the input side).

Why: a pretrained encoder's first stages compute generic edges and textures that a small dataset
barely improves, yet they run at the highest resolutions. Frozen – weights without gradients and
batch norms turned into timm's ``FrozenBatchNorm2d`` (fixed statistics, in every mode, so no
``train()`` call undoes it) – they need no backward at all, since nothing before them trains:
on this CPU the 15-minute smp U-Net-Lite0 recipe takes ~1.25x the steps with 3 stages frozen
(``benchmarks/results/segmentation.md``).

A stage is what computes one output stride, shallow first (stage 1 ends at the first feature map,
stem included). Every encoder this suite builds is covered: the library encoder view (``unet:<backbone>``,
SegNet's VGG), the classic U-Net's levels, and timm models (smp's ``tu-`` encoders). smp's own
encoders (``resnet34`` …) expose no stages and are refused with a one-line error.
"""

from __future__ import annotations

from timm.layers import freeze_batch_norm_2d
from torch import nn

from visionsuite.backbones.timm_adapter import group_by_feature_modules
from visionsuite.errors import ConfigError


def encoder_stages(encoder: nn.Module) -> list[list[str]]:
    """Qualified names (relative to ``encoder``) of the modules of each stage, shallow first."""
    timm_model = getattr(encoder, "model", None)
    info = getattr(timm_model, "feature_info", None)
    if timm_model is not None and info is not None:  # smp TimmUniversalEncoder, the library's TimmEncoder
        info = list(getattr(info, "info", info))  # features_only models wrap the dicts in a FeatureInfo
        names = [n for n, _ in timm_model.named_children()]
        groups = group_by_feature_modules(timm_model, names, info)
        return [[f"model.{n}" for n in group] for group in groups.values()]
    stages, feature_info = getattr(encoder, "stages", None), getattr(encoder, "feature_info", None)
    if isinstance(stages, nn.ModuleDict) and feature_info:  # library Backbone or its encoder view
        taps, groups, pending = {i.stage for i in feature_info}, [], []
        for name in stages:
            pending.append(f"stages.{name}")
            if name in taps:
                groups.append(pending)
                pending = []
        return groups
    levels = getattr(encoder, "levels", None)
    if isinstance(levels, nn.ModuleList):  # the classic U-Net's contracting path
        return [[f"levels.{k}"] for k in range(len(levels))]
    raise ConfigError(
        f"frozen_encoder_stages: the {type(encoder).__name__} encoder exposes no stages; use a library "
        "backbone (unet:<name>), SegNet, the classic U-Net or an smp 'tu-<timm name>' encoder"
    )


def freeze_encoder_stages(encoder: nn.Module, n: int) -> None:
    """Freeze the first ``n`` stages of ``encoder`` in place."""
    groups = encoder_stages(encoder)
    if not 0 <= n <= len(groups):
        raise ConfigError(f"frozen_encoder_stages must be in [0, {len(groups)}] for this encoder, got {n}")
    for name in (name for group in groups[:n] for name in group):
        module = encoder.get_submodule(name)
        module.requires_grad_(False)
        replacement = freeze_batch_norm_2d(module)  # converts inside; returns a new module for a bare BN
        if replacement is not module:
            parent, _, attr = name.rpartition(".")
            setattr(encoder.get_submodule(parent) if parent else encoder, attr, replacement)
