"""Write ``predict`` results as a CSV of file, predicted class and probability."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from visionsuite.outputs.predictions_csv import write_predictions


class PredictionCSVWriter(BasePredictionWriter):
    """Collects ``{"paths", "pred", "prob"}`` from ``predict_step`` and writes one CSV at the end.

    Args:
        output: CSV path; default ``<trainer.default_root_dir>/predictions.csv``. Under DDP each
            rank writes ``<stem>.rank<N>.csv`` (its share of the files).
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output
        self.written: Path | None = None

    def write_on_epoch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        path = Path(self.output) if self.output else Path(trainer.default_root_dir) / "predictions.csv"
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
        rows = (
            row
            for batch in _flatten(predictions)
            for row in zip(batch["paths"], batch["pred"].tolist(), batch["prob"].tolist(), strict=True)
        )
        self.written = write_predictions(path, rows, names)
        print(f"Predictions written to {path}")


def _flatten(predictions: Sequence[Any]) -> list[dict[str, Any]]:
    """``trainer.predict`` returns a list per dataloader when there are several."""
    if predictions and isinstance(predictions[0], list):
        return [p for group in predictions for p in group]
    return list(predictions)
