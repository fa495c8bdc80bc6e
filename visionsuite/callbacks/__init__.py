"""Lightning callbacks shared by the tasks: checkpoints, divergence guard, prediction CSVs, images, metric files."""

from visionsuite.callbacks.checkpointing import checkpoint_callbacks
from visionsuite.callbacks.divergence import DivergenceError, DivergenceGuard
from visionsuite.callbacks.explanations import ExplanationFigures
from visionsuite.callbacks.images import FigureLogger, MaskOverlay
from visionsuite.callbacks.metrics_file import MetricsFileWriter
from visionsuite.callbacks.mask_writer import SegmentationMaskWriter
from visionsuite.callbacks.prediction_writer import PredictionCSVWriter

__all__ = [
    "DivergenceError",
    "DivergenceGuard",
    "ExplanationFigures",
    "FigureLogger",
    "MaskOverlay",
    "MetricsFileWriter",
    "PredictionCSVWriter",
    "SegmentationMaskWriter",
    "checkpoint_callbacks",
]
