"""YOLOv8's losses: BCE on the assigner's soft targets, CIoU and distribution focal loss on the boxes.

Every term is summed over points and divided by the sum of the soft targets (the positives'
total alignment), and each positive's box terms are weighted by its target, so well-aligned
points dominate. Weights 7.5 (CIoU), 0.5 (classification), 1.5 (DFL) as YOLOv8's defaults.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .assigner import TaskAlignedAssigner
from .boxes import boxes_to_distances, ciou, distances_to_boxes


def distribution_focal_loss(logits: Tensor, target: Tensor) -> Tensor:
    """DFL (Li et al., 2020) of side distributions ``logits`` [..., R] for distances ``target`` [...]
    in bins, ``0 <= target < R - 1``: cross-entropy to the two bins around the target, weighted by
    its closeness to each, ``-(w_l log p_l + w_r log p_r)`` with ``l = floor(t)``, ``r = l + 1``,
    ``w_l = r - t``, ``w_r = t - l``. Minimal (the entropy of that pair) when the distribution puts
    ``w_l`` on ``l`` and ``w_r`` on ``r``, whose expectation is exactly ``t``."""
    left = target.floor().long()
    right = left + 1
    w_left = right.to(target.dtype) - target
    logp = F.log_softmax(logits, dim=-1)
    lp_left = logp.gather(-1, left[..., None])[..., 0]
    lp_right = logp.gather(-1, right[..., None])[..., 0]
    return -(lp_left * w_left + lp_right * (1 - w_left))


def expected_distances(box_logits: Tensor) -> Tensor:
    """The expectation (in bins, i.e. strides) of each side's distribution: [..., 4, R] → [..., 4]."""
    bins = torch.arange(box_logits.shape[-1], device=box_logits.device, dtype=box_logits.dtype)
    return box_logits.softmax(dim=-1) @ bins


def pad_targets(targets: list[dict[str, Tensor]], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Ragged per-image ``{"boxes", "labels"}`` → padded ``boxes`` [B, M, 4], ``labels`` [B, M], ``valid`` [B, M]."""
    m = max((len(t["boxes"]) for t in targets), default=0)
    b = len(targets)
    boxes = torch.zeros(b, m, 4, device=device)
    labels = torch.zeros(b, m, dtype=torch.long, device=device)
    valid = torch.zeros(b, m, dtype=torch.bool, device=device)
    for i, t in enumerate(targets):  # B small copies; the assignment itself is batched
        n = len(t["boxes"])
        boxes[i, :n], labels[i, :n], valid[i, :n] = t["boxes"], t["labels"], True
    return boxes, labels, valid


class YOLOLoss(nn.Module):
    """Named, weighted losses ``{"classification", "bbox_ciou", "bbox_dfl"}`` of one batch."""

    def __init__(
        self, num_classes: int, reg_max: int = 16, box_weight: float = 7.5, cls_weight: float = 0.5,
        dfl_weight: float = 1.5, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.reg_max = reg_max
        self.weights = {"bbox_ciou": box_weight, "classification": cls_weight, "bbox_dfl": dfl_weight}
        self.assigner = TaskAlignedAssigner(num_classes, topk=topk, alpha=alpha, beta=beta)

    def forward(
        self, cls_logits: Tensor, box_logits: Tensor, points: Tensor, strides: Tensor, targets: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """``cls_logits`` [B, A, C], ``box_logits`` [B, A, 4, R], ``points`` [A, 2] and ``strides`` [A]
        in pixels, ``targets`` per image ``{"boxes" xyxy pixels, "labels" 0..C-1}``."""
        pred_boxes = distances_to_boxes(points, expected_distances(box_logits) * strides[:, None])
        gt_boxes, gt_labels, valid = pad_targets(targets, cls_logits.device)
        assigned = self.assigner(
            cls_logits.detach().sigmoid(), pred_boxes.detach(), points, gt_labels, gt_boxes.to(pred_boxes.dtype), valid
        )
        total = assigned.scores.sum().clamp(min=1.0)
        cls = F.binary_cross_entropy_with_logits(cls_logits, assigned.scores, reduction="sum") / total
        fg = assigned.fg
        if fg.any():
            weight = assigned.scores.sum(dim=-1)[fg]
            box = ((1 - ciou(pred_boxes[fg], assigned.boxes[fg])) * weight).sum() / total
            sides = (boxes_to_distances(points, assigned.boxes) / strides[:, None]).clamp(0, self.reg_max - 1 - 0.01)
            dfl = (distribution_focal_loss(box_logits[fg], sides[fg]).mean(dim=-1) * weight).sum() / total
        else:  # no positives: zero box terms that still reach the graph (DDP wants every parameter used)
            box = dfl = box_logits.sum() * 0.0
        raw = {"classification": cls, "bbox_ciou": box, "bbox_dfl": dfl}
        return {name: value * self.weights[name] for name, value in raw.items()}
