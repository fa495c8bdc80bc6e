"""What a trained classifier responds to, computed: saliency, Grad-CAM on a named stage,
activation maps and first-layer filters.

Written here rather than with ``grad-cam``/``captum``: the backbone library's named stages give
the hook point directly, and both methods are a few lines on top of autograd. The ``explain``
command (:mod:`visionsuite.tools.explain`) and the training-time
:class:`~visionsuite.outputs.ExplanationFigures` callback draw what these return.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from visionsuite.errors import VisionSuiteError


class ExplainError(VisionSuiteError):
    """An unknown stage, or a model without the stages the maps need."""


def stage_module(backbone: nn.Module, stage: str) -> nn.Module:
    """The backbone's stage ``stage``; an unknown name raises listing the valid ones."""
    stages = getattr(backbone, "stages", None)
    if not isinstance(stages, nn.ModuleDict) or stage not in stages:
        valid = list(stages.keys()) if isinstance(stages, nn.ModuleDict) else []
        raise ExplainError(f"unknown stage {stage!r}; valid stages: {', '.join(valid) or 'none (no named stages)'}")
    return stages[stage]


def _targets(logits: Tensor, target: Tensor | None) -> Tensor:
    return logits.argmax(1) if target is None else target


def saliency(forward: Callable[[Tensor], Tensor], images: Tensor, target: Tensor | None = None) -> Tensor:
    """|∂ score / ∂ pixel|, maximum over channels, scaled to [0, 1] per image: [N, H, W]."""
    x = images.clone().requires_grad_(True)
    logits = forward(x)
    logits.gather(1, _targets(logits, target)[:, None]).sum().backward()
    grad = x.grad.abs().amax(1)
    return grad / grad.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]


def grad_cam(
    forward: Callable[[Tensor], Tensor], layer: nn.Module, images: Tensor, target: Tensor | None = None
) -> Tensor:
    """Grad-CAM (Selvaraju et al.): ReLU(Σ_k α_k A_k) with α_k the spatial mean of ∂score/∂A_k,
    upsampled to the input and scaled to [0, 1] per image: [N, H, W]."""
    saved: dict[str, Tensor] = {}

    def keep(_: nn.Module, __: object, out: Tensor) -> None:
        out.retain_grad()
        saved["a"] = out

    hook = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = forward(images)
            logits.gather(1, _targets(logits, target)[:, None]).sum().backward()
    finally:
        hook.remove()
    act = saved["a"]
    if act.dim() != 4:
        raise ExplainError(f"Grad-CAM needs a spatial stage output [N, C, H, W], got shape {tuple(act.shape)}")
    weights = act.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * act).sum(1, keepdim=True)).detach()
    cam = nn.functional.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return cam / cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]


def activation_maps(forward: Callable[[Tensor], Tensor], layer: nn.Module, image: Tensor, n: int = 16) -> Tensor:
    """The ``n`` most active channels of ``layer``'s output for one image [1, C, H, W], each
    scaled to [0, 1]: [n, 1, h, w] (what the stage responds to, channel by channel)."""
    saved: dict[str, Tensor] = {}
    hook = layer.register_forward_hook(lambda _m, _i, out: saved.__setitem__("a", out.detach()))
    try:
        with torch.no_grad():
            forward(image[:1])
    finally:
        hook.remove()
    act = saved["a"]
    if act.dim() != 4:
        raise ExplainError(f"activation maps need a spatial stage output [N, C, H, W], got shape {tuple(act.shape)}")
    act = act[0]
    top = act.flatten(1).mean(1).topk(min(n, act.shape[0])).indices
    maps = act[top]
    lo, hi = maps.flatten(1).amin(1)[:, None, None], maps.flatten(1).amax(1)[:, None, None]
    return ((maps - lo) / (hi - lo).clamp_min(1e-12))[:, None]


def first_conv_filters(model: nn.Module) -> Tensor:
    """The first convolution's filters as images [O, C, k, k] in [0, 1] (each scaled alone)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ExplainError(f"{type(model).__name__} has no convolution to show filters of")
    w = conv.weight.detach().float()
    lo, hi = w.flatten(1).amin(1)[:, None, None, None], w.flatten(1).amax(1)[:, None, None, None]
    return (w - lo) / (hi - lo).clamp_min(1e-12)
