"""Keep a resumed run's ``metrics.csv`` history.

Lightning's CSVLogger deletes ``metrics.csv`` when its folder is not empty, which is always the
case when a run resumes in place. This callback reads the rows logged before the restored step
first, and puts them back in front of the new rows, so the file reads like an uninterrupted run.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger


class CSVHistory(Callback):
    """Restores the rows of ``metrics_csv`` with ``step`` below the step the run resumes at."""

    def __init__(self, metrics_csv: Path) -> None:
        self.rows: list[dict[str, Any]] = []
        if metrics_csv.is_file():
            with metrics_csv.open(newline="") as f:
                self.rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # not on_fit_start: Lightning restores global_step between the two
        kept = [row for row in self.rows if row.get("step", 0) < trainer.global_step]
        for row in kept:
            row["step"] = int(row["step"])
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger) and kept:
                logger.experiment.metrics[:0] = kept  # written with the next save()
        self.rows = []
