"""DetectionTask's inference options (``score_thresh``, ``nms_thresh``, ``detections_per_img``) reach
the torchvision detector of every registered head, and change what it returns.

Catches a task (or a head builder) that drops or hard-codes one of them, e.g. ``build_detector(...,
score_thresh=0.0, ...)``: training and mAP still work, but the configured threshold is never applied.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionsuite.models.detection.detector import HEAD_REGISTRY
from visionsuite.tasks import DetectionTask

SIZE = 32
#: where each torchvision detector reads the three options at inference (postprocess_detections).
INFERENCE_OWNER = {
    "retinanet": lambda m: m,
    "fcos": lambda m: m,
    "ssd": lambda m: m,
    "ssdlite": lambda m: m,
    "fasterrcnn": lambda m: m.roi_heads,
    "yolo": lambda m: m,
}


def _task(head: str, **options: float) -> DetectionTask:
    """A CPU-sized task (resnet18 at base width 8, 32-channel FPN, 32x32 grey images), seeded. FCOS
    starts its boxes a stride wide (untrained, torchvision's 0 bias gives sub-pixel boxes that never overlap)."""
    torch.manual_seed(0)
    # yolo: 4 distance bins, so that its untrained boxes (reg_max/2 strides a side) fit the 32-px images
    extra = {"fasterrcnn": {"extra_blocks": "maxpool"}, "fcos": {"regression_bias": 1.0},
             "yolo": {"head_options": {"reg_max": 4}}}.get(head, {})  # fmt: skip
    return DetectionTask(head=head, backbone="resnet18", backbone_options={"base_width": 8}, num_classes=3, in_chans=1,
                         image_size=SIZE, fpn_channels=32, **extra, **options).eval()  # fmt: skip


def _owner(task: DetectionTask) -> nn.Module:
    head = task.hparams.head
    assert head in INFERENCE_OWNER, f"new head {head!r}: add where its detector reads score/nms/max-detections"
    return INFERENCE_OWNER[head](task.detector.model)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def test_every_registered_head_is_covered() -> None:
    assert set(HEAD_REGISTRY.names()) == set(INFERENCE_OWNER)


@pytest.mark.parametrize("head", HEAD_REGISTRY.names())
def test_configured_options_are_the_detectors_own(head: str) -> None:
    """Non-default values of all three land on the attributes the detector reads at inference."""
    owner = _owner(_task(head, score_thresh=0.2, nms_thresh=0.35, detections_per_img=7))
    assert (owner.score_thresh, owner.nms_thresh, owner.detections_per_img) == (0.2, 0.35, 7)
    default = _owner(_task(head))
    assert (default.score_thresh, default.nms_thresh, default.detections_per_img) == (0.05, 0.5, 100)


@pytest.mark.parametrize("head", HEAD_REGISTRY.names())
def test_score_thresh_and_max_detections_filter_the_output(head: str, images: torch.Tensor) -> None:
    """Same weights, same images: with ``score_thresh`` at the median score of an unfiltered run, no
    score falls below it and fewer boxes come back; ``detections_per_img`` caps the boxes per image."""
    loose = _task(head, score_thresh=0.0)
    with torch.no_grad():
        everything = loose(images)
    scores = torch.cat([d["scores"] for d in everything])
    assert len(scores) > 8, "the fixed input must give enough boxes to tell thresholds apart"
    thresh = float(scores.median())
    assert scores.min() < thresh

    strict = _task(head, score_thresh=thresh)
    capped = _task(head, score_thresh=0.0, detections_per_img=3)
    for task in (strict, capped):
        task.load_state_dict(loose.state_dict())
    with torch.no_grad():
        kept, few = strict(images), capped(images)
    kept_scores = torch.cat([d["scores"] for d in kept])
    assert 0 < len(kept_scores) < len(scores)
    assert kept_scores.min() >= thresh
    assert all(len(d["scores"]) <= 3 for d in few) and max(len(d["scores"]) for d in everything) > 3


def _max_same_label_iou(detections: list[dict[str, torch.Tensor]]) -> float:
    """The largest IoU between two kept boxes of one label in one image (0 if no such pair)."""
    from torchvision.ops import box_iou

    worst = 0.0
    for d in detections:
        same = d["labels"][:, None] == d["labels"][None, :]
        iou = box_iou(d["boxes"], d["boxes"]).masked_fill(~same, 0).fill_diagonal_(0)
        worst = max(worst, float(iou.max()) if iou.numel() else 0.0)
    return worst


@pytest.mark.parametrize("head", HEAD_REGISTRY.names())
def test_nms_thresh_bounds_the_overlap_of_kept_boxes(head: str, images: torch.Tensor) -> None:
    """A tight ``nms_thresh`` leaves no two boxes of one label overlapping more than it; a loose one does."""
    loose = _task(head, score_thresh=0.0, nms_thresh=0.95)
    tight = _task(head, score_thresh=0.0, nms_thresh=0.1)
    tight.load_state_dict(loose.state_dict())
    with torch.no_grad():
        assert _max_same_label_iou(loose(images)) > 0.1  # the input tells the two settings apart
        assert _max_same_label_iou(tight(images)) <= 0.1 + 1e-6
