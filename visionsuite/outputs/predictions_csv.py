"""The predictions CSV (``file,predicted_class,probability``), written by ``predict`` and by
:mod:`visionsuite.tools.exported` alike (no Lightning import here)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from visionsuite.core.atomic import atomic_path

HEADER = ("file", "predicted_class", "probability")


def write_predictions(path: Path, rows: Iterable[tuple[str, int, float]], names: Sequence[str] | None) -> Path:
    """One row per image: its file, the predicted class's name (or index) and its probability.

    Written atomically (:mod:`visionsuite.core.atomic`): a failure leaves the previous file as it was."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for file, pred, prob in rows:
            writer.writerow([file, names[pred] if names else str(pred), f"{prob:.6f}"])
    return path
