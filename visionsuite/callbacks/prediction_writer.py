"""Write ``predict`` results as a CSV of file, predicted class and probability."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter


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
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "predicted_class", "probability"])
            for batch in _flatten(predictions):
                for file, pred, prob in zip(batch["paths"], batch["pred"].tolist(), batch["prob"].tolist(), strict=True):
                    label = names[pred] if names else str(pred)
                    writer.writerow([file, label, f"{prob:.6f}"])
        self.written = path
        print(f"Predictions written to {path}")


def _flatten(predictions: Sequence[Any]) -> list[dict[str, Any]]:
    """``trainer.predict`` returns a list per dataloader when there are several."""
    if predictions and isinstance(predictions[0], list):
        return [p for group in predictions for p in group]
    return list(predictions)
