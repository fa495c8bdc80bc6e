"""The YOLO-style head (``head: yolo``): its CIoU, DFL and task-aligned assigner against hand-computed
values, a tiny detector that overfits four real Fashion-MNIST scenes, the eval output format of
the other heads, and the shipped config through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torchvision.ops import complete_box_iou_loss

from visionsuite.backbones.fpn import backbone_with_fpn
from visionsuite.cli.app import main
from visionsuite.data.cache import load_split
from visionsuite.data.scenes import make_scenes
from visionsuite.errors import ConfigError
from visionsuite.models.detection.detector import (
    HEAD_REGISTRY,
    LABEL_OFFSET,
    build_detector,
)
from visionsuite.models.detection.metrics import detection_metrics
from visionsuite.models.detection.yolo import (
    TaskAlignedAssigner,
    ciou,
    distribution_focal_loss,
    expected_distances,
)

CONFIG = Path(__file__).parents[2] / "configs" / "detection" / "yolo_lite0_fmnist_scenes.yaml"


def test_ciou_of_two_known_boxes_equals_the_hand_computed_value() -> None:
    """A = (0, 0, 4, 4), B = (2, 0, 6, 2): intersection 2 x 2 = 4, union 16 + 8 - 4 = 20, IoU 0.2;
    centres (2, 2) and (4, 1): rho^2 = 4 + 1 = 5; enclosing box (0, 0, 6, 4): c^2 = 36 + 16 = 52,
    rho^2 / c^2 = 0.0961538; v = 4 / pi^2 (atan(4/2) - atan(4/4))^2 = 0.0419565,
    alpha = v / (1 - 0.2 + v) = 0.0498321, alpha v = 0.0020908;
    CIoU = 0.2 - 0.0961538 - 0.0020908 = 0.1017554."""
    a, b = torch.tensor([0.0, 0.0, 4.0, 4.0]), torch.tensor([2.0, 0.0, 6.0, 2.0])
    assert ciou(a, b).item() == pytest.approx(0.1017554, abs=1e-6)
    assert ciou(b, a).item() == pytest.approx(0.1017554, abs=1e-6)
    assert ciou(a, a).item() == pytest.approx(1.0, abs=1e-6)
    # the same definition as torchvision's complete_box_iou_loss (= 1 - CIoU) on arbitrary boxes
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 2, generator=g) * 50
    boxes1 = torch.cat([xy, xy + 1 + torch.rand(64, 2, generator=g) * 30], dim=1)
    xy = torch.rand(64, 2, generator=g) * 50
    boxes2 = torch.cat([xy, xy + 1 + torch.rand(64, 2, generator=g) * 30], dim=1)
    torch.testing.assert_close(1 - ciou(boxes1, boxes2), complete_box_iou_loss(boxes1, boxes2), atol=1e-5, rtol=0)


def test_dfl_of_a_known_target() -> None:
    """Target 2.3 bins: the loss is -(0.7 log p_2 + 0.3 log p_3). A uniform distribution over 16 bins
    gives log 16 = 2.7725887; the distribution (p_2, p_3) = (0.7, 0.3) gives its entropy
    -(0.7 log 0.7 + 0.3 log 0.3) = 0.6108643, the minimum, and its expectation decodes to 2.3."""
    target = torch.tensor([2.3])
    uniform = torch.zeros(1, 16)
    assert distribution_focal_loss(uniform, target).item() == pytest.approx(math.log(16), abs=1e-5)
    probs = torch.zeros(1, 16)
    probs[0, 2], probs[0, 3] = 0.7, 0.3
    exact = probs.clamp(min=1e-12).log()
    assert distribution_focal_loss(exact, target).item() == pytest.approx(0.6108643, abs=1e-5)
    assert expected_distances(exact[None])[0, 0].item() == pytest.approx(2.3, abs=1e-5)
    for bin_ in (1, 2, 3, 4):  # moving mass to any bin costs
        other = probs.clone()
        other[0, bin_] += 0.05
        assert distribution_focal_loss((other / other.sum()).log(), target).item() > 0.6108643 + 1e-4


def test_assigner_on_a_hand_built_case() -> None:
    """32x32 image, one level of stride 8: 16 points at x, y in {4, 12, 20, 28}, index = 4 row + col.
    gt0 (0, 0, 16, 16) class 1 holds points 0, 1, 4, 5; gt1 (8, 0, 32, 16) class 2 holds 1, 2, 3, 5, 6, 7.
    Predictions: points 0 and 5 predict gt0's box, 1 and 6 gt1's, the rest a far box (CIoU < 0 → 0).
    Every score is 0.5 except point 5's class-1 score 0.25. With top-3:
    gt0 ranks 0 (0.5^0.5 * 1^6), 5 (0.25^0.5 * 1), 1 (0.5^0.5 * CIoU(gt0, gt1)^6, CIoU 0.137), 4 (0);
    gt1 ranks 1, 6 (0.707 each), 5 (tiny), the rest 0. Points 1 and 5 are claimed by both boxes and
    keep the box their prediction overlaps most: 1 → gt1, 5 → gt0. Soft targets, the alignment
    rescaled so each box's best point gets its best IoU (1): point 0 → 1, point 5 → 0.5 / 0.7071 =
    0.7071, points 1 and 6 → 1. A second image whose only gt row is padding has no positive."""
    ys, xs = torch.meshgrid(torch.arange(4) * 8 + 4.0, torch.arange(4) * 8 + 4.0, indexing="ij")
    points = torch.stack([xs, ys], dim=-1).reshape(-1, 2)
    gt0, gt1 = torch.tensor([0.0, 0.0, 16.0, 16.0]), torch.tensor([8.0, 0.0, 32.0, 16.0])
    pred = torch.tensor([30.0, 30.0, 31.0, 31.0]).repeat(2, 16, 1)
    pred[0, 0] = pred[0, 5] = gt0
    pred[0, 1] = pred[0, 6] = gt1
    scores = torch.full((2, 16, 4), 0.5)
    scores[0, 5, 1] = 0.25
    gt_boxes = torch.stack([torch.stack([gt0, gt1]), torch.stack([gt0, gt0])])
    gt_labels = torch.tensor([[1, 2], [1, 1]])
    valid = torch.tensor([[True, True], [False, False]])
    out = TaskAlignedAssigner(num_classes=4, topk=3)(scores, pred, points, gt_labels, gt_boxes, valid)
    assert out.fg[0].nonzero().flatten().tolist() == [0, 1, 5, 6]
    assert not out.fg[1].any()
    assert out.gt_index[0, [0, 1, 5, 6]].tolist() == [0, 1, 0, 1]
    assert out.labels[0, [0, 1, 5, 6]].tolist() == [1, 2, 1, 2]
    torch.testing.assert_close(out.boxes[0, [0, 1, 5, 6]], torch.stack([gt0, gt1, gt0, gt1]))
    expected = torch.zeros(16, 4)
    expected[0, 1], expected[5, 1], expected[1, 2], expected[6, 2] = 1.0, 0.5 / math.sqrt(0.5), 1.0, 1.0
    torch.testing.assert_close(out.scores[0], expected, atol=1e-5, rtol=0)
    assert out.scores[1].abs().sum() == 0
    # top-2: no point is claimed twice (gt0 takes 0 and 5, gt1 takes 1 and 6), the same outcome
    two = TaskAlignedAssigner(num_classes=4, topk=2)(scores, pred, points, gt_labels, gt_boxes, valid)
    assert two.fg[0].nonzero().flatten().tolist() == [0, 1, 5, 6] and two.gt_index[0, [0, 1, 5, 6]].tolist() == [0, 1, 0, 1]


def _tiny(head: str, num_classes: int = 10, size: int = 64):
    torch.manual_seed(0)
    body = backbone_with_fpn("resnet18", out_strides=(8, 16, 32), out_channels=32, extra_blocks="none", in_chans=1, base_width=8)
    extra = {"regression_bias": 1.0} if head == "fcos" else {}
    return build_detector(head, body, num_classes, image_size=(size, size), in_chans=1, **extra)


@pytest.fixture(scope="module")
def scenes(data_root: Path, mirror: Path) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Four 64x64 scenes of one or two real Fashion-MNIST training items, normalised as the data module does."""
    from visionsuite.data import FashionMNISTDataModule

    items = FashionMNISTDataModule(data_dir=str(data_root))
    items.prepare_data()
    split = load_split(items.cache_path("train"))
    s = make_scenes(split.images[:256], split.labels[:256], 4, canvas_size=(64, 64), items_per_image=(1, 2), seed=0)
    images = (s.images.float() / 255 - 0.06) / 0.2
    targets = [s.targets(i) for i in range(4)]
    return images, [t[0] for t in targets], [t[1] for t in targets]


def _map50(detector, images, boxes, labels) -> float:
    detector.eval()
    metric = detection_metrics(max_detections=100)
    with torch.no_grad():
        metric.update(detector(images), [{"boxes": b, "labels": lab} for b, lab in zip(boxes, labels)])
    detector.train()
    return float(metric.compute()["map_50"])


def test_tiny_yolo_overfits_four_scenes(scenes) -> None:
    """80 AdamW steps on 4 scenes: the summed loss falls at least 10x (measured 18.6x: 38.7 → 2.09) and
    mAP@.5 rises from 0 (untrained) above 0.5 (measured 0.876)."""
    images, boxes, labels = scenes
    detector = _tiny("yolo")
    before = _map50(detector, images, boxes, labels)
    optimiser = torch.optim.AdamW(detector.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        terms = detector(images, boxes, labels)
        assert set(terms) == {"classification", "bbox_ciou", "bbox_dfl"}
        loss = sum(terms.values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    after = _map50(detector, images, boxes, labels)
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
    assert before < 0.05 and after > 0.5, (before, after)


def test_eval_output_is_the_other_heads_format(scenes) -> None:
    """Per image ``{"boxes" float [N, 4] inside the image, "scores" float [N] sorted, "labels" int64 [N]
    in 0..K-1}``, exactly the keys and dtypes FCOS returns; ``detections_per_img`` caps N."""
    images = scenes[0][:2]
    outputs = {}
    for head in ("fcos", "yolo"):
        detector = _tiny(head).eval()
        with torch.no_grad():
            outputs[head] = detector(images)
    for fcos_det, yolo_det in zip(outputs["fcos"], outputs["yolo"], strict=True):
        assert set(yolo_det) == set(fcos_det) == {"boxes", "scores", "labels"}
        assert {k: v.dtype for k, v in yolo_det.items()} == {k: v.dtype for k, v in fcos_det.items()}
        n = len(yolo_det["scores"])
        assert n > 0 and yolo_det["boxes"].shape == (n, 4) and yolo_det["labels"].shape == (n,)
        assert yolo_det["boxes"].min() >= 0 and yolo_det["boxes"].max() <= 64
        assert 0 <= yolo_det["labels"].min() and yolo_det["labels"].max() < 10
        assert torch.all(yolo_det["scores"][:-1] >= yolo_det["scores"][1:]) and yolo_det["scores"].min() > 0.05
    body = backbone_with_fpn("resnet18", out_strides=(8, 16, 32), out_channels=32, extra_blocks="none", in_chans=1, base_width=8)
    capped = build_detector("yolo", body, 10, image_size=(64, 64), in_chans=1, detections_per_img=3, score_thresh=0.0).eval()
    with torch.no_grad():
        assert all(len(d["scores"]) == 3 for d in capped(images))


def test_yolo_is_registered_and_refuses_bad_options_in_one_line() -> None:
    assert "yolo" in HEAD_REGISTRY.names() and LABEL_OFFSET["yolo"] == 0
    body = backbone_with_fpn("resnet18", out_strides=(8, 16, 32), out_channels=32, extra_blocks="none", in_chans=1, base_width=8)
    with pytest.raises(ConfigError, match="YOLODetector got unknown option"):
        build_detector("yolo", body, 3, image_size=(64, 64), in_chans=1, reg_maximum=8)
    odd = backbone_with_fpn("resnet18", out_strides=(8, 32), out_channels=32, extra_blocks="none", in_chans=1, base_width=8)
    with pytest.raises(ConfigError, match=r"strides double .* got strides \[8, 32\]"):
        build_detector("yolo", odd, 3, image_size=(64, 64), in_chans=1)


def test_yolo_config_fits_one_batch_with_mosaic_and_affine(data_root: Path, tmp_path: Path) -> None:
    """The shipped config through the CLI (fast_dev_run, tiny scenes), mosaic and affine on: the
    FPN gets no extra levels (yolo's own PAN runs over strides 8-32), and yolo's named losses are logged."""
    tiny = ["--data.init_args.num_train_scenes", "64", "--data.init_args.num_test_scenes", "16",
            "--data.init_args.val_size", "16", "--data.init_args.canvas_size", "64", "--model.init_args.image_size", "64",
            "--data.init_args.batch_size", "8", "--data.init_args.mosaic", "1.0", "--data.init_args.affine_scale", "[0.8, 1.2]",
            "--data.init_args.affine_translate", "0.1", "--model.init_args.extra_blocks", "p6p7"]  # fmt: skip
    dirs = ["--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path)]
    args = ["fit", "--config", str(CONFIG), "--data.init_args.data_dir", str(data_root), *dirs, *tiny,
            "--trainer.fast_dev_run", "1", "--test_after_fit", "false"]  # fmt: skip
    assert main(args) == 0
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink() and (p / "metrics.json").exists()]
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"train/classification", "train/bbox_ciou", "train/bbox_dfl", "val/map"} <= set(metrics)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not any(".fpn.extra_blocks." in k for k in ckpt) and any(".neck.fuse." in k for k in ckpt)
