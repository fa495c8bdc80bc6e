"""Lightning callbacks that steer a run: its checkpoints, its divergence guard and its ``run.json``.

Callbacks that write files or figures (prediction CSVs, masks, boxes, sample grids, metric
files) live in :mod:`visionsuite.outputs`. Their old paths here
(``visionsuite.callbacks.PredictionCSVWriter`` …) still import, for one release.
"""

from visionsuite.callbacks.checkpointing import checkpoint_callbacks
from visionsuite.callbacks.divergence import DivergenceError, DivergenceGuard
from visionsuite.callbacks.run_record import RunRecord
from visionsuite.outputs import (  # re-exported for one release; use visionsuite.outputs
    ExplanationFigures,
    FigureLogger,
    MaskOverlay,
    MetricsFileWriter,
    PredictionCSVWriter,
    SegmentationMaskWriter,
)

__all__ = [
    "DivergenceError",
    "DivergenceGuard",
    "ExplanationFigures",
    "FigureLogger",
    "MaskOverlay",
    "MetricsFileWriter",
    "PredictionCSVWriter",
    "RunRecord",
    "SegmentationMaskWriter",
    "checkpoint_callbacks",
]
