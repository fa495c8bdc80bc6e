"""The one base class every task module derives from.

A task owns what is specific to it – its networks (:meth:`configure_models`), losses
(:meth:`configure_losses`) and metrics (:meth:`configure_metrics`) – and inherits the rest:
optimiser and schedule by name, checkpointing of the best validation score plus a periodic
``last.ckpt`` for resuming a killed run, and hyperparameter saving.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint

from visionsuite.callbacks import MetricsFileWriter
from visionsuite.tasks.optim import OptimizerName, SchedulerName, build_optimizer, build_scheduler, param_groups
from visionsuite.validation import check_arguments


class BaseTask(LightningModule, ABC):
    """Shared optimisation and checkpointing; subclasses set ``monitor``/``mode`` for model selection."""

    #: metric that selects the best checkpoint (hold-out model selection), and its direction.
    monitor: str = "val/loss"
    mode: str = "min"

    def __init__(
        self,
        *,
        optimizer: OptimizerName = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        no_decay_norm_and_bias: bool = False,
        scheduler: SchedulerName = "none",
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        patience: int = 10,
        warmup_pct: float = 0.3,
        checkpoint_every_n_steps: int = 500,
    ) -> None:
        """
        Args:
            optimizer: sgd (with ``momentum``/``nesterov``), adam, adamw, rmsprop or adagrad.
            lr: initial (for onecycle: peak) learning rate.
            momentum: SGD/RMSprop momentum.
            nesterov: Nesterov momentum for SGD.
            weight_decay: L2 coefficient λ as PyTorch applies it (gradient += λθ, i.e. a
                penalty (λ/2)‖θ‖²).
            no_decay_norm_and_bias: exempt biases and normalisation weights from weight decay.
            scheduler: none, multistep (``milestones``, ``gamma``), cosine, onecycle (``warmup_pct``)
                or plateau (``patience``, ``gamma``, on the monitored metric).
            milestones: epochs at which multistep multiplies the learning rate by ``gamma``.
            gamma: multistep / plateau decay factor.
            patience: plateau epochs without improvement before decaying.
            warmup_pct: onecycle fraction of steps spent warming up.
            checkpoint_every_n_steps: how often ``last.ckpt`` is refreshed mid-epoch, so a
                killed run loses at most this many steps (``--ckpt_path last`` resumes).
        """
        super().__init__()
        self.save_hyperparameters()
        check_arguments(self, self.hparams)
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()

    # -- what each task fills --------------------------------------------------------------
    @abstractmethod
    def configure_models(self) -> None:
        """Create the networks (from the backbone library, by name)."""

    def configure_losses(self) -> None:
        """Create the loss modules."""

    def configure_metrics(self) -> None:
        """Create the torchmetrics collections (one per stage, so their states never mix)."""

    # -- shared ----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = param_groups(self, hp.weight_decay, no_decay_norm_and_bias=hp.no_decay_norm_and_bias)
        optimizer = build_optimizer(
            hp.optimizer, groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
        )
        scheduler = build_scheduler(
            hp.scheduler,
            optimizer,
            max_epochs=self.trainer.max_epochs or 1,
            total_steps=int(self.trainer.estimated_stepping_batches),
            milestones=hp.milestones or [],
            gamma=hp.gamma,
            monitor=self.monitor,
            mode=self.mode,
            patience=hp.patience,
            warmup_pct=hp.warmup_pct,
        )
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def configure_callbacks(self) -> list[Callback]:
        """Best-on-validation checkpoint (first, so ``ckpt_path="best"`` finds it) and ``last.ckpt``,
        written after each validation and every ``checkpoint_every_n_steps`` training steps.

        Both live in ``<default_root_dir>/checkpoints`` – a path that does not change between
        runs, so ``--ckpt_path last`` finds the checkpoint of the run that was killed.
        """
        dirpath = Path(self.trainer.default_root_dir) / "checkpoints"
        best = ModelCheckpoint(
            dirpath=dirpath,
            filename="best-epoch={epoch:03d}-step={step}",
            monitor=self.monitor,
            mode=self.mode,
            save_top_k=1,
            save_last=True,  # refreshed at each validation, so ``last`` is also the final state
            auto_insert_metric_name=False,
            enable_version_counter=False,  # both callbacks write the one last.ckpt
        )
        last = ModelCheckpoint(
            dirpath=dirpath,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=self.hparams.checkpoint_every_n_steps,
            enable_version_counter=False,
        )
        extras = [cb for cb in self.default_callbacks() if not any(type(t) is type(cb) for t in self.trainer.callbacks)]
        return [best, last, *extras]

    def default_callbacks(self) -> list[Callback]:
        """Callbacks the task adds unless the config already lists one of the same type."""
        return [MetricsFileWriter()]
