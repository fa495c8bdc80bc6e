"""COCO-style detection metrics: torchmetrics ``MeanAveragePrecision`` on the faster backend.

torchmetrics evaluates through ``pycocotools`` by default; ``faster-coco-eval`` gives the same
numbers (same 101-point interpolated AP, same matching) several times faster — see
``benchmarks/results/map_backend.md`` — so it is the one backend used everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor
from torchmetrics.detection import MeanAveragePrecision

#: the evaluation backend (measured against pycocotools in benchmarks/results/map_backend.md).
MAP_BACKEND = "faster_coco_eval"
#: COCO's own IoU and recall thresholds, in float64 exactly as ``pycocotools.cocoeval.Params``
#: builds them. torchmetrics' defaults come from ``torch.linspace`` in float32 (0.30000001 instead
#: of 0.3), so a recall that lands exactly on a threshold (3 of 10 objects found) falls on the other
#: side of it, and its mAP differs from pycocotools' in the fourth digit (0.3072 against 0.3074
#: mAP@.5 on COCO128, ``tests/detection/test_map_reference.py``).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, round((0.95 - 0.5) / 0.05) + 1).tolist()
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, round(1.0 / 0.01) + 1).tolist()


def detection_metrics(*, class_metrics: bool = True, max_detections: int = 100) -> MeanAveragePrecision:
    """mAP@[.5:.95], mAP@.5 (and per-class AP with ``class_metrics``) on xyxy pixel boxes.

    ``update`` takes, per image, predictions ``{"boxes", "scores", "labels"}`` and targets
    ``{"boxes", "labels"}`` (optionally ``"iscrowd"``: boxes that are neither hits nor misses).
    """
    return MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        iou_thresholds=IOU_THRESHOLDS,
        rec_thresholds=RECALL_THRESHOLDS,
        class_metrics=class_metrics,
        max_detection_thresholds=[1, 10, max_detections],
        backend=MAP_BACKEND,
    )


def summarize(result: dict[str, Tensor], names: Sequence[str]) -> dict[str, float]:
    """Loggable scalars from ``MeanAveragePrecision.compute()``: ``map``, ``map_50``, ``map_75``,
    and ``ap/<class name>`` for each class seen in the targets or predictions.

    torchmetrics reports per-class AP only for the classes it saw, as ``map_per_class`` aligned
    with ``classes``; a class with no ground truth gets -1 there and is left out here.
    """
    out = {key: float(result[key]) for key in ("map", "map_50", "map_75")}
    per_class, classes = result.get("map_per_class"), result.get("classes")
    if per_class is not None and classes is not None and per_class.numel() == classes.numel():
        for ap, cls in zip(per_class.reshape(-1).tolist(), classes.reshape(-1).tolist()):
            if ap >= 0:
                out[f"ap/{names[cls]}"] = ap
    return out
