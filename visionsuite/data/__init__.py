"""The data layer: cached uint8 datasets, on-device augmentation, Lightning DataModules.

See ``data/README.md`` (in the checkout) for where files land and the lookup order
(``data_dir`` → ``VISIONSUITE_MIRROR`` mirror → download).
"""

from .base import TensorClassificationDataModule
from .camvid import CamVidDataModule
from .cifar import CIFAR10DataModule
from .detection import (
    COCODetectionDataModule,
    FashionMNISTScenesDataModule,
    VOCDetectionDataModule,
    YOLODetectionDataModule,
)
from .errors import DataError, DatasetNotFoundError, InvalidDatasetError, UnsafeArchiveError
from .image_folder import ImageFolderDataModule
from .mnist import FashionMNISTDataModule, MNISTDataModule
from .segmentation import SegmentationFolderDataModule

__all__ = [
    "CIFAR10DataModule",
    "COCODetectionDataModule",
    "CamVidDataModule",
    "DataError",
    "DatasetNotFoundError",
    "FashionMNISTDataModule",
    "FashionMNISTScenesDataModule",
    "ImageFolderDataModule",
    "InvalidDatasetError",
    "MNISTDataModule",
    "SegmentationFolderDataModule",
    "TensorClassificationDataModule",
    "UnsafeArchiveError",
    "VOCDetectionDataModule",
    "YOLODetectionDataModule",
]
