"""The checkpoint callbacks of a run: the best validation score, and ``last.ckpt`` for resuming."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from visionsuite.core.private_api import last_checkpoint_step, save_last_checkpoint


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` alone: every ``every_n_train_steps`` steps, after each validation, and when
    training ends (``max_time``, ``max_steps`` or early stopping included).

    Why a subclass: Lightning (2.6) refreshes ``last.ckpt`` at an epoch's end only when a top-k
    checkpoint was written at that step, so beside a best-on-validation checkpoint it stayed at
    the last improvement: a resumed run went back to it, and the weights a budgeted run ended
    with were never stored. A run stopped by an exception keeps the last regular save (the
    divergence guard raises, so diverged weights never reach ``last.ckpt``).
    """

    def __init__(self, dirpath: str | Path | None, every_n_train_steps: int) -> None:
        super().__init__(dirpath=dirpath, save_top_k=0, save_last=True, every_n_train_steps=every_n_train_steps,
                         enable_version_counter=False)  # fmt: skip

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Saved again after the best-checkpoint callback's own save at this epoch end (it saves
        here, after validation): otherwise ``last.ckpt`` held its state from before that save,
        a resumed run did not know its newest best file, and kept two ``best-*.ckpt``. Only at the
        end of a whole epoch: an epoch cut short by ``max_steps`` keeps its mid-epoch state, so a
        resume trains the rest of that epoch."""
        super().on_train_epoch_end(trainer, pl_module)
        whole_epoch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        self._refresh_last(trainer, force=whole_epoch)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)

    def _refresh_last(self, trainer: Trainer, *, force: bool = False) -> None:
        stale = force or last_checkpoint_step(self) != trainer.global_step
        if stale and not trainer.fast_dev_run and not trainer.sanity_checking and trainer.state.fn == TrainerFn.FITTING:
            save_last_checkpoint(self, trainer)


def checkpoint_callbacks(
    dirpath: str | Path | None, monitor: str | None, mode: str, every_n_train_steps: int
) -> list[ModelCheckpoint]:
    """``best-epoch=…-step=….ckpt`` (only when ``monitor`` is set) and ``last.ckpt``.

    ``last.ckpt`` (:class:`LastCheckpoint`, its only writer) is refreshed at each validation, every
    ``every_n_train_steps`` steps and when training ends, so a killed run loses at most that many
    steps.
    """
    callbacks = []
    if monitor is not None:
        callbacks.append(
            ModelCheckpoint(
                dirpath=dirpath,
                filename="best-epoch={epoch:03d}-step={step}",
                monitor=monitor,
                mode=mode,
                save_top_k=1,
                save_last=False,  # last.ckpt is LastCheckpoint's: one write per step
                auto_insert_metric_name=False,
                enable_version_counter=False,
            )
        )
    callbacks.append(LastCheckpoint(dirpath, every_n_train_steps))
    return callbacks
