"""The checkpoint callbacks of a run: the best validation score, and ``last.ckpt`` for resuming."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint


def checkpoint_callbacks(
    dirpath: str | Path | None, monitor: str | None, mode: str, every_n_train_steps: int
) -> list[ModelCheckpoint]:
    """``best-epoch=…-step=….ckpt`` (only when ``monitor`` is set) and ``last.ckpt``.

    ``last.ckpt`` is refreshed at each validation and every ``every_n_train_steps`` steps, so a
    killed run loses at most that many steps. Both callbacks write the one ``last.ckpt``.
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
                save_last=True,
                auto_insert_metric_name=False,
                enable_version_counter=False,
            )
        )
    callbacks.append(
        ModelCheckpoint(
            dirpath=dirpath,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )
    )
    return callbacks
