"""Lightning task modules: one base class, one module per task."""

from visionsuite.tasks.base import BaseTask
from visionsuite.tasks.classification import ClassificationTask

__all__ = ["BaseTask", "ClassificationTask"]
