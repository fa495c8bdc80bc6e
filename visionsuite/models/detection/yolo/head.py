"""YOLOv8's decoupled, anchor-free head: per level, separate classification and box branches.

Coupling both tasks in one branch (YOLOv1-v5) makes the features compromise between what
classifies and what localises; YOLOX and YOLOv8 give each its own convs. The box branch
predicts, for each of the four sides, a distribution over ``reg_max`` bins (distances 0 ..
``reg_max - 1`` strides, Generalized Focal Loss, Li et al. 2020) instead of one number, so an
ambiguous edge can stay uncertain; the distance is its expectation. Branches are not shared
across levels (YOLOv8), unlike RetinaNet's and FCOS's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .neck import conv_bn_silu


def _branch(in_ch: int, hidden: int, out_ch: int, convs: int) -> nn.Sequential:
    layers = [conv_bn_silu(in_ch if i == 0 else hidden, hidden, 3) for i in range(convs)]
    return nn.Sequential(*layers, nn.Conv2d(hidden, out_ch, 1))


class DecoupledHead(nn.Module):
    """Classification logits [B, A, C] and side-distribution logits [B, A, 4, reg_max] over the
    points of every level (finest first), from maps of ``channels`` channels."""

    def __init__(self, channels: int, num_classes: int, levels: int, reg_max: int = 16, branch_convs: int = 2) -> None:
        super().__init__()
        self.num_classes, self.reg_max = num_classes, reg_max
        box_width = max(16, channels // 4, 4 * reg_max)  # YOLOv8's widths
        cls_width = max(channels, min(num_classes, 100))
        self.box = nn.ModuleList(_branch(channels, box_width, 4 * reg_max, branch_convs) for _ in range(levels))
        self.cls = nn.ModuleList(_branch(channels, cls_width, num_classes, branch_convs) for _ in range(levels))

    def init_biases(self, cells_per_level: list[float]) -> None:
        """YOLOv8's start: box logits 1 (a flat distribution), class logits so that each level
        predicts about 5 objects per image at first (``log(5 / C / cells)``): the background
        dominates, and a 0.5 start would swamp the BCE with false positives."""
        for box, cls, cells in zip(self.box, self.cls, cells_per_level, strict=True):
            nn.init.constant_(box[-1].bias, 1.0)
            nn.init.constant_(cls[-1].bias, math.log(5 / self.num_classes / max(cells, 1.0)))

    def forward(self, feats: list[Tensor]) -> tuple[Tensor, Tensor]:
        cls, box = [], []
        for f, cls_branch, box_branch in zip(feats, self.cls, self.box, strict=True):
            b = f.shape[0]
            cls.append(cls_branch(f).flatten(2).transpose(1, 2))  # [B, HW, C]
            box.append(box_branch(f).reshape(b, 4, self.reg_max, -1).permute(0, 3, 1, 2))  # [B, HW, 4, R]
        return torch.cat(cls, dim=1), torch.cat(box, dim=1)
