"""Object detection: a torchvision head (RetinaNet, FCOS, SSD, SSDlite, Faster R-CNN) on any
backbone of the library under an FPN, the heads' own losses, COCO-style mAP.

The data module resizes and normalises, so the detector's own transform is a pass-through
(:mod:`visionsuite.models.detection.detector`); boxes arrive as ``bbox_xyxy``/``bbox_label`` lists in
batch pixels, and the task turns them into per-image targets once per batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback
from torch import Tensor
from torchmetrics import MetricCollection

from visionsuite.core.atomic import write_text_atomic
from visionsuite.backbones.fpn import ExtraBlock, backbone_with_fpn
from visionsuite.data.batch import BBOX_LABEL, BBOX_XYXY, IMAGE
from visionsuite.errors import ConfigError
from visionsuite.models.detection.detector import (
    LABEL_OFFSET,
    build_detector,
    head_num_classes,
)
from visionsuite.models.detection.flip import merge_flipped
from visionsuite.models.detection.metrics import detection_metrics, summarize
from visionsuite.outputs import FigureLogger
from visionsuite.outputs.detection_pictures import draw_detections, wandb_boxes
from visionsuite.outputs.detection_writer import DetectionPredictionWriter
from visionsuite.outputs.images import AnnotatedImage
from visionsuite.tasks.base import BaseTask, StepOutput

Targets = list[dict[str, Tensor]]
#: predictions below this score are left out of the drawn overlays (they would hide the image).
FIGURE_MIN_SCORE = 0.3


class DetectionTask(BaseTask):
    """Train a detector; the best checkpoint is chosen on validation mAP@[.5:.95]."""

    monitor = "val/map"
    mode = "max"
    evaluation_options = BaseTask.evaluation_options | {
        "score_thresh", "nms_thresh", "detections_per_img", "num_sample_images", "test_time_flip",
    }  # fmt: skip
    training_options = BaseTask.training_options | {"weights", "regression_bias"}

    def __init__(
        self,
        head: str = "fcos",
        backbone: str = "resnet18",
        num_classes: int = 10,
        in_chans: int = 3,
        image_size: int | tuple[int, int] = 96,
        backbone_options: dict[str, Any] | None = None,
        weights: str | None = None,
        out_strides: tuple[int, ...] = (8, 16, 32),
        fpn_channels: int = 128,
        extra_blocks: ExtraBlock = "p6p7",
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        anchor_scale: float = 4.0,
        head_convs: int = 4,
        regression_bias: float | None = None,
        head_options: dict[str, Any] | None = None,
        num_sample_images: int = 4,
        test_time_flip: bool = False,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            head: retinanet, fcos, ssd, ssdlite or fasterrcnn.
            backbone: a name from ``visionsuite.backbones.list_backbones()`` (or ``tv/…``/``timm/…``).
            num_classes: object classes in the data (never counting a background class: the
                heads that need one add it themselves); must equal the data module's.
            in_chans: image channels.
            image_size: (H, W) of the batches (the data module's ``image_size``); anchors and
                SSD's default boxes are laid out for it.
            backbone_options: family options of the backbone.
            weights: backbone weights (a file, or a name the backbone publishes, e.g. ``imagenet``).
            out_strides: encoder strides fed to the FPN.
            fpn_channels: FPN width.
            extra_blocks: FPN extra levels: ``p6p7`` (RetinaNet/FCOS), ``maxpool`` (Faster R-CNN), ``none``.
            score_thresh: detections below this score are dropped at inference.
            nms_thresh: IoU of non-maximum suppression at inference.
            detections_per_img: most detections kept per image (also mAP's largest max-detections).
            anchor_scale: anchor side = ``anchor_scale x stride`` of each level.
            head_convs: conv layers in each of FCOS's two towers (torchvision's 4; 2 is a compact
                head, about half its FLOPs at 96x96 with a 128-channel FPN). FCOS only.
            regression_bias: FCOS only: the initial bias of its box-regression conv, so that
                each location first predicts a box ``regression_bias`` strides to each side (the
                FCOS paper's ``exp(s·x)`` starts at 1). ``None`` keeps torchvision's 0, whose
                ReLU starts boxes at ~0.1 stride; from there the regression can die at the first
                steps (COCO128 fine-tuning: GIoU loss stuck at 1.000, mAP 0), which 1.0 avoids.
            head_options: extra keyword arguments of the torchvision detector.
            num_sample_images: validation images drawn with predicted and true boxes.
            test_time_flip: at test and predict, detect on each image and on its mirror image and
                fuse the two sets box by box (:mod:`visionsuite.models.detection.flip`): two forward
                passes per image. Validation, which selects the checkpoint, keeps one pass.
            **kwargs: optimisation and checkpointing options of :class:`BaseTask`.
        """
        super().__init__(**kwargs)

    @property
    def image_hw(self) -> tuple[int, int]:
        size = self.hparams.image_size
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def configure_models(self) -> None:
        hp = self.hparams
        if hp.head == "fcos" and hp.fpn_channels % 32:  # torchvision's FCOS head: GroupNorm(32, channels)
            raise ConfigError(
                f"DetectionTask: fpn_channels must be a multiple of 32 for the fcos head (its GroupNorm has"
                f" 32 groups), got {hp.fpn_channels}"
            )
        body = backbone_with_fpn(
            hp.backbone, out_strides=tuple(hp.out_strides), out_channels=hp.fpn_channels,
            extra_blocks=hp.extra_blocks, in_chans=hp.in_chans, weights=hp.weights, **(hp.backbone_options or {}),
        )  # fmt: skip
        self.detector = build_detector(
            hp.head, body, hp.num_classes, image_size=self.image_hw, in_chans=hp.in_chans,
            score_thresh=hp.score_thresh, nms_thresh=hp.nms_thresh, detections_per_img=hp.detections_per_img,
            anchor_scale=hp.anchor_scale, head_convs=hp.head_convs, regression_bias=hp.regression_bias,
            **(hp.head_options or {}),
        )  # fmt: skip
        #: classes the head's classifier is built with (the background included where it has one).
        self.head_classes = head_num_classes(hp.head, hp.num_classes)

    def configure_metrics(self) -> MetricCollection:
        return MetricCollection({"map": detection_metrics(max_detections=self.hparams.detections_per_img)})

    def stage_metrics(self, stage: str, template: MetricCollection | None) -> MetricCollection | None:
        # a detector in training mode returns losses only: no training metrics
        return None if stage == "train" else super().stage_metrics(stage, template)

    def expected_data_classes(self) -> int:
        """Object classes the head predicts: its classifier's classes less the background slot."""
        return self.head_classes - LABEL_OFFSET[self.hparams.head]

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.datamodule
        size = getattr(datamodule, "image_size", None)
        if size is not None and tuple(size) != self.image_hw:
            raise ConfigError(
                f"model.image_size={list(self.image_hw)} but the data yields {list(size)} images; "
                f"set model.init_args.image_size: {list(size)}"
            )
        if getattr(datamodule, "train_window", None) is not None:
            # the detectors' own transform resizes to image_size, and SSD's anchors scale with the batch
            raise ConfigError("data.train_window is not supported for detection: train on whole image_size images")

    def default_callbacks(self) -> list[Callback]:
        extras: list[Callback] = []
        fn = self.trainer.state.fn
        if fn in ("fit", "validate", "test"):  # overlays after each validation and at test
            extras.append(FigureLogger())
        if fn == "predict":
            extras.append(DetectionPredictionWriter())
        return [*super().default_callbacks(), *extras]

    # -- steps -----------------------------------------------------------------------------
    def build_targets(self, batch: dict[str, Any]) -> Targets:
        """Per-image ``{"boxes", "labels"}`` (labels ``0..K-1``) from the batch: done once per batch."""
        return [{"boxes": b, "labels": lab} for b, lab in zip(batch[BBOX_XYXY], batch[BBOX_LABEL], strict=True)]

    def forward(self, images: Tensor) -> Targets:
        """Detections per image: ``{"boxes" (batch pixels, xyxy), "scores", "labels" (0..K-1)}``."""
        return self.detector(images)

    def detect(self, images: Tensor, flip: bool = False) -> Targets:
        """Detections per image; with ``flip``, those of ``images`` and of their mirror images fused."""
        detections = self.detector(images)
        if not flip:
            return detections
        mirrored = self.detector(images.flip(-1))
        hp = self.hparams
        return merge_flipped(detections, mirrored, images.shape[-1], hp.nms_thresh, hp.detections_per_img)

    def shared_step(self, batch: dict[str, Any], stage: str) -> StepOutput:
        targets = self.build_targets(batch)
        if self.detector.training:
            losses = self.detector(batch[IMAGE], [t["boxes"] for t in targets], [t["labels"] for t in targets])
            return StepOutput(sum(losses.values()), terms=losses)
        return StepOutput(None, self.detect(batch[IMAGE], flip=stage == "test" and self.hparams.test_time_flip), targets)

    def _end_epoch(self, stage: str, metrics: MetricCollection | None) -> None:
        super()._end_epoch(stage, metrics)
        results = self.stage_results.get(stage, {})
        if f"{stage}/map" not in results:
            return
        raw = {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith(f"{stage}/")}
        per_class = {k: v for k, v in summarize(raw, self.class_names()).items() if k.startswith("ap/")}
        if per_class:
            self.log_dict({f"{stage}/{k}": v for k, v in per_class.items()})
        if stage == "test" and self._trainer is not None and self.trainer.is_global_zero:
            self.write_per_class_table(Path(self.trainer.default_root_dir) / "per_class_ap.md", raw)

    def write_per_class_table(self, path: Path, results: dict[str, Tensor]) -> Path:
        """A Markdown table of AP@[.5:.95] per class (classes without test boxes marked ``-``)."""
        names = self.class_names()
        ap = dict.fromkeys(names, "-")
        per_class, classes = results.get("map_per_class"), results.get("classes")
        if per_class is not None and classes is not None and per_class.numel() == classes.numel():
            for value, cls in zip(per_class.reshape(-1).tolist(), classes.reshape(-1).tolist()):
                if value >= 0:
                    ap[names[cls]] = f"{value:.4f}"
        lines = ["| class | AP@[.5:.95] |", "|---|---|", *(f"| {n} | {v} |" for n, v in ap.items())]
        lines.append(f"| **all (mAP)** | {float(results['map']):.4f} |")
        lines.append(f"\nmAP@.5 {float(results['map_50']):.4f}, mAP@.75 {float(results['map_75']):.4f}\n")
        write_text_atomic(path, "\n".join(lines))
        return path

    # -- pictures and predictions ----------------------------------------------------------
    def display_images(self, images: Tensor) -> Tensor:
        """Normalised batch images → uint8 [B, C, H, W] as the data module stored them."""
        return (self.display_pixels(images) * 255).round().to(torch.uint8)

    def figures(self, stage: str) -> dict[str, Any]:
        """The first images of ``stage``'s first batch: predictions (left) beside the truth (right),
        enlarged so labels are readable; W&B also gets the interactive box overlays."""
        if stage not in self.first_batches:
            return {}
        batch, out = self.first_batches[stage]
        names = self.class_names()
        k = min(self.hparams.num_sample_images, len(batch[IMAGE]))
        images = self.display_images(batch[IMAGE][:k].detach().cpu())
        pictures: dict[str, Any] = {}
        for i in range(k):
            pred = {key: v.detach().cpu() for key, v in out.preds[i].items()}
            truth = {key: v.detach().cpu() for key, v in out.target[i].items()}
            zoom = max(1, 256 // max(images.shape[-2:]))
            big = images[i].repeat_interleave(zoom, -2).repeat_interleave(zoom, -1)
            shown = pred["scores"] >= max(self.hparams.score_thresh, FIGURE_MIN_SCORE)  # W&B gets all, with a slider
            left = _drawn(big, pred["boxes"][shown] * zoom, pred["labels"][shown], names, pred["scores"][shown])
            right = _drawn(big, truth["boxes"] * zoom, truth["labels"], names)
            gap = torch.full((3, big.shape[-2], 4), 255, dtype=torch.uint8)
            pictures[f"{stage}/boxes_{i}"] = AnnotatedImage(
                image=torch.cat([left, gap, right], dim=-1).float() / 255,
                overlay_image=images[i].float() / 255,
                overlays={"boxes": wandb_boxes(names, pred, truth)},
            )
        return pictures

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        found = self.detect(batch[IMAGE], flip=self.hparams.test_time_flip)
        detections = [{k: v.detach().cpu() for k, v in d.items()} for d in found]
        return {"paths": list(batch["path"]), "detections": detections, "images": self.display_images(batch[IMAGE].cpu())}


def _drawn(image: Tensor, boxes: Tensor, labels: Tensor, names: list[str], scores: Tensor | None = None) -> Tensor:
    """``image`` with its boxes drawn (uint8 [3, H, W]); an image without boxes is shown as it is."""
    if len(boxes):
        return draw_detections(image, boxes, labels, names, scores)
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image
