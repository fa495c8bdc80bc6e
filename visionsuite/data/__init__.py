"""The data layer: cached uint8 datasets, on-device augmentation, Lightning DataModules.

See ``data/README.md`` (in the checkout) for where files land and the lookup order
(``data_dir`` → ``VISIONSUITE_MIRROR`` mirror → download).

The names below are imported on first use (PEP 562): the data modules need Lightning, while the
decoding and geometry modules (``images``, ``geometry``, ``palette``) do not, and
``predict-exported`` must run without Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .base import TensorClassificationDataModule
    from .camvid import CamVidDataModule
    from .cifar import CIFAR10DataModule
    from .detection import (
        COCODetectionDataModule,
        FashionMNISTScenesDataModule,
        VOCDetectionDataModule,
        YOLODetectionDataModule,
    )
    from .errors import (
        DataError,
        DatasetNotFoundError,
        InvalidDatasetError,
        UnsafeArchiveError,
    )
    from .image_folder import ImageFolderDataModule
    from .mnist import FashionMNISTDataModule, MNISTDataModule
    from .segmentation import SegmentationFolderDataModule

_EXPORTS = {
    "TensorClassificationDataModule": ".base",
    "CamVidDataModule": ".camvid",
    "CIFAR10DataModule": ".cifar",
    "COCODetectionDataModule": ".detection",
    "FashionMNISTScenesDataModule": ".detection",
    "VOCDetectionDataModule": ".detection",
    "YOLODetectionDataModule": ".detection",
    "DataError": ".errors",
    "DatasetNotFoundError": ".errors",
    "InvalidDatasetError": ".errors",
    "UnsafeArchiveError": ".errors",
    "ImageFolderDataModule": ".image_folder",
    "FashionMNISTDataModule": ".mnist",
    "MNISTDataModule": ".mnist",
    "SegmentationFolderDataModule": ".segmentation",
}

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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def import_all() -> None:
    """Import every data module, so that LightningCLI finds them as subclasses by their short
    names (``--data FashionMNISTDataModule``)."""
    for name in _EXPORTS:
        __getattr__(name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
