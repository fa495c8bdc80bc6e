"""What a trained classifier responds to: saliency, Grad-CAM on a named stage, first-layer filters.

``visionsuite explain --config C --ckpt_path best|last|PATH [--stage stage2] [--images 8]
[--output DIR]`` writes ``saliency.png``, ``gradcam_<stage>.png`` (each test image beside its
map), ``activations_<stage>.png`` (the stage's 16 most active channels for the first image) and
``filters.png``. During training, :class:`~visionsuite.callbacks.ExplanationFigures` logs the
saliency and Grad-CAM of fixed validation images after every validation. Written here rather than with ``grad-cam``/``captum``: the backbone
library's named stages give the hook point directly, and both methods are a few lines on top
of autograd – a dependency would add more than it saves.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

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


def overlay_maps(images: Tensor, maps: Tensor) -> Tensor:
    """Each image (grey or RGB, [0, 1]) beside its map coloured by matplotlib's ``jet``: [N, 2, 3, H, W]."""
    from matplotlib import colormaps

    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    heat = torch.from_numpy(colormaps["jet"](maps.numpy())[..., :3]).permute(0, 3, 1, 2).float()
    return torch.stack([rgb, 0.5 * rgb + 0.5 * heat], dim=1)


def main(args: list[str]) -> int:
    from torchvision.utils import save_image

    from visionsuite.data.augment import to_float
    from visionsuite.export import Deployable
    from visionsuite.trained import load_trained

    parser = argparse.ArgumentParser(prog="visionsuite explain", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--stage", default=None, help="Grad-CAM stage (default: the last backbone stage)")
    parser.add_argument("--images", type=int, default=8, help="how many test images")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--output", type=Path, default=Path("explain"))
    opts = parser.parse_args(args)
    trained = load_trained(opts.config, opts.ckpt_path, data_overrides={"data_dir": opts.data_dir} if opts.data_dir else None)
    backbone = trained.task.model
    stage = opts.stage or list(getattr(backbone, "stages", {"?": None}).keys())[-1]
    layer = stage_module(backbone, stage)
    images = to_float(trained.test_batch(opts.images)["image"])
    model = Deployable(trained.task, trained.normalisation).eval()
    opts.output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, maps in (("saliency", saliency(model, images)), (f"gradcam_{stage}", grad_cam(model, layer, images))):
        path = opts.output / f"{name}.png"
        save_image(overlay_maps(images, maps).flatten(0, 1), path, nrow=2, padding=2)
        written.append(path)
    acts = activation_maps(model, layer, images)
    path = opts.output / f"activations_{stage}.png"
    save_image(nn.functional.interpolate(acts, size=images.shape[-2:], mode="nearest"), path, nrow=4, padding=2)
    written.append(path)
    filters = first_conv_filters(backbone)
    if filters.shape[1] not in (1, 3):
        filters = filters.mean(1, keepdim=True)
    save_image(nn.functional.interpolate(filters, scale_factor=8, mode="nearest"), opts.output / "filters.png", nrow=8, padding=2)
    written.append(opts.output / "filters.png")
    print("Wrote " + ", ".join(str(p) for p in written))
    return 0
