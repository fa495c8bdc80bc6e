"""Lightning task modules: one base class, one module per task."""

from visionsuite.tasks.base import BaseTask
from visionsuite.tasks.classification import ClassificationTask
from visionsuite.tasks.detection import DetectionTask

__all__ = ["BaseTask", "ClassificationTask", "DetectionTask"]
