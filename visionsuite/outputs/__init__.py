"""Everything a run writes for people and programs to read: files, figures and the callbacks
that write them (prediction CSVs, masks, boxes, COCO results, sample grids, metric files).

The callbacks are re-exported here lazily (PEP 562), so that importing a plain writer such as
``visionsuite.outputs.predictions_csv`` never imports Lightning (``predict-exported`` runs
without it). Figures use matplotlib's Agg backend and are imported only when something is drawn.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module that defines it.
_CALLBACKS = {
    "ExplanationFigures": "visionsuite.outputs.explanations",
    "FigureLogger": "visionsuite.outputs.images",
    "MaskOverlay": "visionsuite.outputs.images",
    "SegmentationMaskWriter": "visionsuite.outputs.mask_writer",
    "MetricsFileWriter": "visionsuite.outputs.metrics_file",
    "PredictionCSVWriter": "visionsuite.outputs.prediction_writer",
    "TrainingCurves": "visionsuite.outputs.curves",
}

__all__ = sorted(_CALLBACKS)


def __getattr__(name: str) -> Any:
    if name in _CALLBACKS:
        return getattr(importlib.import_module(_CALLBACKS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
