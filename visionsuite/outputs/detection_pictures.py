"""What people look at: boxes drawn into images, and the W&B box-overlay payload.

Both take detections in the data's class indices ``0..K-1`` and pixel xyxy boxes, the output
of :class:`visionsuite.models.detection.detector.Detector`, and label each box with its class name (and
score, for predictions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision.utils import draw_bounding_boxes


def _captions(labels: Tensor, names: Sequence[str], scores: Tensor | None) -> list[str]:
    if scores is None:
        return [names[i] for i in labels.tolist()]
    return [f"{names[i]} {s:.2f}" for i, s in zip(labels.tolist(), scores.tolist())]


def draw_detections(
    image: Tensor,
    boxes: Tensor,
    labels: Tensor,
    names: Sequence[str],
    scores: Tensor | None = None,
    *,
    width: int = 1,
) -> Tensor:
    """``image`` (uint8 ``[C, H, W]``, C = 1 or 3) with the boxes drawn: uint8 ``[3, H, W]``.

    One colour per class (torchvision's palette by class index), so the same class looks the
    same in every picture.
    """
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ValueError(f"expected a uint8 [C, H, W] image, got {image.dtype} {tuple(image.shape)}")
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    if len(boxes) == 0:
        return rgb.clone()
    palette = _palette(len(names))
    short = min(rgb.shape[-2:])
    return draw_bounding_boxes(
        rgb, boxes.detach().float().cpu(), labels=_captions(labels, names, scores),
        colors=[palette[i] for i in labels.tolist()], width=max(width, round(short / 250)),
        font=_font(), font_size=max(10, round(short / 35)), fill_labels=True,
    )  # fmt: skip


def _font() -> str | None:
    """A TrueType font for the labels (matplotlib ships DejaVu Sans), so their size can follow
    the image's; ``None`` falls back to PIL's fixed bitmap font."""
    try:
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except (ImportError, ValueError):
        return None


def _palette(n: int) -> list[tuple[int, int, int]]:
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
