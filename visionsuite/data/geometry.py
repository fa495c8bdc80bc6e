"""One place for image geometry: resize / centre-crop / letterbox an image with its targets.

Every part of a sample must move together: the image is resampled with antialiased bilinear
interpolation, an index mask with nearest neighbour (interpolating class indices invents
classes), boxes with the same affine map (then clipped to the image; boxes left with no area
are dropped and counted). :func:`fit_sample` returns the map it applied (:class:`Placement`),
so a prediction can be mapped back to the original image, and :func:`affine_boxes` and
:func:`mirror_boxes` are the box transforms the on-device augmentation and test-time flip reuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

#: how an image is brought to the target size: ``crop`` scales to cover it and centre-crops
#: (aspect kept, borders lost), ``letterbox`` scales to fit inside and pads (aspect kept, all
#: content kept), ``stretch`` scales each axis on its own.
ResizeMode = Literal["crop", "letterbox", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("crop", "letterbox", "stretch")


@dataclass(frozen=True)
class Placement:
    """The map ``out = in * scale + offset`` (per axis, pixel units) from source to output."""

    scale_y: float
    scale_x: float
    offset_y: float
    offset_x: float
    source_size: tuple[int, int]
    size: tuple[int, int]


@dataclass
class FittedSample:
    """The output of :func:`fit_sample`; ``dropped_boxes`` counts boxes that left the image."""

    image: Tensor
    placement: Placement
    mask: Tensor | None = None
    boxes: Tensor | None = None
    box_labels: Tensor | None = None
    dropped_boxes: int = 0


def plan(source: tuple[int, int], size: tuple[int, int], mode: ResizeMode) -> tuple[tuple[int, int], Placement]:
    """The resized (H, W) before cropping/padding, and the full placement, for ``mode``."""
    (sh, sw), (h, w) = source, size
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
    if mode == "stretch":
        rh, rw = h, w
    else:
        pick = max if mode == "crop" else min
        s = pick(h / sh, w / sw)
        rh, rw = max(1, round(sh * s)), max(1, round(sw * s))
    top, left = (h - rh) // 2, (w - rw) // 2  # negative = crop, positive = pad
    return (rh, rw), Placement(rh / sh, rw / sw, float(top), float(left), (sh, sw), (h, w))


def _place(x: Tensor, resized: tuple[int, int], placement: Placement, mode: str, fill: float) -> Tensor:
    """Resize ``x`` [N, C, H, W] (float) to ``resized``, then crop/pad it to the placement's size."""
    if tuple(x.shape[-2:]) != resized:
        if mode == "nearest-exact":
            x = F.interpolate(x, size=resized, mode=mode)
        else:
            x = F.interpolate(x, size=resized, mode="bilinear", align_corners=False, antialias=True)
    (h, w), top, left = placement.size, int(placement.offset_y), int(placement.offset_x)
    rh, rw = resized
    # F.pad with negative amounts crops: one op does both
    return F.pad(x, (left, w - rw - left, top, h - rh - top), value=fill)


def affine_boxes(
    boxes: Tensor, scale: Tensor, offset: Tensor, size: tuple[int, int], min_size: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Map xyxy ``boxes`` [M, 4] by ``box * scale + offset``, clip to ``size`` (H, W), drop degenerate.

    ``scale`` and ``offset`` are (y, x) pairs, [2] or per box [M, 2]. Returns the kept boxes and
    the boolean keep mask [M] (so callers keep labels in step and count what was dropped). A box
    is degenerate when clipping leaves it narrower or lower than ``min_size`` pixels.
    """
    scale_xy, offset_xy = scale.flip(-1).to(boxes.dtype), offset.flip(-1).to(boxes.dtype)  # (y, x) → (x, y)
    out = boxes * torch.cat([scale_xy, scale_xy], dim=-1) + torch.cat([offset_xy, offset_xy], dim=-1)
    h, w = size
    out = torch.stack(
        [out[:, 0].clamp(0, w), out[:, 1].clamp(0, h), out[:, 2].clamp(0, w), out[:, 3].clamp(0, h)], dim=1
    )
    keep = ((out[:, 2] - out[:, 0]) >= min_size) & ((out[:, 3] - out[:, 1]) >= min_size)
    return out[keep], keep


def mirror_boxes(boxes: Tensor, width: int) -> Tensor:
    """xyxy ``boxes`` [M, 4] of an image ``width`` pixels wide, in its left-right mirror image
    (a horizontal flip; applied twice it is the identity, so it also maps boxes back)."""
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def fit_sample(
    image: Tensor,
    size: tuple[int, int],
    mode: ResizeMode = "crop",
    mask: Tensor | None = None,
    boxes: Tensor | None = None,
    box_labels: Tensor | None = None,
    fill: int = 0,
    mask_fill: int = 255,
) -> FittedSample:
    """Bring one sample to ``size`` (H, W) with ``mode``; every part moves by the same map.

    ``image`` uint8 [C, H, W] (antialiased bilinear), ``mask`` uint8 [H, W] (nearest; padding
    is ``mask_fill``, the void/ignore value), ``boxes`` float [M, 4] pixel xyxy with
    ``box_labels`` [M] (affine, clipped, boxes without area dropped and counted).
    """
    source = (int(image.shape[-2]), int(image.shape[-1]))
    resized, placement = plan(source, tuple(size), mode)  # type: ignore[arg-type]
    if resized == source and placement.size == source:
        out_image, out_mask = image, mask
    else:
        x = _place(image[None].float(), resized, placement, "bilinear", float(fill))
        out_image = x.round_().clamp_(0, 255).to(torch.uint8)[0]
        out_mask = None
        if mask is not None:
            m = _place(mask[None, None].float(), resized, placement, "nearest-exact", float(mask_fill))
            out_mask = m.to(mask.dtype)[0, 0]
    out = FittedSample(out_image, placement, mask=out_mask)
    if boxes is not None:
        scale = torch.tensor([placement.scale_y, placement.scale_x])
        offset = torch.tensor([placement.offset_y, placement.offset_x])
        out.boxes, keep = affine_boxes(boxes.float(), scale, offset, placement.size)
        out.box_labels = box_labels[keep] if box_labels is not None else None
        out.dropped_boxes = int((~keep).sum())
    return out


def boxes_to_source(boxes: Tensor, placement: Placement) -> Tensor:
    """Map xyxy ``boxes`` in the fitted image back to the source image (the inverse of the
    placement), clipped to the source size: where predictions on a letterboxed image belong."""
    scale = torch.tensor([placement.scale_x, placement.scale_y] * 2, dtype=boxes.dtype, device=boxes.device)
    offset = torch.tensor([placement.offset_x, placement.offset_y] * 2, dtype=boxes.dtype, device=boxes.device)
    out = (boxes - offset) / scale
    h, w = placement.source_size
    limit = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
    return torch.minimum(out.clamp(min=0), limit)


def restore(x: Tensor, placement: Placement) -> Tensor:
    """Map ``x`` [N, C, H, W] (float: logits, probabilities) from the fitted image back onto the
    source image: the inverse of :func:`fit_sample`'s placement, so a prediction made on a
    letterboxed (or cropped, or stretched) image lands at the original size, pixel for pixel.

    Letterbox padding is cut away; what a ``crop`` cut off is filled with the nearest predicted
    border (the model never saw it); then bilinear resize to ``placement.source_size``.
    """
    (h, w), top, left = placement.size, int(placement.offset_y), int(placement.offset_x)
    (sh, sw) = placement.source_size
    rh, rw = max(1, round(sh * placement.scale_y)), max(1, round(sw * placement.scale_x))
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + rh, h), min(left + rw, w)
    x = x[..., y0:y1, x0:x1]
    pads = (x0 - left, left + rw - x1, y0 - top, top + rh - y1)  # what the crop cut off, per side
    if any(pads):
        x = F.pad(x, pads, mode="replicate")
    if tuple(x.shape[-2:]) != (sh, sw):
        x = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False)
    return x
