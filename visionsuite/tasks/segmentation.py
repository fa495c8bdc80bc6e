"""Semantic segmentation: SegNet, U-Net and smp architectures by name, one loss by name, the SegNet
paper's metrics (global accuracy, class-average accuracy, mIoU, per-class IoU; void ignored)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from lightning.pytorch import Callback
from torch import Tensor
from torchmetrics import MetricCollection

from visionsuite.core.options import check_arguments
from visionsuite.errors import ConfigError
from visionsuite.models.segmentation import (
    build_loss,
    build_segmentation_model,
    median_frequency_weights,
    segmentation_metrics,
)
from visionsuite.outputs import MaskOverlay, SegmentationMaskWriter
from visionsuite.tasks.base import BaseTask, StepOutput

#: the file the test stage writes into the run folder.
IOU_TABLE = "per_class_iou.md"


class SegmentationTask(BaseTask):
    """Train a segmentation model; the best checkpoint is chosen on validation mIoU."""

    monitor = "val/miou"
    mode = "max"
    headline_format = "{:.2%}"
    target_key = "mask"
    # no training metrics: a confusion matrix over every training pixel would cost a noticeable
    # share of a step; validation gives the numbers that select the model
    computes_train_metrics = False
    evaluation_options = BaseTask.evaluation_options | {"test_time_flip", "num_overlay_images", "palette"}
    training_options = BaseTask.training_options | {
        "loss", "loss_options", "class_weights", "encoder_lr_mult", "frozen_encoder_stages",
    }  # fmt: skip
    #: the options this task named before :class:`BaseTask` shared them (old configs and checkpoints).
    ALIASES: ClassVar[dict[str, tuple[str, float]]] = {"encoder_lr_mult": ("backbone_lr_mult", 1.0), "frozen_encoder_stages": ("frozen_stages", 0)}

    def __init__(
        self,
        model: str = "unet",
        num_classes: int = 11,
        in_chans: int = 3,
        ignore_index: int = 255,
        model_options: dict[str, Any] | None = None,
        loss: str = "cross_entropy",
        loss_options: dict[str, float] | None = None,
        class_weights: str | list[float] | None = None,
        palette: list[list[int]] | None = None,
        num_overlay_images: int = 4,
        test_time_flip: bool = False,
        encoder_lr_mult: float = 1.0,
        frozen_encoder_stages: int = 0,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            model: ``segnet``, ``unet``, ``unet:<backbone>`` or ``smp:<Arch>`` (see
                :func:`~visionsuite.models.segmentation.build_segmentation_model`).
            num_classes: classes without void; must equal the data module's.
            in_chans: image channels.
            ignore_index: the void mask value (loss and metrics skip it); must equal the data's.
            model_options: options of the model (``encoder``, ``encoder_weights``, ``depth`` …).
            loss: ``cross_entropy`` (``ce``), ``dice``, ``focal`` or ``ce+dice``.
            loss_options: options of the loss (``gamma``, ``dice_weight``, ``label_smoothing``).
            class_weights: ``none``, ``median_frequency`` (computed from the training masks at
                fit, as the SegNet paper does; stored in the checkpoint) or one weight per class.
            palette: class colours of figures and predicted masks (default: the data module's).
            num_overlay_images: validation images whose mask overlays are drawn every validation.
            test_time_flip: at test and predict, average the class probabilities of each image
                and its mirror image (flip test-time augmentation, as mmsegmentation's
                ``flip=True``): two forward passes per image for a steadier mask. Validation,
                which selects the checkpoint, keeps one pass.
            encoder_lr_mult: the earlier name of :class:`BaseTask`'s ``backbone_lr_mult`` (here:
                the encoder's learning rate = ``lr`` x this), still read.
            frozen_encoder_stages: the earlier name of :class:`BaseTask`'s ``frozen_stages`` (here:
                the encoder's first N stages), still read.
            **kwargs: optimisation, fine-tuning (``frozen_stages``, ``backbone_lr_mult``, …; the
                trunk is the encoder) and checkpointing options of :class:`BaseTask`.
        """
        if isinstance(class_weights, str) and class_weights not in ("none", "median_frequency"):
            raise ConfigError(f"class_weights must be none, median_frequency or a list, got {class_weights!r}")
        if isinstance(class_weights, list) and len(class_weights) != num_classes:
            raise ConfigError(f"class_weights has {len(class_weights)} values for {num_classes} classes")
        for old, value in (("encoder_lr_mult", encoder_lr_mult), ("frozen_encoder_stages", frozen_encoder_stages)):
            new, default = self.ALIASES[old]
            check_arguments(self, {old: value})
            if value != default:
                if kwargs.get(new, default) not in (default, value):
                    raise ConfigError(f"{old}={value} and {new}={kwargs[new]}: give {new} only ({old} is its old name)")
                kwargs[new] = value
        super().__init__(**kwargs)

    # -- parts --------------------------------------------------------------------------------
    def configure_models(self) -> None:
        hp = self.hparams
        self.model = build_segmentation_model(
            hp.model, num_classes=hp.num_classes, in_chans=hp.in_chans, **(hp.model_options or {})
        )

    def weights_label(self, weights: object = None) -> str:
        options = self.hparams.model_options or {}
        encoder = f" encoder {options['encoder']}" if options.get("encoder") else ""
        return f"{self.hparams.model}{encoder} weights {options.get('encoder_weights')!r}"

    def trunk(self) -> torch.nn.Module | None:
        """The encoder: what ``frozen_stages`` and ``backbone_lr_mult`` address."""
        encoder = getattr(self.model, "encoder", None)
        return encoder if isinstance(encoder, torch.nn.Module) else None

    def configure_losses(self) -> None:
        hp = self.hparams
        weights = hp.class_weights
        initial = torch.tensor(weights, dtype=torch.float32) if isinstance(weights, list) else torch.ones(hp.num_classes)
        #: the class weights in use (in the checkpoint, so test/predict reuse those of training).
        self.register_buffer("class_weight", initial)
        weighted = weights not in (None, "none")
        self.criterion = build_loss(
            hp.loss, ignore_index=hp.ignore_index, class_weights=self.class_weight if weighted else None,
            **(hp.loss_options or {}),
        )  # fmt: skip

    def configure_metrics(self) -> MetricCollection:
        return segmentation_metrics(self.hparams.num_classes, self.hparams.ignore_index)

    def setup(self, stage: str) -> None:
        """Check the data's void value; compute median-frequency weights from its training masks."""
        super().setup(stage)
        dm = self.datamodule
        data_ignore = getattr(dm, "ignore_index", None)
        if data_ignore is not None and stage != "predict" and data_ignore != self.hparams.ignore_index:
            raise ConfigError(
                f"model.ignore_index={self.hparams.ignore_index} but the data's void value is {data_ignore}; "
                f"set model.init_args.ignore_index: {data_ignore}"
            )
        if stage == "fit" and self.hparams.class_weights == "median_frequency":
            train = dm.train_set if dm is not None else None
            if train is None or train.masks is None:
                raise ConfigError("class_weights: median_frequency needs a data module with training masks")
            masks = train.masks[train.indices]
            self.class_weight.copy_(median_frequency_weights(masks, self.hparams.num_classes, self.hparams.ignore_index))

    def prediction_writer(self) -> Callback:
        return SegmentationMaskWriter()

    # -- steps --------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def uses_test_time_augmentation(self) -> bool:
        return bool(self.hparams.test_time_flip)

    def augmented_inference(self, images: Tensor) -> Tensor:
        """The log of the mean softmax of ``images`` and of their mirror images (mirrored back): a
        valid input for the loss and for argmax."""
        logits = self.model(images)
        mirrored = self.model(images.flip(-1)).flip(-1)
        # log((p + q) / 2) computed from log-probabilities: finite where a probability underflows
        return torch.logaddexp(logits.log_softmax(1), mirrored.log_softmax(1)) - math.log(2)

    def segment(self, image: Tensor, flip: bool = False) -> Tensor:
        """Per-pixel class scores; with ``flip``, fused with the mirror image's (:meth:`augmented_inference`)."""
        return self.augmented_inference(image) if flip else self.model(image)

    def shared_step(self, batch: dict[str, Any], stage: str) -> StepOutput:
        logits = self.evaluation_output(batch["image"], stage)
        loss = self.criterion(logits, batch["mask"])
        # max(1).indices, not argmax(1): the same first-maximum index, ~5x faster on CPU over the
        # class dimension of [B, C, H, W] (benchmarks/results/segmentation.md, validation share)
        return StepOutput(loss, logits.detach().max(1).indices, batch["mask"])

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Logits of the fitted images (the writer maps them back to each original size)."""
        logits = self.evaluation_output(batch["image"], "predict")
        return {"paths": list(batch["path"]), "logits": logits.float().cpu()}

    # -- what people look at ----------------------------------------------------------------------
    def palette(self) -> list[list[int]]:
        """Class colours: the config's, else the data module's."""
        if self.hparams.palette is not None:
            return [list(c) for c in self.hparams.palette]
        from visionsuite.data.segmentation import default_palette

        return list(getattr(self.datamodule, "palette", None) or default_palette(self.hparams.num_classes))

    def figures(self, stage: str) -> dict[str, Any]:
        """Mask overlays (image | truth | prediction) of the first ``num_overlay_images`` of the
        stage's first batch: a fixed set, since evaluation loaders do not shuffle."""
        if stage not in self.first_batches:
            return {}
        batch, out = self.first_batches[stage]
        k = self.hparams.num_overlay_images
        images = self.display_pixels(batch["image"][:k].detach().float())
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        overlay = MaskOverlay(
            images.cpu(), out.preds[:k].cpu(), out.target[:k].cpu(), self.class_names(), self.palette(),
            ignore_index=self.hparams.ignore_index,
        )  # fmt: skip
        return {f"{stage}/overlays": overlay}

    def on_stage_end(self, stage: str) -> None:
        """After test: the per-class IoU table (``per_class_iou.md``, W&B, TensorBoard)."""
        iou = self.stage_results.get(stage, {}).get("test/iou_per_class") if stage == "test" else None
        if iou is None:
            return
        results = self.stage_results[stage]
        rows = iou_rows(self.class_names(), iou.cpu().tolist())
        text = iou_markdown(rows, {k.split("/", 1)[1]: float(v) for k, v in results.items() if v.numel() == 1})
        self.write_table(stage, IOU_TABLE.removesuffix(".md"), ["class", "IoU %"], [list(r) for r in rows], text)


def iou_rows(names: list[str], values: list[float]) -> list[tuple[str, str]]:
    """(class, IoU in percent or ``n/a`` where undefined) per class."""
    return [(n, "n/a" if math.isnan(v) else f"{100 * v:.1f}") for n, v in zip(names, values, strict=True)]


def iou_markdown(rows: list[tuple[str, str]], scalars: dict[str, float]) -> str:
    """The per-class IoU table, then the summary metrics, as Markdown."""
    lines = ["| class | IoU % |", "|---|---:|", *(f"| {n} | {v} |" for n, v in rows), ""]
    for key in ("global_accuracy", "class_accuracy", "miou"):
        if key in scalars:
            lines.append(f"- {key}: {100 * scalars[key]:.1f}%")
    return "\n".join(lines) + "\n"
