"""COCO-style detection metrics: torchmetrics ``MeanAveragePrecision`` on the faster backend.

torchmetrics evaluates through ``pycocotools`` by default; ``faster-coco-eval`` gives the same
numbers (same 101-point interpolated AP, same matching) several times faster — see
``benchmarks/results/map_backend.md`` — so it is the one backend used everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor
from torchmetrics.detection import MeanAveragePrecision

#: the evaluation backend (measured against pycocotools in benchmarks/results/map_backend.md).
MAP_BACKEND = "faster_coco_eval"


def detection_metrics(*, class_metrics: bool = True, max_detections: int = 100) -> MeanAveragePrecision:
    """mAP@[.5:.95], mAP@.5 (and per-class AP with ``class_metrics``) on xyxy pixel boxes.

    ``update`` takes, per image, predictions ``{"boxes", "scores", "labels"}`` and targets
    ``{"boxes", "labels"}`` (optionally ``"iscrowd"``: boxes that are neither hits nor misses).
    """
    return MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
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
