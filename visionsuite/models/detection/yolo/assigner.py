"""Task-aligned assignment (TOOD, Feng et al. 2021; YOLOv8's ``TaskAlignedAssigner``).

Which points learn which object is decided by the network's own current predictions: for each
true box, the points inside it are ranked by the alignment ``t = s^alpha * IoU^beta`` (``s``: the
predicted score of the box's class at that point, IoU: of the point's predicted box with the true
one, CIoU clamped at 0 as in YOLOv8), and the ``topk`` best become its positives. A point
claimed by several boxes keeps the one its prediction overlaps most. The classification target
of a positive is not 1 but its alignment rescaled so that each box's best point gets that box's
best IoU: a point is asked to be as confident as it is accurate.

YOLOv8's constants: ``topk`` 10, ``alpha`` 0.5, ``beta`` 6. One difference from its code: a point
claimed by several boxes chooses among those boxes only (Ultralytics takes the highest IoU over
every box the point lies in, which can hand it a box it was not a top-k candidate of).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .boxes import ciou, points_in_boxes


@dataclass
class Assignment:
    """Per point [B, A]: ``fg`` whether it is a positive, ``gt_index`` its box (in the padded
    [B, M] lists), ``labels`` and ``boxes`` [B, A, 4] of that box, ``scores`` [B, A, C] the soft
    classification targets (0 for every class of a negative)."""

    fg: Tensor
    gt_index: Tensor
    labels: Tensor
    boxes: Tensor
    scores: Tensor


class TaskAlignedAssigner:
    """See the module docstring; call with detached predictions (no gradient flows through it)."""

    def __init__(self, num_classes: int, topk: int = 10, alpha: float = 0.5, beta: float = 6.0, eps: float = 1e-9) -> None:
        self.num_classes, self.topk, self.alpha, self.beta, self.eps = num_classes, topk, alpha, beta, eps

    @torch.no_grad()
    def __call__(
        self, scores: Tensor, boxes: Tensor, points: Tensor, gt_labels: Tensor, gt_boxes: Tensor, gt_valid: Tensor
    ) -> Assignment:
        """``scores`` [B, A, C] (probabilities), ``boxes`` [B, A, 4] predicted xyxy, ``points`` [A, 2];
        ``gt_labels`` [B, M], ``gt_boxes`` [B, M, 4], ``gt_valid`` bool [B, M] (padding is False)."""
        b, a, c = scores.shape
        m = gt_boxes.shape[1]
        if m == 0:
            return Assignment(
                fg=torch.zeros(b, a, dtype=torch.bool, device=scores.device),
                gt_index=torch.zeros(b, a, dtype=torch.long, device=scores.device),
                labels=torch.zeros(b, a, dtype=torch.long, device=scores.device),
                boxes=torch.zeros_like(boxes), scores=torch.zeros_like(scores),
            )  # fmt: skip
        inside = points_in_boxes(points, gt_boxes) & gt_valid[..., None]  # [B, M, A]
        cls_score = scores.gather(2, gt_labels[:, None, :].expand(b, a, m)).transpose(1, 2)  # [B, M, A]
        iou = ciou(gt_boxes[:, :, None, :], boxes[:, None, :, :]).clamp(min=0) * inside
        metric = cls_score.pow(self.alpha) * iou.pow(self.beta) * inside
        top = metric.topk(min(self.topk, a), dim=-1).indices
        pos = torch.zeros_like(inside).scatter_(-1, top, True) & inside
        # a point claimed by several boxes keeps the one its prediction overlaps most
        best = iou.masked_fill(~pos, -1.0).argmax(dim=1)  # [B, A]
        several = pos.sum(dim=1) > 1
        pos = torch.where(several[:, None, :], F.one_hot(best, m).transpose(1, 2).bool(), pos)
        fg = pos.any(dim=1)
        gt_index = pos.to(torch.uint8).argmax(dim=1)
        labels = gt_labels.gather(1, gt_index)
        target_boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))
        # soft targets: the alignment, rescaled per box so its best point gets its best IoU
        metric = metric * pos
        best_iou = (iou * pos).amax(dim=-1, keepdim=True)
        norm = (metric * best_iou / (metric.amax(dim=-1, keepdim=True) + self.eps)).amax(dim=1)  # [B, A]
        target = F.one_hot(labels, c).to(scores.dtype) * (norm * fg)[..., None]
        return Assignment(fg=fg, gt_index=gt_index, labels=labels, boxes=target_boxes, scores=target)
