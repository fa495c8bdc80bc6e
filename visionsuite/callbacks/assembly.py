"""The one rule for adding a task's callbacks to a Trainer's: what the CLI hands the Trainer before
it resolves ``ckpt_path`` (``instantiate_trainer``) and what ``BaseTask.configure_callbacks`` adds
when the Trainer runs a stage use the same function, so the two can never disagree."""

from __future__ import annotations

from collections.abc import Iterable

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint


def missing_callbacks(wanted: Iterable[Callback], present: Iterable[Callback], *, checkpointing: bool) -> list[Callback]:
    """``wanted`` less those whose type is ``present`` already (a callback the user configured wins),
    and less every checkpoint callback when checkpointing is off (no files written unasked)."""
    have = {type(cb) for cb in present}
    return [cb for cb in wanted if type(cb) not in have and (checkpointing or not isinstance(cb, ModelCheckpoint))]
