"""Everything a run writes for people and programs to read: files, figures and the callbacks
that write them (prediction CSVs, masks, boxes, COCO results, sample grids, metric files).

Figures use matplotlib's Agg backend and are imported only when something is drawn.
"""

from visionsuite.outputs.explanations import ExplanationFigures
from visionsuite.outputs.images import FigureLogger, MaskOverlay
from visionsuite.outputs.mask_writer import SegmentationMaskWriter
from visionsuite.outputs.metrics_file import MetricsFileWriter
from visionsuite.outputs.prediction_writer import PredictionCSVWriter

__all__ = [
    "ExplanationFigures",
    "FigureLogger",
    "MaskOverlay",
    "MetricsFileWriter",
    "PredictionCSVWriter",
    "SegmentationMaskWriter",
]
