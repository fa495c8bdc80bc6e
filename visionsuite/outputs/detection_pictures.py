"""What people look at: boxes drawn into images, and the W&B box-overlay payload.

Both take detections in the data's class indices ``0..K-1`` and pixel xyxy boxes, the output
of :class:`visionsuite.models.detection.detector.Detector`, and label each box with its class name (and
score, for predictions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from visionsuite.outputs.fonts import label_font


def _captions(labels: Tensor, names: Sequence[str], scores: Tensor | None) -> list[str]:
    if scores is None:
        return [names[i] for i in labels.tolist()]
    return [f"{names[i]} {s:.2f}" for i, s in zip(labels.tolist(), scores.tolist())]


#: pictures whose short side is below this many pixels are enlarged (an integer zoom) before the
#: boxes are drawn, so a label stays legible on a 64x64 scene instead of running off its edge.
MIN_SIDE = 256
#: the zoom never makes the long side longer than this (a 2x5000 strip is not blown up to a poster).
MAX_SIDE = 4096
#: pixels between a label's text and the edge of its filled box.
LABEL_PAD = 1


def display_zoom(height: int, width: int, min_side: int = MIN_SIDE) -> int:
    """The integer enlargement that brings the short side to at least ``min_side`` (1 for a normal
    photo, so its picture keeps the original pixels), the long side kept within :data:`MAX_SIDE`."""
    short, long = min(height, width), max(height, width)
    if short <= 0 or short >= min_side:
        return 1
    return max(1, min(math.ceil(min_side / short), MAX_SIDE // max(long, 1)))


def draw_detections(
    image: Tensor,
    boxes: Tensor,
    labels: Tensor,
    names: Sequence[str],
    scores: Tensor | None = None,
    *,
    width: int = 1,
    min_side: int = MIN_SIDE,
) -> Tensor:
    """``image`` (uint8 ``[C, H, W]``, C = 1 or 3) with the boxes drawn: uint8 ``[3, z·H, z·W]``.

    ``z`` is :func:`display_zoom` (1 unless the short side is under ``min_side``; 0 never zooms):
    a tiny image is enlarged rather than its font shrunk. One colour per class (the palette by class
    index), so the same class looks the same in every picture; each label sits on the box's top
    edge, moved to stay inside the picture and off the labels drawn before it (:func:`label_boxes`).
    """
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ValueError(f"expected a uint8 [C, H, W] image, got {image.dtype} {tuple(image.shape)}")
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    zoom = display_zoom(*rgb.shape[-2:], min_side) if min_side > 0 else 1
    if zoom > 1:
        rgb = rgb.repeat_interleave(zoom, -2).repeat_interleave(zoom, -1)
    if len(boxes) == 0:
        return rgb.clone()
    from PIL import Image, ImageDraw

    palette = class_palette(len(names))
    height, width_px = rgb.shape[-2:]
    short = min(height, width_px)
    line = max(width, round(short / 250))
    font = label_font(max(10, round(short / 35)))
    xyxy = (boxes.detach().float().cpu() * zoom).tolist()
    colours = [palette[i] for i in labels.tolist()]
    captions = _captions(labels, names, scores)
    picture = Image.fromarray(rgb.permute(1, 2, 0).contiguous().numpy())
    draw = ImageDraw.Draw(picture)
    for box, colour in zip(xyxy, colours, strict=True):
        draw.rectangle([round(v) for v in box], outline=colour, width=line)
    for caption, colour, rect in zip(captions, colours, label_boxes(xyxy, captions, (width_px, height), font), strict=True):
        draw.rectangle(rect, fill=colour)
        left, top, _, _ = draw.textbbox((0, 0), caption, font=font)
        ink = (0, 0, 0) if sum(w * c for w, c in zip((0.299, 0.587, 0.114), colour, strict=True)) > 140 else (255, 255, 255)
        draw.text((rect[0] + LABEL_PAD - left, rect[1] + LABEL_PAD - top), caption, fill=ink, font=font)
    return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1).contiguous()


def label_boxes(
    boxes: Sequence[Sequence[float]], captions: Sequence[str], canvas: tuple[int, int], font: Any = None
) -> list[tuple[int, int, int, int]]:
    """Where each caption's filled box goes (``x1, y1, x2, y2``, inclusive pixels) on a ``canvas``
    of ``(width, height)``: just above the box's top-left corner, else just inside it, else under
    the box – the first of these that overlaps no label placed before – shifted left and down
    (or up) so it never leaves the picture. ``font``: a PIL font (default: the labels' own, 10 px)."""
    from PIL import Image, ImageDraw

    font = font if font is not None else label_font(10)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    cw, ch = canvas
    placed: list[tuple[int, int, int, int]] = []
    for (x1, y1, _, y2), caption in zip(boxes, captions, strict=True):
        left, top, right, bottom = measure.textbbox((0, 0), caption, font=font)
        tw, th = right - left + 2 * LABEL_PAD, bottom - top + 2 * LABEL_PAD
        x = min(max(0, round(x1)), max(0, cw - tw))
        candidates = [round(y1) - th, round(y1), round(y2)]
        rects = [(x, y, x + tw - 1, y + th - 1) for y in (min(max(0, c), max(0, ch - th)) for c in candidates)]
        free = [r for r in rects if not any(_overlap(r, p) for p in placed)]
        placed.append(free[0] if free else rects[0])
    return placed


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def class_palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` well-separated colours (evenly spaced hues), stable for a given class index."""
    import colorsys

    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / max(n, 1), 0.9, 1.0)) for i in range(n)]


def _box_data(boxes: Tensor, labels: Tensor, names: Sequence[str], scores: Tensor | None) -> list[dict[str, Any]]:
    out = []
    captions = _captions(labels, names, scores)
    for k, ((x1, y1, x2, y2), cls) in enumerate(zip(boxes.tolist(), labels.tolist())):
        item: dict[str, Any] = {
            "position": {"minX": x1, "minY": y1, "maxX": x2, "maxY": y2},
            "domain": "pixel",
            "class_id": int(cls),
            "box_caption": captions[k],
        }
        if scores is not None:
            item["scores"] = {"score": float(scores[k])}
        out.append(item)
    return out


def wandb_boxes(
    names: Sequence[str],
    prediction: dict[str, Tensor] | None = None,
    target: dict[str, Tensor] | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``boxes=`` argument of ``wandb.Image``: ``predictions`` and/or ``ground_truth``.

    A pure dict (pixel-domain positions, class ids with a ``class_labels`` map, captions with
    name and score), so the task can build it without a W&B run.
    """
    class_labels = {i: str(n) for i, n in enumerate(names)}
    payload = {}
    if prediction is not None:
        payload["predictions"] = {
            "box_data": _box_data(prediction["boxes"], prediction["labels"], names, prediction.get("scores")),
            "class_labels": class_labels,
        }
    if target is not None:
        payload["ground_truth"] = {
            "box_data": _box_data(target["boxes"], target["labels"], names, None),
            "class_labels": class_labels,
        }
    return payload
