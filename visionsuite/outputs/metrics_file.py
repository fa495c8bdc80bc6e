"""Write the final logged metrics to JSON, so scripts and benchmarks read results without parsing logs."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from visionsuite.core.atomic import write_text_atomic

class MetricsFileWriter(Callback):
    """After fit and after test, dump ``trainer.callback_metrics`` to ``<default_root_dir>/metrics.json``.

    Under DDP every rank writes ``metrics.rank<N>.json``: the metrics are synchronised across
    ranks, so these files are identical – which is what the DDP test checks.
    """

    def __init__(self, filename: str = "metrics.json") -> None:
        self.filename = filename

    def _write(self, trainer: Trainer, stage: str) -> None:
        path = Path(trainer.default_root_dir) / self.filename
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        elif not trainer.is_global_zero:
            return
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        existing[f"{stage}_global_step"] = trainer.global_step
        write_text_atomic(path, json.dumps(existing, indent=2, sort_keys=True))

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "fit")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "test")
