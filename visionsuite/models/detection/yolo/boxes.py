"""Box geometry of the YOLO head: anchor points, point-to-side distances, Complete IoU.

Boxes are xyxy in batch pixels; a point is the centre of a feature-map cell, ``(i + 0.5) * stride``.
A box is predicted as its four distances (left, top, right, bottom) from such a point.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def anchor_points(
    sizes: list[tuple[int, int]], strides: list[int], device: torch.device, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """Cell centres of every level, finest first: points [A, 2] (x, y) in pixels and their stride [A]."""
    points, per_point = [], []
    for (h, w), s in zip(sizes, strides, strict=True):
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([gx, gy], dim=-1).reshape(-1, 2))
        per_point.append(torch.full((h * w,), float(s), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(per_point)


def distances_to_boxes(points: Tensor, ltrb: Tensor) -> Tensor:
    """xyxy boxes from distances ``ltrb`` [..., A, 4] to the sides of ``points`` [A, 2]."""
    return torch.cat([points - ltrb[..., :2], points + ltrb[..., 2:]], dim=-1)


def boxes_to_distances(points: Tensor, boxes: Tensor) -> Tensor:
    """Distances (left, top, right, bottom) from ``points`` [A, 2] to the sides of ``boxes`` [..., A, 4]."""
    return torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], dim=-1)


def points_in_boxes(points: Tensor, boxes: Tensor, eps: float = 1e-9) -> Tensor:
    """bool [..., M, A]: point ``a`` lies strictly inside box ``m`` (``boxes`` [..., M, 4], ``points`` [A, 2])."""
    ltrb = boxes_to_distances(points, boxes[..., :, None, :].expand(*boxes.shape[:-1], len(points), 4))
    return ltrb.amin(-1) > eps


def ciou(a: Tensor, b: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU (Zheng et al., AAAI 2020) of xyxy boxes ``a`` and ``b`` (broadcast over [..., 4]).

    ``CIoU = IoU - rho^2 / c^2 - alpha * v``: ``rho`` the distance between the centres, ``c`` the
    diagonal of the smallest box enclosing both, ``v = 4 / pi^2 (atan(w_b / h_b) - atan(w_a / h_a))^2``
    the aspect-ratio mismatch and ``alpha = v / (1 - IoU + v)``, held constant for the gradient
    (the paper's trade-off weight; torchvision's ``complete_box_iou_loss`` is ``1 - CIoU`` with the
    same detached ``alpha``). ``eps`` keeps degenerate boxes finite. Symmetric in ``a`` and ``b``.
    """
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    wa, ha, wb, hb = ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1
    inter = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0) * (
        torch.minimum(ay2, by2) - torch.maximum(ay1, by1)
    ).clamp(min=0)
    iou = inter / (wa * ha + wb * hb - inter + eps)
    cw = torch.maximum(ax2, bx2) - torch.minimum(ax1, bx1)
    ch = torch.maximum(ay2, by2) - torch.minimum(ay1, by1)
    rho2 = ((bx1 + bx2 - ax1 - ax2) ** 2 + (by1 + by2 - ay1 - ay2) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(wb / (hb + eps)) - torch.atan(wa / (ha + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + 1 + eps)
    return iou - rho2 / (cw**2 + ch**2 + eps) - alpha * v
