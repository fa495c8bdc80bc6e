"""Lightning task modules: one base class, one module per task."""

from visionsuite.tasks.base import BaseTask
from visionsuite.tasks.classification import ClassificationTask
from visionsuite.tasks.segmentation import SegmentationTask

__all__ = ["BaseTask", "ClassificationTask", "SegmentationTask"]
