"""Lightning callbacks shared by the tasks: prediction CSVs, image logging, metric files."""

from visionsuite.callbacks.images import FigureLogger
from visionsuite.callbacks.metrics_file import MetricsFileWriter
from visionsuite.callbacks.prediction_writer import PredictionCSVWriter

__all__ = ["FigureLogger", "MetricsFileWriter", "PredictionCSVWriter"]
