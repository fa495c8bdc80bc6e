"""Write the final logged metrics to JSON, so scripts and benchmarks read results without parsing logs."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

from visionsuite.core.atomic import write_text_atomic

def scored_step(trainer: Trainer, pl_module: LightningModule, stage: str) -> int:
    """The training step of the weights a stage scored: the loaded checkpoint's for an evaluation
    from a checkpoint (Lightning restores its weights, not its step), else the trainer's."""
    step = getattr(pl_module, "checkpoint_step", None)
    if stage != "fit" and trainer.ckpt_path and step is not None:
        return int(step)
    return trainer.global_step


class MetricsFileWriter(Callback):
    """After fit, test and validate, dump ``trainer.callback_metrics`` to ``<default_root_dir>/metrics.json``.

    Under DDP every rank writes ``metrics.rank<N>.json``: the metrics are synchronised across
    ranks, so these files are identical – which is what the DDP test checks.
    """

    def __init__(self, filename: str = "metrics.json") -> None:
        self.filename = filename

    def _write(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        path = Path(trainer.default_root_dir) / self.filename
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        elif not trainer.is_global_zero:
            return
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        existing[f"{stage}_global_step"] = scored_step(trainer, pl_module, stage)
        if stage in ("test", "validate") and trainer.ckpt_path:
            existing[f"{stage}_checkpoint"] = str(trainer.ckpt_path)
        write_text_atomic(path, json.dumps(existing, indent=2, sort_keys=True))

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "fit")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "test")

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """``visionsuite validate``: its scores too (the validations inside a fit are in ``metrics.csv``)."""
        if trainer.state.fn == "validate" and not trainer.sanity_checking:
            self._write(trainer, pl_module, "validate")
