"""Detector builders: pass-through transform, class offsets, losses/boxes, overfitting real scenes."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import Conv2dNormActivation

from visionsuite.data.cache import load_split
from visionsuite.data.scenes import make_scenes
from visionsuite.errors import ConfigError
from visionsuite.models.detection.detector import (
    HEADS,
    LABEL_OFFSET,
    PreparedBatchTransform,
    build_detector,
    head_num_classes,
)
from visionsuite.models.detection.metrics import detection_metrics

SIZE = (64, 64)


def tiny_fpn(in_chans: int = 1, width: int = 32) -> BackboneWithFPN:
    """A 4-stage conv body (strides 2..16) + FPN (P2-P4 and a pooled P5): CPU-sized."""
    body = nn.Sequential(OrderedDict(
        stem=Conv2dNormActivation(in_chans, 16, 3, stride=2),
        layer1=Conv2dNormActivation(16, 32, 3, stride=2),
        layer2=Conv2dNormActivation(32, 64, 3, stride=2),
        layer3=Conv2dNormActivation(64, 64, 3, stride=2),
    ))  # fmt: skip
    return BackboneWithFPN(body, {"layer1": "0", "layer2": "1", "layer3": "2"}, [32, 64, 64], width)


@pytest.fixture(scope="module")
def scenes(data_root: Path, mirror: Path):
    """Eight 64x64 scenes of 1-2 real Fashion-MNIST training items, normalised to [0, 1]."""
    from visionsuite.data import FashionMNISTDataModule

    dm = FashionMNISTDataModule(data_dir=str(data_root))
    dm.prepare_data()
    train = load_split(dm.cache_path("train"))
    s = make_scenes(train.images[:64], train.labels[:64], 8, canvas_size=SIZE, items_per_image=(1, 2), seed=0)
    boxes, labels = zip(*(s.targets(i) for i in range(8)))
    return s.images.float() / 255, list(boxes), list(labels)


def test_prepared_batch_transform_leaves_the_batch_unchanged(scenes) -> None:
    images, boxes, labels = scenes
    targets = [{"boxes": b, "labels": lab} for b, lab in zip(boxes, labels)]
    batch, out_targets = PreparedBatchTransform()(images, targets)
    assert batch.tensors is images and batch.image_sizes == [SIZE] * 8 and out_targets is targets
    dets = [{"boxes": b.clone(), "labels": lab} for b, lab in zip(boxes, labels)]
    assert PreparedBatchTransform().postprocess(dets, batch.image_sizes, [(128, 128)] * 8) is dets


def test_detector_equals_torchvision_with_its_own_neutral_transform(scenes) -> None:
    images = scenes[0]
    torch.manual_seed(0)
    ours = build_detector("retinanet", tiny_fpn(), 10, image_size=SIZE, in_chans=1, score_thresh=0.0).eval()
    ref = RetinaNet(
        ours.model.backbone, 11, min_size=64, max_size=64, image_mean=[0.0], image_std=[1.0],
        anchor_generator=ours.model.anchor_generator, head=ours.model.head, score_thresh=0.0, detections_per_img=100,
    ).eval()  # fmt: skip
    with torch.no_grad():
        a, b = ours(images[:2]), ref(list(images[:2]))
    for x, y in zip(a, b):
        assert torch.allclose(x["boxes"], y["boxes"], atol=1e-4) and torch.equal(x["labels"], y["labels"])


@pytest.mark.parametrize(("name", "expected"), [("retinanet", 10), ("fcos", 10), ("ssd", 11), ("ssdlite", 11), ("fasterrcnn", 11)])
def test_background_convention_in_one_place(name: str, expected: int) -> None:
    assert head_num_classes(name, 10) == expected
    det = build_detector(name, tiny_fpn(), 10, image_size=SIZE, in_chans=1)
    logits = {
        "retinanet": lambda m: m.head.classification_head.num_classes,
        "fcos": lambda m: m.head.classification_head.num_classes,
        "ssd": lambda m: m.head.classification_head.num_columns,
        "ssdlite": lambda m: m.head.classification_head.num_columns,
        "fasterrcnn": lambda m: m.roi_heads.box_predictor.cls_score.out_features,
    }[name](det.model)
    assert logits == expected and det.label_offset == expected - 10


@pytest.mark.parametrize("convs", [4, 2])
def test_fcos_tower_depth(convs: int, scenes) -> None:
    images, boxes, labels = scenes
    det = build_detector("fcos", tiny_fpn(), 10, image_size=SIZE, in_chans=1, head_convs=convs)
    for tower in (det.model.head.classification_head.conv, det.model.head.regression_head.conv):
        assert sum(isinstance(m, nn.Conv2d) for m in tower) == convs
    losses = det.train()(images[:2], boxes[:2], labels[:2])
    assert all(torch.isfinite(v) for v in losses.values())


def test_tower_depth_is_fcos_only() -> None:
    with pytest.raises(ConfigError, match="head_convs=2"):
        build_detector("retinanet", tiny_fpn(), 10, image_size=SIZE, in_chans=1, head_convs=2)
    with pytest.raises(ConfigError, match="head_convs=0"):
        build_detector("fcos", tiny_fpn(), 10, image_size=SIZE, in_chans=1, head_convs=0)


def test_unknown_head_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Unknown detection head 'yolo9000'"):
        head_num_classes("yolo9000", 3)


def test_a_misspelt_head_suggests_the_nearest() -> None:
    with pytest.raises(ConfigError, match="Did you mean retinanet") as info:
        build_detector("retinnet", tiny_fpn(), 10, image_size=SIZE, in_chans=1)
    assert str(info.value).endswith("Valid: retinanet, fcos, ssd, ssdlite, fasterrcnn, yolo")


def test_every_head_is_registered_with_its_background_offset() -> None:
    """The registry is the one table: the background-slot offsets the Detector relies on."""
    assert {name: LABEL_OFFSET[name] for name in HEADS} == {"retinanet": 0, "fcos": 0, "ssd": 1, "ssdlite": 1, "fasterrcnn": 1, "yolo": 0}


@pytest.mark.parametrize("name", HEADS)
def test_each_head_trains_and_predicts(name: str, scenes) -> None:
    images, boxes, labels = scenes
    torch.manual_seed(0)
    det = build_detector(name, tiny_fpn(), 10, image_size=SIZE, in_chans=1, score_thresh=0.0)
    losses = det.train()(images[:2], boxes[:2], labels[:2])
    assert all(torch.isfinite(v) for v in losses.values()) and len(losses) >= 2
    sum(losses.values()).backward()
    with torch.no_grad():
        out = det.eval()(images[:2])
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4
    assert out[0]["labels"].min() >= 0 and out[0]["labels"].max() < 10  # data indices, not head indices


def _overfit(name: str, scenes, steps: int, n: int = 4) -> float:
    """mAP@.5 on ``n`` scenes after ``steps`` full-batch steps on them (one-cycle AdamW)."""
    images, boxes, labels = scenes[0][:n], scenes[1][:n], scenes[2][:n]
    torch.manual_seed(0)
    extra = {"rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100, "rpn_pre_nms_top_n_test": 100,
             "rpn_post_nms_top_n_test": 50, "box_batch_size_per_image": 64} if name == "fasterrcnn" else {}  # fmt: skip
    det = build_detector(name, tiny_fpn(), 10, image_size=SIZE, in_chans=1, anchor_scale=2.0, **extra)
    opt = torch.optim.AdamW(det.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    det.train()
    for _ in range(steps):
        loss = sum(det(images, boxes, labels).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    metric = detection_metrics(class_metrics=False)
    with torch.no_grad():
        metric.update(det.eval()(images), [{"boxes": b, "labels": lab} for b, lab in zip(boxes, labels)])
    return float(metric.compute()["map_50"])


@pytest.mark.parametrize("name", HEADS)
def test_each_head_overfits_a_few_scenes(name: str, scenes) -> None:
    assert _overfit(name, scenes, steps=60) >= 0.9
