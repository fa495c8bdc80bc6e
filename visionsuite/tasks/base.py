"""The one base class every task module derives from.

A task owns what is specific to it – its networks (:meth:`configure_models`), losses
(:meth:`configure_losses`), metrics (:meth:`configure_metrics`, declared once), one per-batch
method (:meth:`shared_step`) and the pictures it wants (:meth:`figures`) – and inherits the rest:
the metric loop of every stage (update per batch; compute, log and reset per epoch; loss means),
the training loss logged at the steps the loggers write, the data/model agreement check, the
optimiser and schedule factory, checkpointing, and hyperparameter saving.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_only
from torch import Tensor, nn
from torch.optim import Optimizer
from torchmetrics import MeanMetric, MetricCollection

from visionsuite.backbones import Backbone
from visionsuite.backbones.freezing import keep_frozen_norms
from visionsuite.backbones.preprocessing import (
    Preprocessing,
    channel_stats,
    preprocessing_mismatch,
)
from visionsuite.backbones.preprocessing import (
    weights_preprocessing as preprocessing_of,
)
from visionsuite.callbacks import DivergenceGuard, checkpoint_callbacks
from visionsuite.callbacks.assembly import missing_callbacks
from visionsuite.callbacks.run_record import RunRecord
from visionsuite.core.atomic import write_text_atomic
from visionsuite.core.notes import warn
from visionsuite.core.options import check_arguments
from visionsuite.core.private_api import attached_trainer, should_update_logs
from visionsuite.errors import ConfigError
from visionsuite.models.stages import StageGroups, stage_groups_of
from visionsuite.outputs import FigureLogger, MetricsFileWriter, TrainingCurves
from visionsuite.tasks.finetuning import FineTuneSchedule, Regime
from visionsuite.tasks.optim import (
    OptimizerName,
    SchedulerName,
    build_optimizer,
    build_scheduler,
    param_groups,
)

#: the stages whose metrics the base keeps; also the prefixes of their logged keys.
STAGES = ("train", "val", "test")


def class_names_of(datamodule: Any, num_classes: int | None) -> list[str]:
    """``datamodule.class_names`` as strings, else ``class0`` … from ``num_classes`` (else empty)."""
    names = getattr(datamodule, "class_names", None)
    if names:
        return [str(n) for n in names]
    return [f"class{i}" for i in range(int(num_classes or 0))]


class StepOutput(NamedTuple):
    """What :meth:`BaseTask.shared_step` returns for one batch.

    ``preds``/``target`` go to the stage's metrics as ``update(preds, target)`` (tensors for
    classification and segmentation, lists of dicts for detection); ``None`` skips the update
    (a detector in training mode has losses only). ``loss`` is ``None`` where there is none (a
    detector in eval mode). ``terms`` are named parts of the loss (a VAE's KL and reconstruction,
    a detector's box and class losses), logged beside it as ``<stage>/<name>``.
    """

    loss: Tensor | None
    preds: Any = None
    target: Any = None
    terms: dict[str, Tensor] | None = None


class BaseTask(LightningModule, ABC):
    """Shared metric loop, optimisation and checkpointing.

    Subclasses set ``monitor``/``mode`` for model selection, and ``headline_format`` for the
    closing line of ``fit`` (``"{:.2%}"`` for an accuracy, ``"{:.2f} nats"`` for a VAE's loss).
    """

    #: metric that selects the best checkpoint (hold-out model selection), and its direction.
    monitor: str | None = "val/loss"  # None: keep only last.ckpt
    mode: str = "min"
    #: the test metric the closing line prints (default: the test twin of ``monitor``), and how.
    headline_metric: str | None = None
    headline_format: str = "{:.4f}"
    #: whether the training stage computes the task's metrics (``False``: the loss is the training
    #: signal, and a metric over every training batch would cost a noticeable share of a step).
    computes_train_metrics: bool = True
    #: the Trainer functions (``fit``, ``validate``, ``test``, ``predict``) after whose evaluation
    #: stages :meth:`figures` are drawn and logged (the figure logger is added for them only).
    figure_functions: frozenset[str] = frozenset({"fit", "validate", "test"})
    #: whether the pretrained weights' input size is compared with the data's (one warning line);
    #: dense tasks (segmentation, detection) run their encoders at any size.
    compares_input_size: bool = False
    #: the task prints the data module's augmentation and normalisation line at fit setup, after
    #: :meth:`align_datamodule` (read by the data modules, which print it themselves otherwise).
    announces_data_summary: bool = True
    #: the batch part a per-class output is scored against (``label``, ``mask``); ``None`` for
    #: tasks without one. Ensembles combine the class probabilities of tasks that have one.
    target_key: str | None = None
    #: What a checkpoint's hyperparameters may differ in, decided here once per task (see
    #: :meth:`option_kind` and ``visionsuite.runs.checkpoints.setting_differences``):
    #: ``evaluation_options`` change how a trained network is evaluated or stored, not what it
    #: learnt – ``test``/``predict``/``export`` (and a resumed ``fit``) take the config's value
    #: silently; ``training_options`` only said how the weights were trained (optimiser,
    #: schedule, checkpoint cadence, loss weights, freezing) – a config that differs in them is
    #: accepted for evaluation with a one-line note. Every other hyperparameter shapes the
    #: weights (architecture, classes, channels, input normalisation) and must match.
    evaluation_options: frozenset[str] = frozenset({"channels_last"})
    training_options: frozenset[str] = frozenset({
        "optimizer", "lr", "momentum", "nesterov", "betas", "weight_decay", "no_decay_norm_and_bias",
        "scheduler", "milestones", "gamma", "patience", "warmup_pct", "triangular_ends", "checkpoint_every_n_steps",
        "frozen_stages", "unfreeze_at", "backbone_lr_mult", "stage_lr_decay", "norm_bias_lr_mult",
    })  # fmt: skip

    @classmethod
    def option_kind(cls, key: str) -> str:
        """``evaluation``, ``training`` or ``architecture`` (the default: unknown keys must match)."""
        if key in cls.evaluation_options:
            return "evaluation"
        return "training" if key in cls.training_options else "architecture"

    def __init__(
        self,
        *,
        optimizer: OptimizerName = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        no_decay_norm_and_bias: bool = False,
        norm_bias_lr_mult: float = 1.0,
        scheduler: SchedulerName = "none",
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        patience: int = 10,
        warmup_pct: float = 0.3,
        triangular_ends: tuple[float, float] = (0.0, 0.0),
        checkpoint_every_n_steps: int = 500,
        channels_last: bool = False,
        frozen_stages: int = 0,
        unfreeze_at: dict[int, list[str]] | None = None,
        backbone_lr_mult: float = 1.0,
        stage_lr_decay: float = 1.0,
        adopt_weights_preprocessing: bool = False,
        keep_data_preprocessing: bool = False,
    ) -> None:
        """
        Args:
            optimizer: sgd (with ``momentum``/``nesterov``), adam, adamw (with ``betas``),
                rmsprop or adagrad.
            lr: initial (for onecycle: peak) learning rate.
            momentum: SGD/RMSprop momentum.
            nesterov: Nesterov momentum for SGD.
            betas: Adam/AdamW moment coefficients (β1, β2); DCGAN uses (0.5, 0.999), WGAN-GP (0, 0.9).
            weight_decay: L2 coefficient λ as PyTorch applies it (gradient += λθ, i.e. a
                penalty (λ/2)‖θ‖²).
            no_decay_norm_and_bias: exempt biases and normalisation weights from weight decay.
            norm_bias_lr_mult: the normalisation layers' biases train at ``lr`` × this, with
                ``weight_decay`` / this (the same decay per step): airbench's 64 for batch-norm
                biases. Not with staged fine-tuning (its groups carry their own rates).
            scheduler: none, multistep (``milestones``, ``gamma``), cosine (per epoch, over
                ``max_epochs``), cosine_time (per step, linear warm-up over ``warmup_pct`` of
                ``trainer.max_time`` then cosine to 0 at its end, following elapsed time: for
                time-budgeted runs), onecycle (``warmup_pct``), triangular (per step, linear
                up over ``warmup_pct`` of the steps then linear down to 0: airbench's) or
                plateau (``patience``, ``gamma``, on the monitored metric).
            milestones: epochs at which multistep multiplies the learning rate by ``gamma``.
            gamma: multistep / plateau decay factor.
            patience: plateau epochs without improvement before decaying.
            warmup_pct: onecycle's and triangular's fraction of the steps, cosine_time's of
                the time budget, spent warming up.
            triangular_ends: triangular's (start, end) rates as fractions of ``lr`` (default
                (0, 0)); airbench94's [0.2, 0.07] keeps the first and last steps learning.
            checkpoint_every_n_steps: how often ``last.ckpt`` is refreshed mid-epoch, so a
                killed run loses at most this many steps (``--ckpt_path last`` resumes).
            channels_last: store the 4-D weights channels-last (NHWC). Convolutions then run
                channels-last whatever the input's layout (PyTorch follows the weight), which
                is faster on CPUs with oneDNN and on tensor-core GPUs: 1.15-1.3x for the smp
                U-Net here (benchmarks/results/segmentation.md). Numerics are unchanged.
            frozen_stages: freeze the first N stages of the pretrained trunk (:meth:`trunk`: the
                backbone, the segmentation encoder, the detector's backbone under its FPN): no
                gradients, fixed batch-norm statistics, no backward through them – faster steps,
                the pretrained low-level filters kept (mmsegmentation's ``frozen_stages``,
                torchvision's ``trainable_backbone_layers`` counted from the input). The stage
                names: ``visionsuite summary <backbone>``; see :mod:`visionsuite.tasks.finetuning`.
            unfreeze_at: ``{epoch: [stage, …]}``: frozen stages that start training at that epoch
                (gradual unfreezing); survives a resume from ``last.ckpt``.
            backbone_lr_mult: the trunk's learning rate = ``lr`` × this (the head, decoder or FPN
                keep ``lr``): discriminative fine-tuning of pretrained weights.
            stage_lr_decay: each trunk stage below the top gets this factor once more
                (discriminative learning rates; 1.0: the same rate for every stage).
            adopt_weights_preprocessing: give the data module the normalisation the trunk's
                pretrained weights were trained with (classification: also their input size, where
                the data resizes its batches on the device). Without it, data normalised otherwise
                is refused at setup with the values to set (:meth:`align_datamodule`).
            keep_data_preprocessing: train on the data's own normalisation although the weights
                expect another (one warning line instead of the refusal).
        """
        super().__init__()
        self.save_hyperparameters()
        check_arguments(self, self.hparams)
        self.configure_models()
        #: which trunk stages train when, and at which rate; ``None``: nothing is staged.
        self.stage_schedule = self.configure_stages()
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.configure_losses()
        template = self.configure_metrics()
        self.train_metrics = self.stage_metrics("train", template)
        self.val_metrics = self.stage_metrics("val", template)
        self.test_metrics = self.stage_metrics("test", template)
        #: loss means per stage and term (``val_loss``, ``test_kl``), created at their first batch.
        self.loss_means = nn.ModuleDict()
        #: per stage, everything the metrics computed at the last epoch end, non-scalars included
        #: (a confusion matrix, per-class IoU): what :meth:`figures` and tables draw from.
        self.stage_results: dict[str, dict[str, Tensor]] = {}
        #: per stage, the first evaluation batch and its :class:`StepOutput` (for sample pictures).
        self.first_batches: dict[str, tuple[Any, StepOutput]] = {}
        #: the named losses of the last training step (``loss`` and its terms), which the
        #: divergence guard checks; tasks with manual optimisation set it themselves.
        self.last_losses: dict[str, Tensor] = {}

    # -- what each task fills --------------------------------------------------------------
    @abstractmethod
    def configure_models(self) -> None:
        """Create the networks (from the backbone library, by name)."""

    def configure_losses(self) -> None:
        """Create the loss modules."""

    def configure_metrics(self) -> MetricCollection | None:
        """The task's metrics, declared once; :meth:`stage_metrics` clones them per stage."""
        return None

    def stage_metrics(self, stage: str, template: MetricCollection | None) -> MetricCollection | None:
        """This stage's own copy of the template, its keys prefixed ``<stage>/`` (states never mix);
        none for training when :attr:`computes_train_metrics` is off.

        Override to keep the training step cheap (fewer metrics, ``validate_args=False``) or to
        add test-only ones (a confusion matrix).
        """
        if template is None or (stage == "train" and not self.computes_train_metrics):
            return None
        return template.clone(prefix=f"{stage}/")

    @abstractmethod
    def shared_step(self, batch: dict[str, Any], stage: str) -> StepOutput:
        """Loss, predictions and targets of one batch (``batch``: ``image``, ``label``/``mask``/…)."""

    def update_metrics(self, metrics: MetricCollection, out: StepOutput, batch: dict[str, Any]) -> None:
        """Feed one batch to the stage's metrics; override for metrics with another signature
        (FID's ``update(images, real=…)``)."""
        if out.preds is not None:
            metrics.update(out.preds, out.target)

    def figures(self, stage: str) -> dict[str, Any]:
        """Pictures to log after ``stage`` (``val``/``test``): ``{key: matplotlib Figure | image
        tensor [C, H, W] in [0, 1]}``. Drawn on rank 0 only, so build any data that needs a
        collective (a metric's compute) in the epoch-end hooks, e.g. from :attr:`stage_results`."""
        return {}

    def expected_data_classes(self) -> int | None:
        """How many classes the data must have for this model (``None``: no check). A detector
        whose ``num_classes`` counts the background returns ``num_classes - 1``."""
        return self.hparams.get("num_classes")

    def expected_data_channels(self) -> int | None:
        """How many image channels the data must have (``None``: no check)."""
        return self.hparams.get("in_chans")

    def headline_key(self) -> str | None:
        """The test metric the closing line of ``fit`` prints: ``headline_metric``, else the test
        twin of ``monitor`` (``val/acc`` → ``test/acc``); ``None``: no closing line."""
        if self.headline_metric is not None:
            return self.headline_metric
        return None if self.monitor is None else "test/" + self.monitor.split("/", 1)[-1]

    # -- evaluation passes ------------------------------------------------------------------------
    def inference(self, images: Tensor) -> Any:
        """The network's output for ``images`` in one pass (logits, detections)."""
        return self(images)

    def uses_test_time_augmentation(self) -> bool:
        """Whether ``test`` and ``predict`` score :meth:`augmented_inference` (the task's option)."""
        return False

    def augmented_inference(self, images: Tensor) -> Any:
        """The output fused over augmented views of ``images`` (each task fuses its own way:
        mean logits, mean probabilities, boxes merged across the mirror image)."""
        raise NotImplementedError(f"{type(self).__name__} has no test-time augmentation")

    def evaluation_output(self, images: Tensor, stage: str) -> Any:
        """What ``stage`` scores: at ``test`` and ``predict`` under test-time augmentation when the
        task asks for it; validation, which selects the checkpoint, keeps one pass."""
        if stage in ("test", "predict") and self.uses_test_time_augmentation():
            return self.augmented_inference(images)
        return self.inference(images)

    def on_stage_start(self, stage: str) -> None:
        """Called as the ``val`` or ``test`` epoch starts (seed the evaluation noise, clear buffers)."""

    def on_stage_end(self, stage: str) -> None:
        """Called after ``stage``'s metrics were computed into :attr:`stage_results` and logged
        (per-class tables, frames kept across validations)."""

    def on_validation_epoch_start(self) -> None:
        self.on_stage_start("val")

    def on_test_epoch_start(self) -> None:
        self.on_stage_start("test")

    @rank_zero_only
    def write_table(self, stage: str, name: str, columns: list[str], rows: list[list[Any]], text: str) -> Path | None:
        """One per-class table to every place a user looks: ``<run folder>/<name>.md`` (``text``,
        Markdown), a W&B table and TensorBoard text under ``<stage>/<name>``. ``None`` outside a Trainer."""
        if attached_trainer(self) is None:
            return None
        path = Path(self.trainer.default_root_dir) / f"{name}.md"
        write_text_atomic(path, text)
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(key=f"{stage}/{name}", columns=columns, data=[list(r) for r in rows])
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_text(f"{stage}/{name}", text, global_step=self.global_step)
        return path

    # -- the pretrained trunk and its stages ------------------------------------------------------
    def trunk(self) -> nn.Module | None:
        """The pretrained part whose stages ``frozen_stages``, ``unfreeze_at`` and the stage learning
        rates address (the backbone, an encoder); ``None``: the task has none."""
        return None

    def finetune_regime(self) -> tuple[Regime, int]:
        """(regime, top stages) of :class:`~visionsuite.tasks.finetuning.FineTuneSchedule`:
        ``("full", 1)`` unless a task offers the regimes (classification's ``finetune``)."""
        return "full", 1

    def stage_groups(self) -> StageGroups:
        """The trunk's stages by name, shallow first (:func:`~visionsuite.models.stages.stage_groups_of`)."""
        trunk = self.trunk()
        return {} if trunk is None else stage_groups_of(trunk)

    def configure_stages(self) -> FineTuneSchedule | None:
        """The schedule of the shared fine-tuning options, applied for epoch 0; ``None`` when they
        keep their defaults (every parameter trains at ``lr``, and no stage is even looked up)."""
        hp = self.hparams
        regime, top = self.finetune_regime()
        unfreeze = dict(hp.unfreeze_at or {})
        if not (regime != "full" or hp.frozen_stages or unfreeze or hp.backbone_lr_mult != 1 or hp.stage_lr_decay != 1):
            return None
        if hp.norm_bias_lr_mult != 1:
            raise ConfigError("norm_bias_lr_mult does not combine with frozen_stages, unfreeze_at, backbone_lr_mult, "
                              "stage_lr_decay or finetune (their groups carry their own rates): leave it at 1")  # fmt: skip
        trunk = self.trunk()
        if trunk is None:
            raise ConfigError(f"{type(self).__name__} has no pretrained trunk: frozen_stages, unfreeze_at, "
                              "backbone_lr_mult and stage_lr_decay do not apply")  # fmt: skip
        groups = self.stage_groups()
        schedule = FineTuneSchedule(tuple(groups), regime, top, unfreeze, hp.backbone_lr_mult, hp.stage_lr_decay,
                                    hp.frozen_stages)  # fmt: skip
        schedule.apply(groups, 0, training=self.training)
        return schedule

    def train(self, mode: bool = True) -> BaseTask:
        """Train/eval mode, frozen batch norms kept in eval (:mod:`visionsuite.backbones.freezing`)."""
        super().train(mode)
        keep_frozen_norms(self)
        return self

    def on_train_epoch_start(self) -> None:
        """Freeze/unfreeze for this epoch: derived from the epoch alone, so a resumed run matches."""
        if self.stage_schedule is not None:
            self.stage_schedule.apply(self.stage_groups(), self.current_epoch, training=self.training)

    # -- the data module ----------------------------------------------------------------------
    @property
    def datamodule(self) -> Any | None:
        """The trainer's data module; ``None`` outside a Trainer (a task built alone, in a tool)."""
        return getattr(attached_trainer(self), "datamodule", None)

    def class_names(self) -> list[str]:
        """The data module's class names, else ``class0`` … ``class{n-1}`` from ``num_classes``
        (empty for a task without classes): the one fallback every table, legend and CSV uses."""
        return class_names_of(self.datamodule, self.hparams.get("num_classes"))

    def display_pixels(self, images: Tensor) -> Tensor:
        """Normalised batch images → [0, 1] pixels for pictures: the data module's normalisation
        undone (none when it does not normalise), clamped. The one denormalisation of the tasks."""
        dm = self.datamodule
        mean, std = getattr(dm, "mean", None), getattr(dm, "std", None)
        if dm is None or not getattr(dm, "normalize", True) or not mean or not std:
            return images.clamp(0.0, 1.0)
        view = (1, -1, 1, 1)
        mean_t = torch.as_tensor(mean, device=images.device, dtype=images.dtype).view(view)
        std_t = torch.as_tensor(std, device=images.device, dtype=images.dtype).view(view)
        return (images * std_t + mean_t).clamp(0.0, 1.0)

    # -- the pretrained weights' preprocessing ----------------------------------------------------
    def weights_preprocessing(self, weights: object = None) -> Preprocessing | None:
        """What the trunk's pretrained weights expect (its ``.preprocessing``, attached where it was
        built: the suite's table, timm's ``pretrained_cfg``, torchvision's transforms); ``weights``:
        their name when the trunk was rebuilt without them (a checkpoint loaded outside the Trainer)."""
        trunk = self.trunk()
        known = getattr(trunk, "preprocessing", None)
        backbone = self.hparams.get("backbone")
        if known is None and weights is not None and backbone is not None:
            return preprocessing_of(backbone, weights, trunk)
        return known

    def weights_label(self, weights: object = None) -> str:
        """How messages name the weights (``efficientnet_lite0 weights 'imagenet'``)."""
        hp = self.hparams
        name = hp.get("weights") if weights is None else weights
        return f"{hp.get('backbone', 'the trunk')} weights {name!r}"

    def align_datamodule(self, dm: Any, weights: object = None, *, warn_mismatch: bool = True) -> None:
        """Check the data's normalisation (and, with :attr:`compares_input_size`, its size) against
        the pretrained weights': a normalisation they were not trained with is refused in one line
        with the values to set, unless ``adopt_weights_preprocessing`` gives ``dm`` theirs (and
        their input size where the data module resizes its batches on the device: CIFAR-10,
        (Fashion-)MNIST) or ``keep_data_preprocessing`` keeps the data's (one warning). A size
        that differs is one warning. ``weights``: see :meth:`weights_preprocessing`; notes are
        printed once per task, and not at all with ``warn_mismatch=False``. Idempotent."""
        expected = self.weights_preprocessing(weights)
        if expected is None or not hasattr(dm, "mean"):
            return
        hp = self.hparams
        if hp.adopt_weights_preprocessing and hp.keep_data_preprocessing:
            raise ConfigError("adopt_weights_preprocessing and keep_data_preprocessing: set one of them")
        label = self.weights_label(weights)
        said = getattr(self, "_preprocessing_said", False) or not warn_mismatch
        sized = self.compares_input_size and expected.size is not None
        if hp.adopt_weights_preprocessing:
            before = _stats_text(tuple(dm.image_size) if sized else None, dm.mean, dm.std)
            stats = channel_stats(expected, len(dm.mean))
            dm.mean, dm.std = stats if stats is not None else (dm.mean, dm.std)
            # stored at a fixed size, and no size asked for: its batches are resized on the device
            if sized and not getattr(dm, "RESIZABLE", True) and getattr(dm, "hparams", {}).get("image_size") is None:
                dm.image_size = tuple(expected.size)
            after = _stats_text(tuple(dm.image_size) if sized else None, dm.mean, dm.std)
            if not said and after != before:
                rank_zero_info(f"input preprocessing {before} (the data's) replaced by {after}: the {label}"
                               " were trained on that input (model.init_args.adopt_weights_preprocessing: true)")
        normalised = getattr(dm, "normalize", True)
        mean = tuple(dm.mean) if normalised else (0.0,) * len(dm.mean)
        std = tuple(dm.std) if normalised else (1.0,) * len(dm.std)
        size = tuple(getattr(dm, "image_size", None) or expected.size or ()) if sized else None
        problem = preprocessing_mismatch(expected, size, mean, std)
        if problem and not hp.adopt_weights_preprocessing and not hp.keep_data_preprocessing and (
            preprocessing_mismatch(expected, None, mean, std)
        ):
            stats = channel_stats(expected, len(mean))
            fix = _fix_text(stats, normalised)
            raise ConfigError(f"{label}: {problem}; {fix}, or model.init_args.adopt_weights_preprocessing: true"
                              " (or keep_data_preprocessing: true to train on the data's)")  # fmt: skip
        if problem and not said:
            hint = "set data.init_args.image_size" if hp.adopt_weights_preprocessing else (
                "model.init_args.keep_data_preprocessing is set" if hp.keep_data_preprocessing
                else "set model.init_args.adopt_weights_preprocessing: true")  # fmt: skip
            warn(f"{label}: {problem} ({hint})")
        self._preprocessing_said = True

    # -- data/model agreement ------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Refuse data whose class or channel count disagrees with the model, in one line, and data
        not prepared as the pretrained weights expect (:meth:`align_datamodule`): in every stage, so
        ``visionsuite test``/``predict`` of a checkpoint prepares images as its fit did."""
        datamodule = self.datamodule
        if datamodule is not None:
            self.align_datamodule(datamodule)
            if stage == "fit" and hasattr(datamodule, "augmentation_summary"):
                rank_zero_info(datamodule.augmentation_summary())  # the normalisation in force, adopted or not
        data_classes = getattr(datamodule, "num_classes", None)
        classes = self.expected_data_classes()
        if None not in (data_classes, classes) and stage != "predict" and data_classes != classes:
            n = self.hparams.get("num_classes", classes)  # may count a background class the data lacks
            raise ConfigError(
                f"model.num_classes={n} but the data has {data_classes} classes; "
                f"set model.init_args.num_classes: {data_classes + n - classes}"
            )
        data_chans = getattr(datamodule, "in_chans", None)
        chans = self.expected_data_channels()
        if None not in (data_chans, chans) and data_chans != chans:
            raise ConfigError(
                f"model.in_chans={chans} but the data has {data_chans} channels; "
                f"set model.init_args.in_chans: {data_chans}"
            )

    # -- the loop ------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        out = self.shared_step(batch, "train")
        if self.train_metrics is not None:
            self.update_metrics(self.train_metrics, out, batch)
        if out.loss is not None:
            self.last_losses = {k: v.detach() for k, v in {"loss": out.loss, **(out.terms or {})}.items()}
            self.log_train_step(self.last_losses, batch)
        return out.loss

    def log_train_step(self, values: dict[str, Tensor], batch: dict[str, Any]) -> None:
        """Log ``train/<name>`` only at the steps the loggers write (``log_every_n_steps``), so the
        value written at step k is the one computed at step k, and no other step pays for it."""
        if not (should_update_logs(self.trainer) or self.trainer.fast_dev_run):
            return
        size = self.batch_size(batch)
        for name, value in values.items():
            self.log(f"train/{name}", value.detach(), prog_bar=name == "loss", batch_size=size, sync_dist=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> StepOutput:
        return self._evaluation_step(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> StepOutput:
        return self._evaluation_step(batch, batch_idx, "test")

    def _evaluation_step(self, batch: dict[str, Any], batch_idx: int, stage: str) -> StepOutput:
        out = self.shared_step(batch, stage)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        if metrics is not None:
            self.update_metrics(metrics, out, batch)
        size = self.batch_size(batch)
        if out.loss is not None:
            self._loss_mean(stage, "loss", out.loss).update(out.loss, weight=size)
        for name, value in (out.terms or {}).items():
            self._loss_mean(stage, name, value).update(value, weight=size)
        if batch_idx == 0:
            self.first_batches[stage] = (batch, out)
        return out

    def batch_size(self, batch: dict[str, Any]) -> int:
        """Images in ``batch``: the weight of its loss in the epoch mean."""
        return len(batch["image"])

    def _loss_mean(self, stage: str, name: str, like: Tensor) -> MeanMetric:
        key = f"{stage}_{name}"
        if key not in self.loss_means:
            self.loss_means[key] = MeanMetric().to(like.device)
        return self.loss_means[key]  # type: ignore[return-value]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Remember the loaded checkpoint's step: ``test``/``validate`` restore the weights but
        not the step, and ``metrics.json`` and the closing line say which weights were scored."""
        super().on_load_checkpoint(checkpoint)
        self.checkpoint_step = int(checkpoint.get("global_step", 0))

    def on_train_epoch_end(self) -> None:
        self._end_epoch("train", self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self._end_epoch("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._end_epoch("test", self.test_metrics)

    def _end_epoch(self, stage: str, metrics: MetricCollection | None) -> None:
        """Compute, log (scalars) and reset the stage's metrics and loss means."""
        results: dict[str, Tensor] = {}
        if metrics is not None and any(m.update_count for m in metrics.values()):
            results.update(metrics.compute())
            metrics.reset()
        for key, mean in self.loss_means.items():
            if key.startswith(f"{stage}_") and mean.update_count:
                results[f"{stage}/{key[len(stage) + 1:]}"] = mean.compute()
                mean.reset()
        self.stage_results[stage] = results
        scalars = {k: v for k, v in results.items() if v.numel() == 1}
        if scalars:
            self.log_dict(scalars, prog_bar=stage == "val")
        self.on_stage_end(stage)

    # -- optimisation ----------------------------------------------------------------------
    def make_optimizer(self, params: nn.Module | Iterable[Any], **overrides: Any) -> Optimizer:
        """The configured optimiser over ``params``, callable more than once.

        ``params``: a module (its parameter groups, with the weight-decay exemptions), or
        parameters / parameter groups (groups may carry their own ``lr``, see
        :func:`~visionsuite.tasks.optim.param_groups`). ``overrides`` replace config values for
        this optimiser only: a GAN builds ``make_optimizer(self.generator)`` and
        ``make_optimizer(self.discriminator, lr=…, betas=(0.5, 0.999))``.
        """
        hp = {k: self.hparams[k] for k in ("optimizer", "lr", "momentum", "nesterov", "betas", "weight_decay")}
        hp.update(overrides)
        if isinstance(params, nn.Module):
            params = param_groups(params, hp["weight_decay"], no_decay_norm_and_bias=self.hparams.no_decay_norm_and_bias,
                                  norm_bias_lr=(hp["lr"], self.hparams.norm_bias_lr_mult))  # fmt: skip
        name = hp.pop("optimizer")
        return build_optimizer(name, params, **hp)

    def make_scheduler(self, optimizer: Optimizer, name: str | None = None, **overrides: Any) -> dict[str, Any] | None:
        """The configured schedule (or ``name``'s) for ``optimizer``: a Lightning ``lr_scheduler``
        dict, or ``None``; ``overrides`` replace config values (``milestones``, ``gamma``, …)."""
        hp = self.hparams
        options: dict[str, Any] = {
            "max_epochs": self.trainer.max_epochs or 1,
            "total_steps": int(self.trainer.estimated_stepping_batches),
            "milestones": hp.milestones or [],
            "gamma": hp.gamma,
            "monitor": self.monitor or "val/loss",
            "mode": self.mode,
            "patience": hp.patience,
            "warmup_pct": hp.warmup_pct,
            "triangular_ends": tuple(hp.triangular_ends),
        }
        options.update(overrides)
        name = name or hp.scheduler
        if name == "cosine_time":
            options["budget_clock"] = self._time_budget_clock()
        return build_scheduler(name, optimizer, **options)

    def _time_budget_clock(self) -> Callable[[], float]:
        """A callable: the fraction of ``trainer.max_time`` that training has used (the Trainer's
        own ``Timer``, whose elapsed time a resumed run restores from the checkpoint)."""
        timer = next((cb for cb in self.trainer.callbacks if isinstance(cb, Timer)), None)
        budget = timer.time_remaining() if timer is not None else None
        if budget is None:
            raise ConfigError("scheduler cosine_time follows trainer.max_time; set it (e.g. --trainer.max_time 00:01:00:00)")
        total = budget + timer.time_elapsed()
        return lambda: timer.time_elapsed() / total

    def optimizer_params(self) -> nn.Module | list[dict[str, Any]]:
        """What :meth:`configure_optimizers` optimises: the whole task, or with staged fine-tuning
        one group per trunk stage carrying its own ``lr`` (then ``head``: the rest, and ``other``:
        trunk parameters outside every stage, a library backbone's classifier excepted)."""
        if self.stage_schedule is None:
            return self
        hp, trunk, groups = self.hparams, self.trunk(), self.stage_groups()
        inside = {id(p) for modules in groups.values() for m in modules for p in m.parameters()}
        head = {id(p) for p in trunk.head.parameters()} if isinstance(trunk, Backbone) else set()
        rest = [p for p in trunk.parameters() if id(p) not in inside and id(p) not in head]
        return self.stage_schedule.param_groups(self, groups, rest, hp.lr, hp.weight_decay,
                                                no_decay_norm_and_bias=hp.no_decay_norm_and_bias)  # fmt: skip

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer(self.optimizer_params())
        scheduler = self.make_scheduler(optimizer)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def configure_callbacks(self) -> list[Callback]:
        """The run and stage callbacks whose type the Trainer lacks.

        The ``visionsuite`` CLI passes :meth:`run_callbacks` to the Trainer itself, before
        Lightning resolves ``ckpt_path`` (callbacks returned here come too late for that), so for
        it only the stage's :meth:`default_callbacks` are added here, and never a second
        checkpoint callback. A Trainer built with ``enable_checkpointing=False`` (it then has no
        checkpoint callback at all) gets none from here either: no files written unasked.
        """
        wanted = [*self.run_callbacks(None), *self.default_callbacks()]
        return missing_callbacks(wanted, self.trainer.callbacks, checkpointing=bool(self.trainer.checkpoint_callbacks))

    def run_callbacks(self, checkpoint_dir: str | Path | None) -> list[Callback]:
        """Checkpoints (best on ``monitor`` when set, and ``last.ckpt``), the divergence guard and
        ``metrics.json``, ``images/curves.png`` and ``run.json``: the callbacks that live as long as the run."""
        every = self.hparams.checkpoint_every_n_steps
        return [
            *checkpoint_callbacks(checkpoint_dir, self.monitor, self.mode, every),
            DivergenceGuard(), MetricsFileWriter(), TrainingCurves(), RunRecord(),
        ]  # fmt: skip

    def default_callbacks(self) -> list[Callback]:
        """Callbacks for the running stage only: the figure logger where :attr:`figure_functions`
        asks for it, and :meth:`prediction_writer` for ``predict`` (every callback costs a few µs
        per hook per step, so nothing a stage does not use)."""
        fn = self.trainer.state.fn
        callbacks: list[Callback] = [FigureLogger()] if fn in self.figure_functions else []
        writer = self.prediction_writer() if fn == "predict" else None
        return [*callbacks, writer] if writer is not None else callbacks

    def prediction_writer(self) -> Callback | None:
        """The callback that writes ``predict``'s files (CSV rows, masks, boxes); ``None``: none."""
        return None


def _stats_text(size: tuple[int, ...] | None, mean: Any, std: Any) -> str:
    """``128x128 mean=(0.485, …) std=(0.229, …)``: an input preprocessing, as the notes print it."""
    shown = "" if size is None else f"{size[0]}x{size[1]} "
    return f"{shown}mean={tuple(round(float(m), 4) for m in mean)} std={tuple(round(float(v), 4) for v in std)}"


def _fix_text(stats: tuple[tuple[float, ...], tuple[float, ...]] | None, normalised: bool) -> str:
    """``set data.init_args.mean: [0.5], data.init_args.std: [0.5]`` for the weights' statistics."""
    if stats is None:
        return "normalise the data as the weights were trained"
    fmt = lambda v: "[" + ", ".join(f"{x:.4g}" for x in v) + "]"  # noqa: E731
    return (f"set data.init_args.mean: {fmt(stats[0])}, data.init_args.std: {fmt(stats[1])}"
            + ("" if normalised else ", data.init_args.normalize: true"))  # fmt: skip
