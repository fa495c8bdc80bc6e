"""The YOLO-style detector: backbone + FPN (top-down) → PAN (bottom-up) → decoupled head.

Speaks torchvision's detector protocol, so :class:`~visionsuite.models.detection.detector.Detector`
wraps it like the others: in training ``model(images, targets)`` returns named losses, in eval
``model(images)`` returns per image ``{"boxes" (xyxy batch pixels), "scores", "labels"}``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

from visionsuite.errors import ConfigError

from .boxes import anchor_points, distances_to_boxes
from .head import DecoupledHead
from .loss import YOLOLoss, expected_distances
from .neck import PANBottomUp


class YOLODetector(nn.Module):
    """YOLOv8-style detection on ``backbone`` (a ``BackboneWithFPN``: an ordered dict of maps of
    ``channels`` channels whose ``strides`` double level to level, e.g. 8, 16, 32).

    Options (``head_options`` of the task): ``reg_max`` bins per side (16), ``branch_convs`` 3x3
    convs per head branch (2), ``pan_depth`` bottlenecks per PAN block (1), ``topk_candidates``
    (class, point) pairs kept before NMS per image (1000), the loss weights ``box_weight`` /
    ``cls_weight`` / ``dfl_weight`` (7.5 / 0.5 / 1.5) and the assigner's ``tal_topk`` / ``tal_alpha``
    / ``tal_beta`` (10 / 0.5 / 6).
    """

    def __init__(
        self, backbone: nn.Module, num_classes: int, *, strides: Sequence[int], channels: int,
        image_size: tuple[int, int], score_thresh: float = 0.05, nms_thresh: float = 0.5,
        detections_per_img: int = 100, reg_max: int = 16, branch_convs: int = 2, pan_depth: int = 1,
        topk_candidates: int = 1000, box_weight: float = 7.5, cls_weight: float = 0.5, dfl_weight: float = 1.5,
        tal_topk: int = 10, tal_alpha: float = 0.5, tal_beta: float = 6.0,
    ) -> None:  # fmt: skip
        super().__init__()
        strides = [int(s) for s in strides]
        if any(b != 2 * a for a, b in itertools.pairwise(strides)):
            raise ConfigError(
                f"the yolo head needs FPN levels whose strides double (e.g. out_strides [8, 16, 32]), got strides {strides}"
            )
        if reg_max < 2 or branch_convs < 1 or pan_depth < 1 or tal_topk < 1:
            raise ConfigError("yolo head options: reg_max must be >= 2, branch_convs, pan_depth and tal_topk >= 1")
        self.backbone, self.num_classes, self.strides = backbone, num_classes, strides
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img
        self.topk_candidates = topk_candidates
        self.neck = PANBottomUp(channels, len(strides), depth=pan_depth)
        self.head = DecoupledHead(channels, num_classes, len(strides), reg_max=reg_max, branch_convs=branch_convs)
        h, w = image_size
        self.head.init_biases([(h / s) * (w / s) for s in strides])
        self.loss = YOLOLoss(
            num_classes, reg_max=reg_max, box_weight=box_weight, cls_weight=cls_weight, dfl_weight=dfl_weight,
            topk=tal_topk, alpha=tal_alpha, beta=tal_beta,
        )  # fmt: skip

    def forward(
        self, images: Tensor | list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        batch = images if isinstance(images, Tensor) else torch.stack(list(images))
        feats = list(self.backbone(batch).values())
        if len(feats) != len(self.strides):
            raise ValueError(f"the backbone returned {len(feats)} levels, the head was built for {len(self.strides)}")
        feats = self.neck(feats)
        cls_logits, box_logits = self.head(feats)
        points, strides = anchor_points([tuple(f.shape[-2:]) for f in feats], self.strides, batch.device)
        if self.training:
            if targets is None:
                raise ValueError("training the yolo detector needs targets")
            return self.loss(cls_logits.float(), box_logits.float(), points, strides, targets)
        return self.postprocess(cls_logits.float(), box_logits.float(), points, strides, tuple(batch.shape[-2:]))

    @torch.no_grad()
    def postprocess(
        self, cls_logits: Tensor, box_logits: Tensor, points: Tensor, strides: Tensor, size: tuple[int, int]
    ) -> list[dict[str, Tensor]]:
        """Boxes from the expected side distances, per-class sigmoid scores above ``score_thresh``
        (an object may be kept under several classes), the ``topk_candidates`` best, class-aware NMS
        at ``nms_thresh``, then the ``detections_per_img`` best."""
        h, w = size
        boxes = distances_to_boxes(points, expected_distances(box_logits) * strides[:, None])
        limit = torch.tensor([w, h, w, h], device=boxes.device, dtype=boxes.dtype)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        scores = cls_logits.sigmoid()
        c = scores.shape[-1]
        out = []
        for image_boxes, image_scores in zip(boxes, scores):
            flat = image_scores.flatten()
            keep = (flat > self.score_thresh).nonzero().squeeze(1)
            if len(keep) > self.topk_candidates:
                keep = keep[flat[keep].topk(self.topk_candidates).indices]
            point, label = keep // c, keep % c
            cand_boxes, cand_scores = image_boxes[point], flat[keep]
            kept = batched_nms(cand_boxes, cand_scores, label, self.nms_thresh)[: self.detections_per_img]
            out.append({"boxes": cand_boxes[kept], "scores": cand_scores[kept], "labels": label[kept]})
        return out
