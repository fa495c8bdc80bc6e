"""Flip test-time augmentation for detectors: the detections of an image and of its mirror image
(mapped back), fused box by box.

Two forward passes per image. Boxes of the same class that overlap (IoU ≥ the NMS threshold) form
one object: its score is the mean over the two passes of each pass's best score for it (0 for a
pass that missed it), and its box the score-weighted mean of their boxes — weighted boxes fusion
(Solovyev et al., 2019) with the two passes as the two models. Agreement raises an object above
what either pass alone found; a detection one pass made alone keeps half its score. (A plain NMS
over both sets, which keeps the higher score and drops the other, measured no better than one pass
here: ``benchmarks/results/detection.md``.)
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou

from visionsuite.data.geometry import mirror_boxes

Detections = list[dict[str, Tensor]]


def fuse_passes(boxes: Tensor, scores: Tensor, labels: Tensor, passes: Tensor, num_passes: int, iou_thresh: float,
                max_detections: int) -> dict[str, Tensor]:  # fmt: skip
    """One image's detections from ``num_passes`` passes (``passes``: the pass of each box), fused.

    The clusters are those of class-wise NMS: each box joins the kept box of its class it overlaps
    most. Returns the ``max_detections`` highest fused scores, in descending order."""
    if len(boxes) == 0:
        return {"boxes": boxes, "scores": scores, "labels": labels}
    keep = batched_nms(boxes, scores, labels, iou_thresh)
    overlap = box_iou(boxes, boxes[keep]).masked_fill(labels[:, None] != labels[keep][None, :], -1.0)
    cluster = overlap.argmax(1)  # a kept box overlaps itself with IoU 1
    slots = torch.zeros(len(keep) * num_passes, dtype=scores.dtype, device=scores.device)
    best = slots.scatter_reduce(0, cluster * num_passes + passes, scores, reduce="amax", include_self=True)
    fused_scores = best.view(len(keep), num_passes).sum(1) / num_passes
    weight = torch.zeros(len(keep), dtype=scores.dtype, device=scores.device).index_add(0, cluster, scores)
    weighted = torch.zeros_like(boxes[keep]).index_add(0, cluster, boxes * scores[:, None])
    fused_boxes = torch.where(weight[:, None] > 0, weighted / weight.clamp_min(1e-12)[:, None], boxes[keep])  # all-zero scores: the kept box
    order = fused_scores.argsort(descending=True, stable=True)[:max_detections]
    return {"boxes": fused_boxes[order], "scores": fused_scores[order], "labels": labels[keep][order]}


def merge_flipped(direct: Detections, mirrored: Detections, width: int, iou_thresh: float, max_detections: int) -> Detections:
    """Per image: ``direct`` and the un-mirrored ``mirrored`` detections, fused (:func:`fuse_passes`)."""
    merged = []
    for a, b in zip(direct, mirrored, strict=True):
        boxes = torch.cat([a["boxes"], mirror_boxes(b["boxes"], width)])
        passes = torch.cat([torch.zeros_like(a["labels"]), torch.ones_like(b["labels"])])
        merged.append(fuse_passes(boxes, torch.cat([a["scores"], b["scores"]]), torch.cat([a["labels"], b["labels"]]),
                                  passes, 2, iou_thresh, max_detections))  # fmt: skip
    return merged
