"""Object detection: a torchvision head (RetinaNet, FCOS, SSD, SSDlite, Faster R-CNN) or the YOLO-style head on any
backbone of the library under an FPN, the heads' own losses, COCO-style mAP.

The data module resizes and normalises, so the detector's own transform is a pass-through
(:mod:`visionsuite.models.detection.detector`); boxes arrive as ``bbox_xyxy``/``bbox_label`` lists in
batch pixels, and the task turns them into per-image targets once per batch.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback
from torch import Tensor
from torchmetrics import MetricCollection

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
    computes_train_metrics = False  # a detector in training mode returns losses only
    evaluation_options = BaseTask.evaluation_options | {
        "score_thresh", "nms_thresh", "detections_per_img", "num_sample_images", "test_time_flip",
    }  # fmt: skip
    training_options = BaseTask.training_options | {"weights", "regression_bias", "detector_weights"}

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
        detector: str | None = None,
        detector_weights: str | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            head: retinanet, fcos, ssd, ssdlite, fasterrcnn or yolo (the YOLO-style head:
                :mod:`visionsuite.models.detection.yolo`).
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
            detector: a whole torchvision detector instead of ``head`` on ``backbone`` + FPN:
                fasterrcnn_resnet50_fpn, fasterrcnn_resnet50_fpn_v2, fasterrcnn_mobilenet_v3_large_fpn,
                retinanet_resnet50_fpn_v2, fcos_resnet50_fpn or ssdlite320_mobilenet_v3_large
                (:mod:`visionsuite.models.detection.pretrained`). It brings its own backbone, FPN and
                anchors: ``head``, ``backbone``, ``backbone_options``, ``weights``, ``out_strides``,
                ``fpn_channels``, ``extra_blocks``, ``anchor_scale``, ``head_convs`` and
                ``regression_bias`` must keep their defaults; ``head_options`` go to its torchvision
                constructor; ``in_chans`` must be 3.
            detector_weights: the whole detector's starting weights (``detector`` required):
                ``DEFAULT``, a torchvision weights name (``COCO_V1`` or in full
                ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``: read from the torch hub cache,
                downloaded there when absent) or a ``.pth`` file of the same architecture. Every
                layer is loaded but the class-indexed ones, whose rows are taken over for the data
                classes with a COCO name when the trainer sets the task up (the rest start fresh;
                one line reports which). The data must be normalised as the weights were trained
                (ImageNet's mean/std; SSDlite's 0.5/0.5), else setup stops with the values to set.
                ``None``: ``detector`` starts from random weights.
            **kwargs: optimisation and checkpointing options of :class:`BaseTask`.
        """
        super().__init__(**kwargs)

    @property
    def image_hw(self) -> tuple[int, int]:
        size = self.hparams.image_size
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def configure_models(self) -> None:
        hp = self.hparams
        #: whole-detector weights: the file's class rows, waiting for the data's class names (:meth:`setup`),
        #: and the input normalisation they were trained with.
        self.coco_rows: Any = None
        self.weights_normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        if hp.detector is not None or hp.detector_weights is not None:
            self._configure_whole_detector()
            return
        if hp.head == "fcos" and hp.fpn_channels % 32:  # torchvision's FCOS head: GroupNorm(32, channels)
            raise ConfigError(
                f"DetectionTask: fpn_channels must be a multiple of 32 for the fcos head (its GroupNorm has"
                f" 32 groups), got {hp.fpn_channels}"
            )
        if hp.head == "yolo" and hp.fpn_channels < 2:  # its C2f blocks split the channels into two halves
            raise ConfigError(
                f"DetectionTask: fpn_channels must be at least 2 for the yolo head (its C2f blocks split the"
                f" channels into two halves), got {hp.fpn_channels}"
            )
        body = backbone_with_fpn(
            hp.backbone, out_strides=tuple(hp.out_strides), out_channels=hp.fpn_channels,
            # yolo adds its own bottom-up PAN over the out_strides levels: the FPN's extra levels are not used
            extra_blocks="none" if hp.head == "yolo" else hp.extra_blocks,
            in_chans=hp.in_chans, weights=hp.weights, **(hp.backbone_options or {}),
        )  # fmt: skip
        self.detector = build_detector(
            hp.head, body, hp.num_classes, image_size=self.image_hw, in_chans=hp.in_chans,
            score_thresh=hp.score_thresh, nms_thresh=hp.nms_thresh, detections_per_img=hp.detections_per_img,
            anchor_scale=hp.anchor_scale, head_convs=hp.head_convs, regression_bias=hp.regression_bias,
            **(hp.head_options or {}),
        )  # fmt: skip
        #: classes the head's classifier is built with (the background included where it has one).
        self.head_classes = head_num_classes(hp.head, hp.num_classes)

    def trunk(self) -> torch.nn.Module | None:
        """The backbone under the FPN (a torchvision detector's ``backbone.body``): what
        ``frozen_stages`` and ``backbone_lr_mult`` address. A whole torchvision detector with
        ``detector_weights`` comes with the stages torchvision freezes (its ``trainable_backbone_layers=3``);
        ``frozen_stages`` freezes the first N on top of those, it never unfreezes them."""
        backbone = getattr(self.detector.model, "backbone", None)
        body = getattr(backbone, "body", None)
        return body if isinstance(body, torch.nn.Module) else None

    def _configure_whole_detector(self) -> None:
        """``detector``: torchvision's whole detector (:mod:`visionsuite.models.detection.pretrained`),
        with ``detector_weights`` loaded into all but its class rows, which :meth:`setup` takes by name."""
        import inspect

        from visionsuite.models.detection.pretrained import (
            DETECTORS,
            WEIGHTS_IN_CHECKPOINT,
            arch_of,
            build_coco_detector,
            load_detector_weights,
        )

        hp = self.hparams
        if hp.detector is None:
            raise ConfigError(f"model.detector_weights needs model.detector: one of {', '.join(DETECTORS)}")
        arch_of(hp.detector)
        defaults = inspect.signature(DetectionTask.__init__).parameters
        plain = lambda v: list(v) if isinstance(v, (list, tuple)) else v  # YAML lists vs tuple defaults
        own = ("head", "backbone", "backbone_options", "weights", "out_strides", "fpn_channels", "extra_blocks",
               "anchor_scale", "head_convs", "regression_bias")  # fmt: skip
        given = [f"{k}={hp[k]!r}" for k in own if plain(hp[k]) != plain(defaults[k].default)]
        if given:
            raise ConfigError(f"detector={hp.detector} brings its own backbone, FPN and anchors: drop {', '.join(given)}")
        if hp.in_chans != 3:
            raise ConfigError(f"detector={hp.detector} takes RGB images: set model.init_args.in_chans: 3 (got {hp.in_chans})")
        self.detector, expects = build_coco_detector(
            hp.detector, hp.num_classes, pretrained=hp.detector_weights is not None, score_thresh=hp.score_thresh,
            nms_thresh=hp.nms_thresh, detections_per_img=hp.detections_per_img, **(hp.head_options or {}),
        )  # fmt: skip
        self.head_classes = self.detector.num_classes + self.detector.label_offset
        if hp.detector_weights not in (None, WEIGHTS_IN_CHECKPOINT):
            self.coco_rows = load_detector_weights(self.detector, hp.detector, str(hp.detector_weights))
            self.weights_normalisation = expects

    def configure_metrics(self) -> MetricCollection:
        return MetricCollection({"map": detection_metrics(max_detections=self.hparams.detections_per_img)})

    def stage_metrics(self, stage: str, template: MetricCollection | None) -> MetricCollection | None:
        metrics = super().stage_metrics(stage, template)
        if stage == "test" and metrics is not None and template is not None:  # the data of figures("test")
            from visionsuite.models.detection.confusion import (
                DetectionConfusionMatrix,
                PrecisionTableMAP,
            )

            hp = self.hparams
            tables = {
                "map": PrecisionTableMAP.like(template["map"]),  # the same mAP, plus its precision-recall table
                "confusion_matrix": DetectionConfusionMatrix(hp.num_classes, score_thresh=hp.score_thresh),
            }
            metrics = MetricCollection({**dict(metrics.items(keep_base=True)), **tables}, prefix="test/")
        return metrics

    def expected_data_classes(self) -> int:
        """Object classes the head predicts: its classifier's classes less the background slot."""
        return self.head_classes - LABEL_OFFSET[self.detector.name]

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
        if self.coco_rows is not None and datamodule is not None:  # whole-detector weights (configure_models)
            self._adopt_coco_rows(datamodule)

    def _adopt_coco_rows(self, datamodule: Any) -> None:
        """Refuse data not normalised as the weights expect; then, once (before any checkpoint is
        restored, which then wins), the file's class rows for the data classes with a COCO name."""
        from lightning.pytorch.utilities import rank_zero_info

        from visionsuite.models.detection.pretrained import normalisation_mismatch

        if hasattr(datamodule, "mean") and self.weights_normalisation is not None:
            normalize = getattr(datamodule, "normalize", True)
            problem = normalisation_mismatch(self.hparams.detector, self.weights_normalisation, normalize,
                                             tuple(datamodule.mean), tuple(datamodule.std))  # fmt: skip
            if problem:
                raise ConfigError(f"detector_weights {self.coco_rows.source}: {problem}")
        note = self.coco_rows.take(self.detector, self.class_names())
        if note:
            rank_zero_info(note)

    def prediction_writer(self) -> Callback:
        return DetectionPredictionWriter()

    # -- steps -----------------------------------------------------------------------------
    def build_targets(self, batch: dict[str, Any]) -> Targets:
        """Per-image ``{"boxes", "labels"}`` (labels ``0..K-1``) from the batch: done once per batch."""
        return [{"boxes": b, "labels": lab} for b, lab in zip(batch[BBOX_XYXY], batch[BBOX_LABEL], strict=True)]

    def forward(self, images: Tensor) -> Targets:
        """Detections per image: ``{"boxes" (batch pixels, xyxy), "scores", "labels" (0..K-1)}``."""
        return self.detector(images)

    def inference(self, images: Tensor) -> Targets:
        return self.detector(images)

    def uses_test_time_augmentation(self) -> bool:
        return bool(self.hparams.test_time_flip)

    def augmented_inference(self, images: Tensor) -> Targets:
        """The detections of ``images`` and of their mirror images, fused box by box
        (:func:`~visionsuite.models.detection.flip.merge_flipped`)."""
        hp = self.hparams
        detections, mirrored = self.detector(images), self.detector(images.flip(-1))
        return merge_flipped(detections, mirrored, images.shape[-1], hp.nms_thresh, hp.detections_per_img)

    def detect(self, images: Tensor, flip: bool = False) -> Targets:
        """Detections per image; with ``flip``, those of ``images`` and of their mirror images fused."""
        return self.augmented_inference(images) if flip else self.inference(images)

    def shared_step(self, batch: dict[str, Any], stage: str) -> StepOutput:
        targets = self.build_targets(batch)
        if self.detector.training:
            losses = self.detector(batch[IMAGE], [t["boxes"] for t in targets], [t["labels"] for t in targets])
            return StepOutput(sum(losses.values()), terms=losses)
        return StepOutput(None, self.evaluation_output(batch[IMAGE], stage), targets)

    def on_stage_end(self, stage: str) -> None:
        """Keep the IoU-.5 precision curves of the test's table, log AP per class, and after test
        write the per-class AP table (``per_class_ap.md``, W&B, TensorBoard)."""
        results = self.stage_results.get(stage, {})
        if stage == "test" and "test/precision" in results:  # keep the IoU-.5 curves of the T x R x K x A x M table
            from visionsuite.models.detection.confusion import precision_at_50

            results["test/precision_50"] = precision_at_50(results.pop("test/precision"))
            results.pop("test/recall", None)
            results.pop("test/scores", None)
        if f"{stage}/map" not in results:
            return
        raw = {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith(f"{stage}/")}
        per_class = {k: v for k, v in summarize(raw, self.class_names()).items() if k.startswith("ap/")}
        if per_class:
            self.log_dict({f"{stage}/{k}": v for k, v in per_class.items()})
        if stage == "test":
            rows, text = self.per_class_table(raw)
            self.write_table(stage, "per_class_ap", ["class", "AP@[.5:.95]"], rows, text)

    def per_class_table(self, results: dict[str, Tensor]) -> tuple[list[list[str]], str]:
        """AP@[.5:.95] per class (classes without test boxes marked ``-``): the rows, and the
        Markdown table with mAP, mAP@.5 and mAP@.75 below them."""
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
        return [[n, v] for n, v in ap.items()], "\n".join(lines)

    # -- pictures and predictions ----------------------------------------------------------
    def display_images(self, images: Tensor) -> Tensor:
        """Normalised batch images → uint8 [B, C, H, W] as the data module stored them."""
        return (self.display_pixels(images) * 255).round().to(torch.uint8)

    def figures(self, stage: str) -> dict[str, Any]:
        """The first images of ``stage``'s first batch, each a titled figure: the confident predictions
        (left) beside the truth (right), enlarged so labels are readable, with a legend of the classes
        drawn; W&B also gets the interactive box overlays (every score, with a slider). After test also
        the precision-recall curves at IoU 0.5 and the detection confusion matrix."""
        names = self.class_names()
        pictures: dict[str, Any] = {}
        if stage == "test":
            from visionsuite.outputs.detection_figures import test_summary_figures

            pictures.update(test_summary_figures(self.stage_results.get("test", {}), names, self.hparams.score_thresh))
        if stage not in self.first_batches:
            return pictures
        batch, out = self.first_batches[stage]
        k = min(self.hparams.num_sample_images, len(batch[IMAGE]))
        images = self.display_images(batch[IMAGE][:k].detach().cpu())
        floor = max(self.hparams.score_thresh, FIGURE_MIN_SCORE)
        for i in range(k):
            pred = {key: v.detach().cpu() for key, v in out.preds[i].items()}
            truth = {key: v.detach().cpu() for key, v in out.target[i].items()}
            shown = pred["scores"] >= floor
            confident = {key: pred[key][shown] for key in ("boxes", "labels", "scores")}
            pictures[f"{stage}/boxes_{i}"] = AnnotatedImage(
                image=_boxes_figure(images[i], confident, truth, names, floor),
                overlay_image=images[i].float() / 255,
                overlays={"boxes": wandb_boxes(names, pred, truth)},
            )
        return pictures

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        found = self.evaluation_output(batch[IMAGE], "predict")
        detections = [{k: v.detach().cpu() for k, v in d.items()} for d in found]
        return {"paths": list(batch["path"]), "detections": detections, "images": self.display_images(batch[IMAGE].cpu())}


def _boxes_figure(image: Tensor, pred: dict[str, Tensor], truth: dict[str, Tensor], names: list[str], floor: float) -> Any:
    """``image`` (uint8 [C, H, W]) twice, in columns titled "prediction (score ≥ floor)" and "ground
    truth", with a legend of the classes drawn: :func:`draw_detections` enlarges a small image, so
    both columns share one zoom and the figure shows them pixel for pixel."""
    from visionsuite.outputs.detection_pictures import class_palette
    from visionsuite.outputs.figures import labelled_grid

    left = draw_detections(image, pred["boxes"], pred["labels"], names, pred["scores"])
    right = draw_detections(image, truth["boxes"], truth["labels"], names)
    palette = class_palette(len(names))
    present = sorted({int(c) for c in torch.cat([pred["labels"], truth["labels"]]).tolist()})
    legend = [(names[c], palette[c]) for c in present if 0 <= c < len(names)]
    title = f"{len(pred['boxes'])} boxes predicted, {len(truth['boxes'])} true"
    return labelled_grid([[left.float() / 255, right.float() / 255]], [f"prediction (score ≥ {floor:g})", "ground truth"],
                         title=title, legend=legend)  # fmt: skip
