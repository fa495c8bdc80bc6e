"""mAP against a hand-computed 101-point interpolated AP on a tiny case."""

from __future__ import annotations

import pytest
import torch

from visionsuite.models.detection.metrics import detection_metrics, summarize


def _tiny_case():
    """One class, two images, three objects; four predictions with known IoUs.

    image A: objects a1 [0,0,10,10], a2 [20,20,30,30]; image B: object b1 [0,0,10,10].
    predictions by score: 0.9 on a1 (IoU 1), 0.8 on a2 (IoU 100/150 = 0.667),
    0.7 on empty ground in B (IoU 0), 0.6 on b1 (IoU 1).
    """
    preds = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 35]]), "scores": torch.tensor([0.9, 0.8]),
         "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[50.0, 50, 60, 60], [0, 0, 10, 10]]), "scores": torch.tensor([0.7, 0.6]),
         "labels": torch.tensor([0, 0])},
    ]  # fmt: skip
    targets = [
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])},
    ]
    return preds, targets


# IoU 0.5 (and 0.55 .. 0.65): TP TP FP TP, recall 1/3 2/3 2/3 1, precision 1 1 2/3 3/4.
# Interpolated precision: 1 for recall thresholds 0.00..0.66 (67 points), 0.75 for 0.67..1.00 (34).
AP50 = (67 * 1.0 + 34 * 0.75) / 101
# IoU 0.75 (and 0.7 .. 0.95): TP FP FP TP, recall 1/3 1/3 1/3 2/3, precision 1 .5 .33 .5.
# Interpolated: 1 for 0.00..0.33 (34 points), 0.5 for 0.34..0.66 (33), 0 above 2/3 (34).
AP75 = (34 * 1.0 + 33 * 0.5) / 101
MAP = (4 * AP50 + 6 * AP75) / 10  # ten IoU thresholds .50:.05:.95


def test_map_equals_the_hand_computed_value() -> None:
    metric = detection_metrics()
    preds, targets = _tiny_case()
    metric.update(preds, targets)
    result = metric.compute()
    assert float(result["map_50"]) == pytest.approx(AP50, abs=1e-6)
    assert float(result["map_75"]) == pytest.approx(AP75, abs=1e-6)
    assert float(result["map"]) == pytest.approx(MAP, abs=1e-6)
    assert summarize(result, ["shirt"]) == pytest.approx({"map": MAP, "map_50": AP50, "map_75": AP75, "ap/shirt": MAP})


def test_per_class_ap_by_name_and_images_split_across_updates() -> None:
    preds, targets = _tiny_case()
    # a second class, found perfectly in image B: its AP is 1, the first class's stays as above
    preds[1] = {k: torch.cat([v, extra]) for (k, v), extra in zip(
        preds[1].items(), (torch.tensor([[70.0, 70, 90, 90], [40, 40, 50, 50]]), torch.tensor([0.5, 0.4]),
                           torch.tensor([1, 2]))
    )}  # fmt: skip  # class 2 is only predicted, never in the ground truth: torchmetrics gives it AP -1
    targets[1] = {"boxes": torch.tensor([[0.0, 0, 10, 10], [70, 70, 90, 90]]), "labels": torch.tensor([0, 1])}
    metric = detection_metrics()
    metric.update(preds[:1], targets[:1])
    metric.update(preds[1:], targets[1:])
    scalars = summarize(metric.compute(), ["shirt", "bag", "sneaker"])
    assert scalars["ap/shirt"] == pytest.approx(MAP, abs=1e-6) and scalars["ap/bag"] == pytest.approx(1.0)
    assert "ap/sneaker" not in scalars  # no ground truth: no AP, rather than torchmetrics' -1
    assert scalars["map"] == pytest.approx((MAP + 1.0) / 2, abs=1e-6)
