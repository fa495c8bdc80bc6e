"""What a detection test accumulates for its figures, beside the mAP numbers: a detection
confusion matrix, and mAP's precision table (the precision-recall curves).

The confusion matrix follows Ultralytics' ``ConfusionMatrix.process_batch`` (YOLOv5/v8): per image,
boxes above the score threshold are matched to ground truth class-agnostically, each pair above
the IoU threshold a candidate, the best IoU first, one detection per true box and one true box per
detection. A matched pair counts at (true class, predicted class) – the diagonal, or a class
confusion; an unmatched true box is *missed* (predicted "background"), an unmatched detection a
*false positive* (true "background"). Unlike Ultralytics, which skips them in an image where no
pair matched at all, every unmatched detection is counted. The IoU bound is inclusive, as COCO's.
Rows are the true classes, as in the classification task's matrix (Ultralytics draws the transpose).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import box_iou

from visionsuite.core.private_api import coco_backend_name

#: index of IoU 0.5 in COCO's thresholds (.50:.05:.95), of area "all", of the largest max-detections.
IOU_50, AREA_ALL, MAX_DETS = 0, 0, -1


class DetectionConfusionMatrix(Metric):
    """``[K + 1, K + 1]`` counts: rows true class then background (false positives), columns
    predicted class then background (missed boxes). Sum-reduced, so it is exact under DDP."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, num_classes: int, score_thresh: float = 0.05, iou_thresh: float = 0.5, **kwargs: Any) -> None:
        """
        Args:
            num_classes: object classes (labels ``0..K-1``); the background slot is added here.
            score_thresh: detections scoring at or below it are left out (the detector's own rule).
            iou_thresh: least IoU of a match.
        """
        super().__init__(**kwargs)
        self.num_classes, self.score_thresh, self.iou_thresh = int(num_classes), float(score_thresh), float(iou_thresh)
        k = self.num_classes + 1
        self.add_state("matrix", default=torch.zeros(k, k, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: list[dict[str, Tensor]], target: list[dict[str, Tensor]]) -> None:
        """``preds`` per image ``{"boxes" xyxy, "scores", "labels"}``; ``target`` ``{"boxes", "labels"}``."""
        for pred, truth in zip(preds, target, strict=True):
            keep = pred["scores"] > self.score_thresh
            self._update_image(pred["boxes"][keep], pred["labels"][keep].long(), truth["boxes"], truth["labels"].long())

    def _update_image(self, boxes: Tensor, labels: Tensor, true_boxes: Tensor, true_labels: Tensor) -> None:
        k = self.num_classes
        given = torch.cat([labels, true_labels.to(labels.device)])
        if len(given) and (int(given.min()) < 0 or int(given.max()) >= k):  # would count in another cell
            raise ValueError(f"DetectionConfusionMatrix: labels must lie in 0..{k - 1} (num_classes={k})")
        gi, di = match_boxes(true_boxes, boxes, self.iou_thresh)
        rows = [true_labels[gi]]
        cols = [labels[di]]
        missed = torch.ones(len(true_labels), dtype=torch.bool, device=true_labels.device)
        missed[gi] = False
        rows.append(true_labels[missed])
        cols.append(torch.full_like(true_labels[missed], k))
        unmatched = torch.ones(len(labels), dtype=torch.bool, device=labels.device)
        unmatched[di] = False
        rows.append(torch.full_like(labels[unmatched], k))
        cols.append(labels[unmatched])
        flat = torch.cat(rows).to(self.matrix.device) * (k + 1) + torch.cat(cols).to(self.matrix.device)
        self.matrix += torch.bincount(flat, minlength=(k + 1) ** 2).view(k + 1, k + 1)

    def compute(self) -> Tensor:
        return self.matrix


def match_boxes(true_boxes: Tensor, boxes: Tensor, iou_thresh: float) -> tuple[Tensor, Tensor]:
    """Indices ``(true, detected)`` of matched pairs, Ultralytics' way: candidate pairs with IoU
    ``>= iou_thresh``, best IoU first; each detection keeps its best true box, then each true box
    its best remaining detection (two passes, as ``process_batch``'s two ``np.unique``)."""
    empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
    if not len(true_boxes) or not len(boxes):
        return empty, empty
    iou = box_iou(true_boxes.float(), boxes.float().to(true_boxes.device))
    gi, di = torch.nonzero(iou >= iou_thresh, as_tuple=True)
    order = iou[gi, di].argsort(descending=True, stable=True)
    gi, di = gi[order], di[order]
    first = _first_of_each(di, len(boxes))
    gi, di = gi[first], di[first]
    first = _first_of_each(gi, len(true_boxes))
    return gi[first], di[first]


def _first_of_each(keys: Tensor, n: int) -> Tensor:
    """A mask of the first occurrence of each value in ``keys`` (values in ``0..n-1``)."""
    position = torch.arange(len(keys), device=keys.device)
    first = torch.full((n,), len(keys), dtype=torch.long, device=keys.device).scatter_reduce(
        0, keys, position, reduce="amin"
    )
    return first[keys] == position


class PrecisionTableMAP(MeanAveragePrecision):
    """``MeanAveragePrecision`` that also returns COCO's precision table ``precision``
    ``[T, R, K, A, M]`` (``extended_summary``), less the per-image IoU dict that option adds: it is
    no tensor, and the epoch loop keeps and logs tensors only."""

    @classmethod
    def like(cls, metric: MeanAveragePrecision) -> PrecisionTableMAP:
        """The same evaluation as ``metric`` (box format, thresholds, classes, backend), with the table."""
        return cls(
            box_format=metric.box_format, iou_type=metric.iou_type, iou_thresholds=metric.iou_thresholds,
            rec_thresholds=metric.rec_thresholds, max_detection_thresholds=metric.max_detection_thresholds,
            class_metrics=metric.class_metrics, average=metric.average, backend=coco_backend_name(metric),
            extended_summary=True,
        )  # fmt: skip

    def compute(self) -> dict[str, Tensor]:
        out = super().compute()
        out.pop("ious", None)
        return out


def precision_at_50(table: Tensor) -> Tensor:
    """``[R, K]``: COCO's precision table ``[T, R, K, A, M]`` at IoU 0.5, all areas, the largest
    max-detections: per class, its precision at the 101 recall points whose mean is its AP@.5."""
    return table[IOU_50, :, :, AREA_ALL, MAX_DETS].float()


def class_curves(precision_50: Tensor | None, classes: Tensor | None) -> dict[int, tuple[Tensor, float]]:
    """Class → (precision at the 101 recall points at IoU 0.5, AP@.5: their mean, COCO's ``map_50``
    of that class), for the classes with ground truth (COCO writes -1 for the others).
    ``precision_50``: :func:`precision_at_50`'s ``[R, K]``, columns aligned with ``classes`` (mAP's
    ``classes``); empty when either is missing or pooled over classes (``average="micro"``)."""
    if precision_50 is None or classes is None or precision_50.ndim != 2 or precision_50.shape[1] != classes.numel():
        return {}
    curves: dict[int, tuple[Tensor, float]] = {}
    for k, cls in enumerate(classes.reshape(-1).tolist()):
        precision = precision_50[:, k]
        if bool((precision >= 0).all()):
            curves[int(cls)] = (precision, float(precision.mean()))
    return curves
