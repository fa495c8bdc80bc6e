"""Flip test-time augmentation of DetectionTask: the fusion on a hand-computed case, and where the
task uses it (test and predict, not validation)."""

from __future__ import annotations

import torch

from visionsuite.data.geometry import mirror_boxes
from visionsuite.models.detection.flip import merge_flipped
from visionsuite.tasks import DetectionTask


def _dets(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.long)}


def test_mirror_detections_are_mapped_back_and_fused_box_by_box() -> None:
    """Width 10. Class 0: the direct pass has x 1-4 twice (0.9, 0.6), the mirror pass x 6-9 (= 1-4
    back) a little taller (0.8): one object, score (0.9 + 0.8) / 2 (each pass's best), box the
    score-weighted mean of all three. Classes 1 and 2, found by the mirror pass only, keep half
    their scores, class 2 although it sits on class 0's box (class-wise). The cap keeps the best."""
    direct = [_dets([[1, 1, 4, 4], [1, 1, 4, 4]], [0.9, 0.6], [0, 0]), _dets([], [], [])]
    mirrored = [_dets([[6, 1, 9, 5], [0, 0, 2, 2], [6, 1, 9, 4]], [0.8, 0.5, 0.3], [0, 1, 2]), _dets([[0, 0, 2, 2]], [0.7], [3])]
    merged = merge_flipped(direct, mirrored, width=10, iou_thresh=0.5, max_detections=3)
    y2 = (0.9 * 4 + 0.6 * 4 + 0.8 * 5) / (0.9 + 0.6 + 0.8)
    torch.testing.assert_close(merged[0]["boxes"], torch.tensor([[1.0, 1, 4, y2], [8, 0, 10, 2], [1, 1, 4, 4]]))
    torch.testing.assert_close(merged[0]["scores"], torch.tensor([0.85, 0.25, 0.15]))
    assert merged[0]["labels"].tolist() == [0, 1, 2]
    assert merged[1]["boxes"].tolist() == [[8.0, 0, 10, 2]] and merged[1]["labels"].tolist() == [3]
    torch.testing.assert_close(merged[1]["scores"], torch.tensor([0.35]))
    capped = merge_flipped(direct, mirrored, width=10, iou_thresh=0.5, max_detections=2)
    assert capped[0]["scores"].tolist() == merged[0]["scores"][:2].tolist()
    boxes = torch.tensor([[1.0, 2, 4, 5]])
    assert torch.equal(mirror_boxes(mirror_boxes(boxes, 10), 10), boxes)
    empty = merge_flipped([_dets([], [], [])], [_dets([], [], [])], width=10, iou_thresh=0.5, max_detections=3)
    assert empty[0]["boxes"].shape == (0, 4)


def test_test_time_flip_merges_at_test_and_predict_only() -> None:
    torch.manual_seed(0)
    task = DetectionTask(head="fcos", backbone="resnet18", backbone_options={"base_width": 8}, num_classes=3, in_chans=1,
                         image_size=32, score_thresh=0.0, test_time_flip=True).eval()  # fmt: skip
    images = torch.rand(2, 1, 32, 32)
    batch = {"image": images, "bbox_xyxy": [torch.tensor([[2.0, 2, 12, 14]])] * 2, "bbox_label": [torch.tensor([1])] * 2,
             "path": ["a", "b"]}  # fmt: skip
    with torch.no_grad():
        direct, mirrored = task.detector(images), task.detector(images.flip(-1))
        expected = merge_flipped(direct, mirrored, 32, task.hparams.nms_thresh, task.hparams.detections_per_img)
        test_out, val_out = task.shared_step(batch, "test"), task.shared_step(batch, "val")
        predicted = task.predict_step(batch, 0)["detections"]
    assert not torch.equal(expected[0]["boxes"], direct[0]["boxes"])  # the case tells the two apart
    for got in (test_out.preds, predicted):
        for g, e in zip(got, expected, strict=True):
            for key in ("boxes", "scores", "labels"):
                torch.testing.assert_close(g[key], e[key])
    assert all(torch.equal(v["boxes"], d["boxes"]) for v, d in zip(val_out.preds, direct, strict=True))
