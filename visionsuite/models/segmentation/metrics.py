"""The SegNet paper's metrics (global accuracy, class-average accuracy, mIoU, per-class IoU), void ignored.

Why not torchmetrics' ``MulticlassAccuracy(average="macro")`` / ``MulticlassJaccardIndex``: checked
against a hand computation (torchmetrics 1.9), both drop ``ignore_index`` pixels correctly, but a
class with no ground-truth pixel that the model *predicts* enters the macro accuracy as a recall of
0 (the paper's class average is over classes that have pixels: recall is undefined there), and
``average="none"`` reports 0 rather than "undefined" for classes absent from both. On a validation
split missing a rare class this lowers the class average for no reason. So the four numbers are
computed from one torchmetrics confusion matrix (its ``ignore_index`` handling, its distributed
sync), with undefined classes as NaN and left out of the means. In a ``MetricCollection`` the
four share one compute group: the matrix is updated once per batch, not four times.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassConfusionMatrix


class _FromConfusion(MulticlassConfusionMatrix):
    """A confusion matrix (rows: target, columns: prediction) whose ``compute`` is one paper metric."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, **kwargs: object) -> None:
        # no per-batch input validation (it doubles the update's cost): predictions are an argmax
        # and masks were range-checked when the cache was built
        kwargs.setdefault("validate_args", False)
        super().__init__(num_classes, ignore_index=ignore_index, normalize=None, **kwargs)

    def _matrix(self) -> Tensor:
        return self.confmat.double()


class GlobalPixelAccuracy(_FromConfusion):
    """Correct non-void pixels / non-void pixels."""

    def compute(self) -> Tensor:
        m = self._matrix()
        return (m.diagonal().sum() / m.sum()).float()


class PerClassAccuracy(_FromConfusion):
    """Recall of each class; NaN for a class without ground-truth pixels."""

    def compute(self) -> Tensor:
        m = self._matrix()
        return (m.diagonal() / m.sum(1)).float()  # 0/0 = NaN


class ClassAverageAccuracy(PerClassAccuracy):
    """Mean recall over the classes that have ground-truth pixels."""

    def compute(self) -> Tensor:
        return super().compute().nanmean()


class PerClassIoU(_FromConfusion):
    """TP / (TP + FP + FN) per class; NaN for a class absent from both targets and predictions."""

    def compute(self) -> Tensor:
        m = self._matrix()
        tp = m.diagonal()
        return (tp / (m.sum(0) + m.sum(1) - tp)).float()


class MeanIoU(PerClassIoU):
    """Mean IoU over the classes that occur in the targets or the predictions."""

    def compute(self) -> Tensor:
        return super().compute().nanmean()


def segmentation_metrics(num_classes: int, ignore_index: int | None) -> MetricCollection:
    """``global_accuracy``, ``class_accuracy``, ``miou`` (scalars) and ``iou_per_class`` ([C], NaN = undefined)."""
    kwargs = {"num_classes": num_classes, "ignore_index": ignore_index}
    return MetricCollection(
        {
            "global_accuracy": GlobalPixelAccuracy(**kwargs),
            "class_accuracy": ClassAverageAccuracy(**kwargs),
            "miou": MeanIoU(**kwargs),
            "iou_per_class": PerClassIoU(**kwargs),
        }
    )
