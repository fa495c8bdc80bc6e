"""Image classification: any backbone of the library, cross-entropy, top-1/top-5 accuracy."""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from visionsuite.backbones import create_backbone
from visionsuite.models.test_time import TestTimeAugmentation, tta_logits
from visionsuite.outputs import PredictionCSVWriter
from visionsuite.tasks.base import BaseTask, StepOutput
from visionsuite.tasks.finetuning import Regime

#: training images a data-initialised first layer is computed from (airbench: 5,000).
DATA_INIT_IMAGES = 5000


#: ``torch.compile`` modes (``off``: eager).
CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


class ClassificationTask(BaseTask):
    """Train a classifier; the best checkpoint is chosen on validation top-1 accuracy."""

    evaluation_options = BaseTask.evaluation_options | {"num_sample_images", "test_time_augmentation", "compile_mode"}
    training_options = BaseTask.training_options | {
        "weights", "freeze_backbone", "finetune", "top_stages", "label_smoothing", "aux_loss_weight",
        "ema_decay", "ema_warmup",
    }  # fmt: skip

    #: the weights' input size is compared with the data's (and adopted, where the data resizes on the device).
    compares_input_size = True
    figure_functions = frozenset({"test"})  # the sample grid and the confusion matrix
    monitor = "val/acc"
    mode = "max"
    headline_format = "{:.2%}"
    target_key = "label"

    def __init__(
        self,
        backbone: str = "lenet5",
        num_classes: int = 10,
        in_chans: int = 3,
        backbone_options: dict[str, Any] | None = None,
        weights: str | None = None,
        freeze_backbone: bool = False,
        finetune: Regime = "full",
        top_stages: int = 1,
        label_smoothing: float = 0.0,
        aux_loss_weight: float = 0.3,
        ema_decay: float = 0.0,
        ema_warmup: bool = True,
        test_time_augmentation: TestTimeAugmentation = "none",
        compile_mode: CompileMode = "off",
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
            freeze_backbone: train only the classifier head (same as ``finetune: linear_probe``).
            finetune: ``full`` (every stage trains), ``linear_probe`` (frozen backbone, the head
                trains) or ``top_stages`` (the top ``top_stages`` stages and the head); frozen
                stages keep their batch-norm statistics (see :mod:`visionsuite.tasks.finetuning`).
            top_stages: how many of the top backbone stages train with ``finetune: top_stages``.
                ``frozen_stages``, ``unfreeze_at``, ``backbone_lr_mult`` and ``stage_lr_decay``
                are :class:`BaseTask`'s, shared with segmentation and detection.
            label_smoothing: cross-entropy label smoothing.
            aux_loss_weight: weight of auxiliary classifier losses (GoogLeNet) during training.
            ema_decay: keep an exponential moving average of all weights with this decay (e.g.
                0.99 for a few thousand steps, 0.999 for longer runs; 0: off). Validation, every
                checkpoint and therefore test/predict/export use the average
                (:class:`visionsuite.callbacks.ema.WeightEMA`); the raw weights keep training.
            ema_warmup: ramp the decay up as ``min(ema_decay, (1 + n) / (10 + n))`` after n
                updates, so a short run's average is not mostly its initialisation.
            test_time_augmentation: at test and predict, average the logits over views of each
                image: ``flip`` (the image and its mirror) or ``flip_translate`` (airbench's six
                views: also shifted one pixel both ways); ``none``. Validation, which picks the
                checkpoint, keeps one view. See :mod:`visionsuite.models.test_time`.
            compile_mode: ``torch.compile`` the network (not the task's loss and metrics) in
                this mode: ``default``, ``reduce-overhead`` (CUDA graphs: small batches on a GPU),
                ``max-autotune``, ``max-autotune-no-cudagraphs``; ``off``. Compiled in place
                (``nn.Module.compile``), so checkpoints keep their keys and load uncompiled. The
                first steps pay the compilation: 30-160 s on a CPU.
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

    def trunk(self) -> nn.Module:
        """The backbone: its stages are what the fine-tuning options address (the head always trains)."""
        return self.model

    def finetune_regime(self) -> tuple[Regime, int]:
        return ("linear_probe" if self.hparams.freeze_backbone else self.hparams.finetune), self.hparams.top_stages

    def on_fit_start(self) -> None:
        """Backbones whose first layer is set from data (airbench's whitening) get the first
        training images, normalised as batches are, unless a checkpoint already set it."""
        super().on_fit_start()
        dm = self.datamodule
        if not getattr(self.model, "needs_data_init", False) or dm is None or getattr(dm, "train_set", None) is None:
            return
        n = min(len(dm.train_set), DATA_INIT_IMAGES)
        batch = dm.transform_batch(dm.train_set[list(range(n))], train=False)
        self.model.init_from_images(batch["image"].to(self.device))
        rank_zero_info(f"{self.hparams.backbone}: first layer set from {n} training images (patch whitening)")

    def setup(self, stage: str) -> None:
        """The base checks (the weights' preprocessing among them), then ``compile_mode``."""
        super().setup(stage)
        self.compile_network()

    def compile_network(self) -> None:
        """``torch.compile`` the network in place, once, when ``compile_mode`` asks for it."""
        mode = self.hparams.compile_mode
        if mode == "off" or getattr(self, "_compiled", False):
            return
        self.model.compile(mode=mode)
        self._compiled = True
        rank_zero_info(f"{self.hparams.backbone}: torch.compile mode={mode} (the first steps compile)")

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

    def run_callbacks(self, checkpoint_dir: Any) -> list[Callback]:
        """The base run's callbacks, and the weight average when ``ema_decay`` is set: a run
        callback, so that a resumed ``fit`` finds its state in the checkpoint."""
        callbacks = super().run_callbacks(checkpoint_dir)
        if self.hparams.ema_decay:
            from visionsuite.callbacks.ema import WeightEMA

            callbacks.append(WeightEMA(self.hparams.ema_decay, warmup=self.hparams.ema_warmup))
        return callbacks

    def prediction_writer(self) -> Callback:
        return PredictionCSVWriter()

    # -- steps -----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out

    def inference(self, images: Tensor) -> Tensor | tuple[Tensor, ...]:
        """The network's logits (in training, GoogLeNet's auxiliary ones too)."""
        return self.model(images)

    def uses_test_time_augmentation(self) -> bool:
        return self.hparams.test_time_augmentation != "none"

    def augmented_inference(self, images: Tensor) -> Tensor:
        """The mean logits over ``test_time_augmentation``'s views (:mod:`visionsuite.models.test_time`)."""
        return tta_logits(self, images, self.hparams.test_time_augmentation)

    def shared_step(self, batch: dict[str, Any], stage: str) -> StepOutput:
        x, y = batch["image"], batch["label"]
        out = self.evaluation_output(x, stage)
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
        from visionsuite.outputs import figures  # matplotlib only when drawing

        names = self.class_names()
        pictures: dict[str, Any] = {}
        if "test" in self.first_batches:
            batch, out = self.first_batches["test"]
            k = self.hparams.num_sample_images
            images = self.display_pixels(batch["image"][:k])
            pictures["test/samples"] = figures.sample_grid(images, batch["label"][:k], out.preds[:k].float().softmax(1), names)
        confusion = self.stage_results.get("test", {}).get("test/confusion_matrix")
        if confusion is not None:
            pictures["test/confusion_matrix"] = figures.confusion_figure(confusion.cpu(), names)
        return pictures

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        out = self.evaluation_output(batch["image"], "predict")
        probs = torch.softmax(out[0] if isinstance(out, tuple) else out, dim=1)
        prob, pred = probs.max(dim=1)
        return {"paths": list(batch["path"]), "pred": pred.cpu(), "prob": prob.cpu()}

