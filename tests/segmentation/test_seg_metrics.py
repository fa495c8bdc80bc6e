"""The SegNet paper's four metrics, void ignored, against a hand computation."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy

from visionsuite.models.segmentation import segmentation_metrics

VOID = 9
# 4 classes; class 3 never occurs anywhere; class 2 is predicted once but absent from the target.
TARGET = torch.tensor([[[0, 0, 1, VOID], [1, 1, 0, VOID]], [[0, 1, 1, 1], [VOID, 0, 0, 0]]])
PRED = torch.tensor([[[0, 1, 1, 2], [1, 2, 0, 3]], [[0, 1, 0, 1], [2, 0, 0, 1]]])
# Non-void pixels: 6 in image 1 (4 correct: (0,1) 0→1 and (1,1) 1→2 wrong), 7 in image 2 (5 correct:
# (0,2) 1→0 and (1,3) 0→1 wrong). Class 0: 7 target pixels, 5 found, 1 false positive; class 1: 6 target
# pixels, 4 found, 2 false positives; class 2: 1 false positive; class 3: predicted on void only.
HAND = {
    "global_accuracy": 9 / 13,
    # recalls 5/7 and 4/6; classes 2 and 3 have no target pixel: undefined, left out
    "class_accuracy": (5 / 7 + 4 / 6) / 2,
    # IoU = tp / (tp + fp + fn): 5/8, 4/8, 0/1; class 3 undefined (predictions on void do not count)
    "iou_per_class": [5 / 8, 4 / 8, 0.0, float("nan")],
}
HAND["miou"] = (5 / 8 + 4 / 8 + 0) / 3


def check(result: dict[str, torch.Tensor]) -> None:
    assert result["global_accuracy"].item() == pytest.approx(HAND["global_accuracy"])
    assert result["class_accuracy"].item() == pytest.approx(HAND["class_accuracy"])
    assert result["miou"].item() == pytest.approx(HAND["miou"])
    torch.testing.assert_close(result["iou_per_class"], torch.tensor(HAND["iou_per_class"]), equal_nan=True)


def test_metrics_equal_the_hand_computation() -> None:
    metrics = segmentation_metrics(4, VOID)
    metrics.update(PRED, TARGET)
    check(metrics.compute())


def test_metrics_accumulate_over_batches() -> None:
    metrics = segmentation_metrics(4, VOID)
    for k in range(2):
        metrics.update(PRED[k : k + 1], TARGET[k : k + 1])
    check(metrics.compute())
    metrics.reset()
    metrics.update(PRED[:1], TARGET[:1])
    assert metrics.compute()["global_accuracy"].item() == pytest.approx(4 / 6)


def test_torchmetrics_macro_accuracy_differs_from_the_paper_here() -> None:
    """Why the metrics are computed from a confusion matrix (see ``metrics.py``): torchmetrics counts
    class 2 (predicted, never in the target) as a recall of 0 in its class average."""
    theirs = MulticlassAccuracy(4, average="macro", ignore_index=VOID)(PRED, TARGET).item()
    assert theirs == pytest.approx((5 / 7 + 4 / 6 + 0) / 3)
    assert theirs != pytest.approx(HAND["class_accuracy"])


def test_metrics_equal_numpy_confusion_matrix_on_camvid_masks(camvid_files) -> None:
    """On real CamVid label maps (void 11 included), against an independent count: numpy's
    ``bincount`` confusion matrix over the non-void pixels, and the three numbers read off it.
    Predictions: the true maps shifted by 9 pixels (errors at every class boundary) with 5 % of
    pixels set to random classes."""
    import numpy as np
    from PIL import Image

    targets = torch.stack([torch.from_numpy(np.array(Image.open(m), dtype=np.int64)) for _, m in camvid_files])
    generator = torch.Generator().manual_seed(0)
    preds = torch.roll(targets, shifts=9, dims=-1).clamp(max=10)  # void shifted in becomes Bicyclist
    noise = torch.rand(preds.shape, generator=generator) < 0.05
    preds[noise] = torch.randint(0, 11, (int(noise.sum()),), generator=generator)
    metrics = segmentation_metrics(11, 11)
    for k in range(len(targets)):  # image by image, as validation batches arrive
        metrics.update(preds[k : k + 1], targets[k : k + 1])
    result = metrics.compute()

    t, p = targets.numpy().ravel(), preds.numpy().ravel()
    keep = t != 11
    confusion = np.bincount(t[keep] * 11 + p[keep], minlength=121).reshape(11, 11).astype(float)
    tp, truth, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    present = truth > 0  # recall is defined for a class with true pixels
    union = truth + predicted - tp
    defined = union > 0  # IoU for a class that is true or predicted somewhere (0 when only predicted)
    iou = np.divide(tp, union, out=np.full(11, np.nan), where=defined)
    assert 0.3 < tp.sum() / confusion.sum() < 0.99  # the shift and noise leave errors to count
    assert result["global_accuracy"].item() == pytest.approx(tp.sum() / confusion.sum(), abs=1e-6)
    assert result["class_accuracy"].item() == pytest.approx((tp[present] / truth[present]).mean(), abs=1e-6)
    assert result["miou"].item() == pytest.approx(iou[defined].mean(), abs=1e-6)
    torch.testing.assert_close(result["iou_per_class"].double(), torch.from_numpy(iou), atol=1e-6, rtol=0, equal_nan=True)
