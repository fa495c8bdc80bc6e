"""Detectors from torchvision's components on any FPN-style backbone.

The backbone contract is torchvision's ``BackboneWithFPN``: ``forward(x)`` returns an
``OrderedDict[str, Tensor]`` of feature maps, finest first, and ``.out_channels`` is their
(common) channel count. Anchors follow the backbone's strides, measured once by a dummy forward
at the training image size, so a head fits whatever encoder the library hands it.

torchvision's detectors normalise and resize their inputs in a ``GeneralizedRCNNTransform``.
Our data modules already do both, so every detector here gets :class:`PreparedBatchTransform`
instead: it batches, and nothing else, and ``postprocess`` leaves the boxes in batch pixels.

Class indices: the data's labels are ``0..K-1``. Faster R-CNN and SSD reserve index 0 for
background, RetinaNet and FCOS do not. :func:`head_num_classes` and :class:`Detector` are the one
place this is handled: the wrapped head sees ``label + offset``, callers see ``0..K-1``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import (
    AnchorGenerator,
    DefaultBoxGenerator,
)
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.ssd import SSD, SSDHead
from torchvision.models.detection.ssdlite import SSDLiteHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from visionsuite.core.registry import Registry
from visionsuite.errors import ConfigError


@dataclass(frozen=True)
class HeadInputs:
    """What every head builder receives: the backbone, its measured levels and the options."""

    backbone: nn.Module
    classes: int  # the head's classifier size (the background slot included where it has one)
    channels: int
    strides: list[int]
    feature_names: list[str]
    image_size: tuple[int, int]
    anchor_scale: float
    aspect_ratios: tuple[float, ...]
    score_thresh: float
    nms_thresh: float
    detections_per_img: int
    head_convs: int
    head_kwargs: dict[str, Any]

    @property
    def sizes(self) -> tuple[tuple[float], ...]:
        return tuple((float(self.anchor_scale * s),) for s in self.strides)

    @property
    def ratios(self) -> tuple[tuple[float, ...], ...]:
        return (tuple(self.aspect_ratios),) * len(self.strides)


class HeadKind(NamedTuple):
    """A registered head: its builder and the index of its first object class (1 where 0 is background)."""

    build: Callable[[HeadInputs], nn.Module]
    label_offset: int


#: every detection head by name (``visionsuite list heads``).
HEAD_REGISTRY: Registry[HeadKind] = Registry("detection head")

#: the torchvision detectors' own input handling, replaced by :class:`PreparedBatchTransform`.
_NO_TRANSFORM = {"min_size": 1, "max_size": 1, "image_mean": [0.0], "image_std": [1.0]}


def _register_head(name: str, label_offset: int) -> Callable[[Callable[[HeadInputs], nn.Module]], Callable[[HeadInputs], nn.Module]]:
    def wrap(build: Callable[[HeadInputs], nn.Module]) -> Callable[[HeadInputs], nn.Module]:
        HEAD_REGISTRY.register(name)(HeadKind(build, label_offset))
        return build

    return wrap


@_register_head("retinanet", label_offset=0)
def _retinanet(h: HeadInputs) -> nn.Module:
    anchors = AnchorGenerator(h.sizes, h.ratios)
    head = RetinaNetHead(h.channels, anchors.num_anchors_per_location()[0], h.classes, norm_layer=_group_norm(h.channels))
    return RetinaNet(
        h.backbone, h.classes, anchor_generator=anchors, head=head,
        score_thresh=h.score_thresh, nms_thresh=h.nms_thresh, detections_per_img=h.detections_per_img,
        **_NO_TRANSFORM, **h.head_kwargs,
    )  # fmt: skip


@_register_head("fcos", label_offset=0)
def _fcos(h: HeadInputs) -> nn.Module:
    anchors = AnchorGenerator(tuple((float(s),) for s in h.strides), ((1.0,),) * len(h.strides))
    return FCOS(
        h.backbone, h.classes, anchor_generator=anchors, head=FCOSHead(h.channels, 1, h.classes, num_convs=h.head_convs),
        score_thresh=h.score_thresh, nms_thresh=h.nms_thresh, detections_per_img=h.detections_per_img,
        **_NO_TRANSFORM, **h.head_kwargs,
    )  # fmt: skip


def _ssd_family(h: HeadInputs, lite: bool) -> nn.Module:
    levels = len(h.strides)
    scale = [h.anchor_scale * s / min(h.image_size) for s in h.strides]
    boxes = DefaultBoxGenerator([[2]] * levels, scales=[*scale, scale[-1] * 2])
    per_loc = boxes.num_anchors_per_location()
    if lite:
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
        head: nn.Module = SSDLiteHead([h.channels] * levels, per_loc, h.classes, norm)
    else:
        head = SSDHead([h.channels] * levels, per_loc, h.classes)
    return SSD(
        h.backbone, boxes, tuple(h.image_size), h.classes, image_mean=[0.0], image_std=[1.0], head=head,
        score_thresh=h.score_thresh, nms_thresh=h.nms_thresh, detections_per_img=h.detections_per_img, **h.head_kwargs,
    )  # fmt: skip


_register_head("ssd", label_offset=1)(partial(_ssd_family, lite=False))
_register_head("ssdlite", label_offset=1)(partial(_ssd_family, lite=True))


@_register_head("fasterrcnn", label_offset=1)
def _fasterrcnn(h: HeadInputs) -> nn.Module:
    return FasterRCNN(
        h.backbone, h.classes,
        rpn_anchor_generator=AnchorGenerator(h.sizes, h.ratios),
        box_roi_pool=MultiScaleRoIAlign(featmap_names=h.feature_names, output_size=7, sampling_ratio=2),
        box_score_thresh=h.score_thresh, box_nms_thresh=h.nms_thresh, box_detections_per_img=h.detections_per_img,
        **_NO_TRANSFORM, **h.head_kwargs,
    )  # fmt: skip


@_register_head("yolo", label_offset=0)
def _yolo(h: HeadInputs) -> nn.Module:
    """YOLOv8-style: PAN over the FPN levels, decoupled anchor-free head, TAL, CIoU + DFL
    (:mod:`visionsuite.models.detection.yolo`); ``head_options`` are :class:`YOLODetector`'s."""
    from visionsuite.backbones.layers import build_with_options
    from visionsuite.models.detection.yolo import YOLODetector

    return build_with_options(
        YOLODetector, h.head_kwargs, backbone=h.backbone, num_classes=h.classes, strides=h.strides,
        channels=h.channels, image_size=h.image_size, score_thresh=h.score_thresh, nms_thresh=h.nms_thresh,
        detections_per_img=h.detections_per_img,
    )  # fmt: skip


#: head name → index of the first object class in the head (1 where 0 is background).
LABEL_OFFSET = {name: HEAD_REGISTRY[name].label_offset for name in HEAD_REGISTRY}
HEADS = tuple(HEAD_REGISTRY.names())


def head_num_classes(name: str, num_classes: int) -> int:
    """Classes the head of ``name`` is built with for ``num_classes`` object classes in the data."""
    return num_classes + _offset(name)


def _offset(name: str) -> int:
    return HEAD_REGISTRY[name].label_offset  # an unknown name: one line with the nearest heads


class PreparedBatchTransform(GeneralizedRCNNTransform):
    """The no-op stand-in for torchvision's resize-and-normalise: batches that are already
    normalised and of one size pass through untouched, and detections stay in batch pixels."""

    def __init__(self) -> None:
        super().__init__(min_size=1, max_size=1, image_mean=[0.0], image_std=[1.0])

    def forward(
        self, images: Tensor | list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> tuple[ImageList, list[dict[str, Tensor]] | None]:
        batch = images if isinstance(images, Tensor) else torch.stack(list(images))
        if batch.ndim != 4:
            raise ValueError(f"expected images [B, C, H, W], got {tuple(batch.shape)}")
        size = (int(batch.shape[-2]), int(batch.shape[-1]))
        return ImageList(batch, [size] * batch.shape[0]), targets

    def postprocess(self, result: list[dict[str, Tensor]], image_shapes: Any, original_image_sizes: Any) -> list:
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@torch.no_grad()
def probe_features(backbone: nn.Module, image_size: tuple[int, int], in_chans: int) -> OrderedDict[str, Tensor]:
    """The feature maps of ``backbone`` for one blank image of ``image_size`` (eval mode)."""
    was_training = backbone.training
    backbone.eval()
    try:
        feats = backbone(torch.zeros(1, in_chans, *image_size))
    finally:
        backbone.train(was_training)
    if not isinstance(feats, (dict, OrderedDict)) or not hasattr(backbone, "out_channels"):
        raise ConfigError("a detection backbone must return an ordered dict of features and have .out_channels")
    return feats


def feature_strides(feats: OrderedDict[str, Tensor], image_size: tuple[int, int]) -> list[int]:
    """The stride of each feature map, from its size relative to the image's."""
    return [max(1, round(image_size[0] / f.shape[-2])) for f in feats.values()]


def build_detector(
    name: str,
    backbone: nn.Module,
    num_classes: int,
    *,
    image_size: tuple[int, int],
    in_chans: int = 3,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    anchor_scale: float = 4.0,
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
    head_convs: int = 4,
    regression_bias: float | None = None,
    **head_kwargs: Any,
) -> Detector:
    """A :class:`Detector` of kind ``name`` (one of :data:`HEADS`) on ``backbone``.

    ``image_size`` is the (H, W) of the batches (the data module resizes to it); anchors are
    ``anchor_scale x stride`` of each level (FCOS: one point per location, sized by its stride;
    SSD: default boxes of the same scales). ``head_convs`` is the depth of FCOS's classification
    and regression towers (torchvision's 4, or a compact 2 as in YOLOX's head: on small images
    the towers, not the backbone, hold most of the FLOPs). ``regression_bias`` (FCOS) sets the
    initial bias of the box-regression conv (``None``: torchvision's 0). ``head_kwargs`` go to the torchvision
    constructor (e.g. ``rpn_post_nms_top_n_train`` for Faster R-CNN, ``topk_candidates`` for
    RetinaNet).
    """
    offset = _offset(name)
    if head_convs < 1 or (head_convs != 4 and name != "fcos"):
        raise ConfigError(f"head_convs={head_convs}: a tower depth other than 4 is available for fcos only, and must be >= 1")
    if regression_bias is not None and name != "fcos":
        raise ConfigError(f"regression_bias is an option of fcos only, not {name}")
    feats = probe_features(backbone, image_size, in_chans)
    inputs = HeadInputs(
        backbone=backbone, classes=num_classes + offset, channels=int(backbone.out_channels),
        strides=feature_strides(feats, image_size), feature_names=list(feats), image_size=tuple(image_size),
        anchor_scale=anchor_scale, aspect_ratios=tuple(aspect_ratios), score_thresh=score_thresh,
        nms_thresh=nms_thresh, detections_per_img=detections_per_img, head_convs=head_convs, head_kwargs=head_kwargs,
    )  # fmt: skip
    model = HEAD_REGISTRY[name].build(inputs)
    if regression_bias is not None:  # fcos only (checked above)
        nn.init.constant_(model.head.regression_head.bbox_reg.bias, regression_bias)
    model.transform = PreparedBatchTransform()
    return Detector(model, name, num_classes)


def _group_norm(channels: int) -> partial:
    """GroupNorm for the RetinaNet head (torchvision's v2 head): without a norm, its 4-conv
    towers learn far more slowly from scratch (no mAP after 150 steps where FCOS reaches 1.0)."""
    groups = max(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
    return partial(nn.GroupNorm, groups)


class Detector(nn.Module):
    """A torchvision detector that speaks the data's class indices ``0..K-1``.

    ``forward(images, boxes, labels)`` in training returns the head's named losses; in eval
    ``forward(images)`` returns per image ``{"boxes", "scores", "labels"}`` in batch pixels.
    """

    def __init__(self, model: nn.Module, name: str, num_classes: int) -> None:
        super().__init__()
        self.model, self.name, self.num_classes = model, name, num_classes
        self.label_offset = _offset(name)

    def forward(
        self, images: Tensor, boxes: list[Tensor] | None = None, labels: list[Tensor] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if self.training:
            if boxes is None or labels is None:
                raise ValueError("training a detector needs boxes and labels")
            targets = [{"boxes": b, "labels": lab + self.label_offset} for b, lab in zip(boxes, labels)]
            return self.model(images, targets)
        detections = self.model(images)
        for det in detections:
            det["labels"] = det["labels"] - self.label_offset
        return detections
