"""Image classification: any backbone of the library, cross-entropy, top-1/top-5 accuracy."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from lightning.pytorch import Callback

from visionsuite.backbones import create_backbone
from visionsuite.callbacks import ClassificationImageLogger, PredictionCSVWriter
from visionsuite.errors import ConfigError
from visionsuite.tasks.base import BaseTask


class ClassificationTask(BaseTask):
    """Train a classifier; the best checkpoint is chosen on validation top-1 accuracy."""

    monitor = "val/acc"
    mode = "max"

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

    def configure_metrics(self) -> None:
        n = self.hparams.num_classes
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(n, average="micro"),
                "acc_top5": MulticlassAccuracy(n, top_k=min(5, n), average="micro"),
            }
        )
        # training accuracy is updated on every step: top-1 only, without input validation (the
        # validation alone costs more than the update on small models; val/test keep it).
        self.train_metrics = MetricCollection(
            {"acc": MulticlassAccuracy(n, average="micro", validate_args=False)}, prefix="train/"
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.test_confusion = MulticlassConfusionMatrix(n)
        #: filled at the end of ``test`` (on every rank: computing syncs them) for the image logger.
        self.confusion_matrix: Tensor | None = None
        self.sample_batch: dict[str, Tensor] | None = None

    def setup(self, stage: str) -> None:
        """Refuse data whose class or channel count disagrees with the model, in one line."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_classes = getattr(datamodule, "num_classes", None)
        if data_classes is not None and stage != "predict" and data_classes != self.hparams.num_classes:
            raise ConfigError(
                f"model.num_classes={self.hparams.num_classes} but the data has {data_classes} classes; "
                f"set model.init_args.num_classes: {data_classes}"
            )
        data_chans = getattr(datamodule, "in_chans", None)
        if data_chans is not None and data_chans != self.hparams.in_chans:
            raise ConfigError(
                f"model.in_chans={self.hparams.in_chans} but the data has {data_chans} channels; "
                f"set model.init_args.in_chans: {data_chans}"
            )

    def default_callbacks(self) -> list[Callback]:
        # only what the running stage uses: every callback costs a few µs per hook per step
        extras: list[Callback] = []
        if self.trainer.testing:
            extras.append(ClassificationImageLogger())
        if self.trainer.predicting:
            extras.append(PredictionCSVWriter())
        return [*super().default_callbacks(), *extras]

    # -- steps -----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        x, y = batch["image"], batch["label"]
        out = self.model(x)
        if isinstance(out, tuple):  # main logits + auxiliary classifiers (GoogLeNet)
            logits, aux = out[0], out[1:]
            loss = self.criterion(logits, y) + self.hparams.aux_loss_weight * sum(self.criterion(a, y) for a in aux)
        else:
            logits = out
            loss = self.criterion(logits, y)
        self.train_metrics.update(logits.detach(), y)
        if self.global_step % self.trainer.log_every_n_steps == 0:  # logging every step costs ~35% on small nets
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=len(y), sync_dist=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log_dict(self.train_metrics.compute())
        self.train_metrics.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        x, y = batch["image"], batch["label"]
        logits = self(x)
        self.val_loss.update(self.criterion(logits, y), weight=len(y))
        self.val_metrics.update(logits, y)

    def on_validation_epoch_end(self) -> None:
        self.log_dict({**self.val_metrics.compute(), "val/loss": self.val_loss.compute()}, prog_bar=True)
        self.val_metrics.reset()
        self.val_loss.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        x, y = batch["image"], batch["label"]
        logits = self(x)
        self.test_loss.update(self.criterion(logits, y), weight=len(y))
        self.test_metrics.update(logits, y)
        self.test_confusion.update(logits, y)
        if batch_idx == 0:
            k = self.hparams.num_sample_images
            self.sample_batch = {"images": x[:k].detach(), "labels": y[:k], "preds": logits[:k].argmax(1)}

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def on_test_epoch_end(self) -> None:
        self.confusion_matrix = self.test_confusion.compute().cpu()
        self.log_dict({**self.test_metrics.compute(), "test/loss": self.test_loss.compute()})
        self.test_metrics.reset()
        self.test_loss.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        x, paths = batch["image"], batch["path"]
        probs = torch.softmax(self(x), dim=1)
        prob, pred = probs.max(dim=1)
        return {"paths": list(paths), "pred": pred.cpu(), "prob": prob.cpu()}
