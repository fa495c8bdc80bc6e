"""``run.json`` in every fit run folder: what the run is and how far it got, for ``visionsuite runs``.

The file is small and rewritten atomically at the start of fit, after each training epoch and
when fit ends or fails, so a listing can tell a finished run from a diverged, failed or still
running one (and, with ``pid``/``host``, a ``running`` one whose process is gone: killed) without
opening a checkpoint. Fields::

    status    running | finished | stopped | diverged | failed
    pid, host the training process (rank 0)
    started   ISO time of the first fit in this folder (kept by a resume); ``resumes``: later starts
    ended     ISO time fit ended or failed
    task, backbone, monitor, mode   the task class, its model name, and what it selects on
    epochs, step                    epochs completed and the global step
    error     one line, for ``diverged`` / ``failed`` / ``stopped``
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn

from visionsuite.callbacks.divergence import DivergenceError
from visionsuite.core.atomic import write_text_atomic
from visionsuite.core.readers import read_json_object

FILENAME = "run.json"
#: hyperparameters naming the network, first present wins (classification/detection, segmentation, generative).
MODEL_KEYS = ("detector", "backbone", "model", "arch")


def now() -> str:
    """Local time with its offset, to the second: readable, and sortable within one machine."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def model_name(hparams: Any) -> str | None:
    """The network's name from a task's hyperparameters (``backbone``, ``model`` or ``arch``)."""
    for key in MODEL_KEYS:
        value = hparams.get(key) if hasattr(hparams, "get") else None
        if isinstance(value, str) and value:
            return value
    return None


class RunRecord(Callback):
    """Writes ``<trainer.default_root_dir>/run.json`` during ``fit`` on rank 0 (not under ``fast_dev_run``)."""

    def __init__(self, filename: str = FILENAME) -> None:
        self.filename = filename
        self.record: dict[str, Any] = {}

    def _active(self, trainer: Trainer) -> bool:
        return trainer.is_global_zero and not trainer.fast_dev_run and trainer.state.fn == TrainerFn.FITTING

    def _path(self, trainer: Trainer) -> Path:
        return Path(trainer.default_root_dir) / self.filename

    def _write(self, trainer: Trainer, **fields: Any) -> None:
        self.record.update(fields)
        write_text_atomic(self._path(trainer), json.dumps(self.record, indent=2) + "\n")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active(trainer):
            return
        previous = read_json_object(self._path(trainer))
        started = now()
        self.record = {k: previous[k] for k in ("started", "resumes", "epochs", "step") if k in previous}
        if "started" in previous:  # a resume in the same folder: the run began earlier
            self.record["resumes"] = [*previous.get("resumes", []), started]
        self.record.pop("error", None)
        self._write(
            trainer,
            status="running",
            pid=os.getpid(),
            host=socket.gethostname(),
            started=self.record.get("started", started),
            task=type(pl_module).__name__,
            backbone=model_name(getattr(pl_module, "hparams", {})),
            monitor=getattr(pl_module, "monitor", None),
            mode=getattr(pl_module, "mode", None) if getattr(pl_module, "monitor", None) else None,
        )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._active(trainer) and self.record:
            self._write(trainer, epochs=trainer.current_epoch + 1, step=trainer.global_step)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._active(trainer) and self.record:
            self._write(trainer, status="stopped" if trainer.interrupted else "finished", step=trainer.global_step, ended=now())

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not (self._active(trainer) and self.record):
            return
        if isinstance(exception, DivergenceError):
            status = "diverged"
        elif isinstance(exception, KeyboardInterrupt):
            status = "stopped"
        else:
            status = "failed"
        if not holds_results(self._path(trainer).parent, frozenset({self.filename})):
            # failed before its first checkpoint or metric: the CLI discards such a folder
            # (``discard_fresh_run``), which a lone run.json would keep alive
            self._path(trainer).unlink(missing_ok=True)
            return
        line = (str(exception).strip().splitlines() or [""])[0]
        error = f"{type(exception).__name__}: {line}" if line else type(exception).__name__
        self._write(trainer, status=status, step=trainer.global_step, ended=now(), error=error[:300])


#: files a run folder has before it has trained anything: a folder holding only these (and
#: ``run.json``) may be taken back when its command fails (``visionsuite.cli.app.discard_fresh_run``).
BOOKKEEPING = frozenset({"config.yaml", "hparams.yaml"})


def holds_results(run: Path, also_bookkeeping: frozenset[str] = frozenset()) -> bool:
    """Whether ``run`` holds a file beyond its bookkeeping (a checkpoint, metrics, predictions)."""
    skip = BOOKKEEPING | also_bookkeeping
    return any(p.is_file() and p.name not in skip for p in run.rglob("*"))
