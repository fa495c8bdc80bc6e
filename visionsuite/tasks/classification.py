"""Image classification: any backbone of the library, cross-entropy, top-1/top-5 accuracy."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from lightning.pytorch import Callback

from visionsuite.backbones import create_backbone
from visionsuite.callbacks import FigureLogger, PredictionCSVWriter
from visionsuite.tasks.base import BaseTask, StepOutput


class ClassificationTask(BaseTask):
    """Train a classifier; the best checkpoint is chosen on validation top-1 accuracy."""

    monitor = "val/acc"
    mode = "max"
    headline_format = "{:.2%}"

    def __init__(
        self,
        backbone: str = "lenet5",
        num_classes: int = 10,
        in_chans: int = 3,
        backbone_options: dict[str, Any] | None = None,
        weights: str | None = None,
        freeze_backbone: bool = False,
        label_smoothing: float = 0.0,
        aux_loss_weight: float = 0.3,
        num_sample_images: int = 32,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            backbone: a name from ``visionsuite.backbones.list_backbones()``, or
                ``tv/<torchvision model>`` / ``timm/<timm model>``.
            num_classes: number of classes; must equal the data module's.
            in_chans: image channels (1 for Fashion-MNIST, 3 for CIFAR-10).
            backbone_options: family options (``activation``, ``norm``, ``dropout``,
                ``padding_mode``, ``pooling``, ``init``, ``input_size``, …).
            weights: a state_dict file, or a weights name the backbone publishes.
            freeze_backbone: train only the classifier head (linear probing).
            label_smoothing: cross-entropy label smoothing.
            aux_loss_weight: weight of auxiliary classifier losses (GoogLeNet) during training.
            num_sample_images: how many test images the sample-prediction grid shows.
            **kwargs: optimisation and checkpointing options of :class:`BaseTask`.
        """
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        hp = self.hparams
        self.model = create_backbone(
            hp.backbone,
            num_classes=hp.num_classes,
            in_chans=hp.in_chans,
            weights=hp.weights,
            **(hp.backbone_options or {}),
        )
        if hp.freeze_backbone:
            self.model.freeze()

    def configure_losses(self) -> None:
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.hparams.label_smoothing)

    def configure_metrics(self) -> MetricCollection:
        n = self.hparams.num_classes
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(n, average="micro"),
                "acc_top5": MulticlassAccuracy(n, top_k=min(5, n), average="micro"),
            }
        )

    def stage_metrics(self, stage: str, template: MetricCollection | None) -> MetricCollection | None:
        n = self.hparams.num_classes
        if stage == "train":
            # updated on every step: top-1 only, without input validation (the validation alone
            # costs more than the update on small models; val/test keep it).
            return MetricCollection({"acc": MulticlassAccuracy(n, average="micro", validate_args=False)}, prefix="train/")
        metrics = super().stage_metrics(stage, template)
        if stage == "test" and metrics is not None:  # drawn by figures("test"), not logged (not a scalar)
            metrics.add_metrics({"confusion_matrix": MulticlassConfusionMatrix(n)})
        return metrics

    def default_callbacks(self) -> list[Callback]:
        # only what the running stage uses: every callback costs a few µs per hook per step
        extras: list[Callback] = []
        if self.trainer.testing:
            extras.append(FigureLogger())
        if self.trainer.predicting:
            extras.append(PredictionCSVWriter())
        return [*super().default_callbacks(), *extras]

    # -- steps -----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out

    def shared_step(self, batch: dict[str, Any], stage: str) -> StepOutput:
        x, y = batch["image"], batch["label"]
        out = self.model(x)
        if isinstance(out, tuple):  # main logits + auxiliary classifiers (GoogLeNet, training only)
            logits, aux = out[0], out[1:]
            loss = self.criterion(logits, y) + self.hparams.aux_loss_weight * sum(self.criterion(a, y) for a in aux)
        else:
            logits = out
            loss = self.criterion(logits, y)
        return StepOutput(loss, logits.detach(), y)

    def figures(self, stage: str) -> dict[str, Any]:
        """After test: a grid of the first test images with ``pred (truth)``, and the confusion matrix."""
        if stage != "test":
            return {}
        from visionsuite import figures  # matplotlib only when drawing

        dm = self.trainer.datamodule if self._trainer is not None else None
        names = list(getattr(dm, "class_names", None) or range(self.hparams.num_classes))
        pictures: dict[str, Any] = {}
        if "test" in self.first_batches:
            batch, out = self.first_batches["test"]
            k = self.hparams.num_sample_images
            images = figures.denormalize(batch["image"][:k], getattr(dm, "mean", None), getattr(dm, "std", None))
            pictures["test/samples"] = figures.sample_grid(images, batch["label"][:k], out.preds[:k].argmax(1), names)
        confusion = self.stage_results.get("test", {}).get("test/confusion_matrix")
        if confusion is not None:
            pictures["test/confusion_matrix"] = figures.confusion_figure(confusion.cpu(), names)
        return pictures

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        probs = torch.softmax(self(batch["image"]), dim=1)
        prob, pred = probs.max(dim=1)
        return {"paths": list(batch["path"]), "pred": pred.cpu(), "prob": prob.cpu()}
