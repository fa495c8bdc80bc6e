"""Lightning task modules: one base class, one module per task."""

from visionsuite.tasks.base import BaseTask
from visionsuite.tasks.classification import ClassificationTask
from visionsuite.tasks.detection import DetectionTask
from visionsuite.tasks.gan import GANTask
from visionsuite.tasks.generative import AutoencoderTask, VAETask
from visionsuite.tasks.segmentation import SegmentationTask

__all__ = ["AutoencoderTask", "BaseTask", "ClassificationTask", "DetectionTask", "GANTask", "SegmentationTask", "VAETask"]
