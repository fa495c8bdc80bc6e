"""CIFAR-10: 32x32 RGB, 10 classes; 50k train (40k/10k train/val by default) + 10k test.

Lookup order: an extracted ``data_dir/cifar10/cifar10-jpeg/`` or ``cifar-10-batches-py/``; the
JPEG archive ``cifar10-jpeg.tar.gz`` under ``data_dir/cifar10/`` or in the mirror's
``cifar10/`` (extracted under ``data_dir/cifar10/``); the canonical python tarball from
cs.toronto.edu (downloaded, extracted, its pickles converted). Both layouts decode to the same
cache ``data_dir/cifar10/cache/{train,test}.pt``. Class order = alphabetical folder names =
the canonical CIFAR-10 label order.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .archive import safe_extract
from .base import TensorClassificationDataModule
from .cache import DecodedSplit
from .errors import InvalidDatasetError
from .images import decode_labelled, scan_class_folders, subfolders
from .sources import download_first, mirror_path, not_found

JPEG_ARCHIVE, JPEG_TREE = "cifar10-jpeg.tar.gz", "cifar10-jpeg"
PY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
PY_MD5, PY_ARCHIVE, PY_TREE = "c58f30108f718f92721af3b95e74349a", "cifar-10-python.tar.gz", "cifar-10-batches-py"
_PY_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class CIFAR10DataModule(TensorClassificationDataModule):
    """CIFAR-10 with the course recipe: 40k/10k hold-out, random crop (pad 4) + flip."""

    dataset_name = "cifar10"
    CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    MEAN = (0.4914, 0.4822, 0.4465)
    STD = (0.2470, 0.2435, 0.2616)
    IMAGE_SIZE = (32, 32)
    IN_CHANS = 3

    def __init__(
        self, val_size: int | float = 10_000, crop_padding: int = 4, hflip: bool = True, **kwargs: Any
    ) -> None:
        """CIFAR-10's own defaults; every other option is the base class's (``**kwargs``)."""
        super().__init__(val_size=val_size, crop_padding=crop_padding, hflip=hflip, **kwargs)

    # -- fetching ----------------------------------------------------------------------------
    def fetch(self) -> tuple[str, Path]:
        """``("jpeg" | "pickle", folder)``, extracting or downloading as needed."""
        jpeg, py = self.dataset_dir / JPEG_TREE, self.dataset_dir / PY_TREE
        if jpeg.is_dir():
            return "jpeg", jpeg
        if py.is_dir():
            return "pickle", py
        for archive in (self.dataset_dir / JPEG_ARCHIVE, mirror_path("cifar10", JPEG_ARCHIVE)):
            if archive is not None and archive.is_file():
                safe_extract(archive, self.dataset_dir)
                if not jpeg.is_dir():
                    raise InvalidDatasetError(f"{archive} does not contain the folder {JPEG_TREE}/")
                return "jpeg", jpeg
        tarball = self.dataset_dir / PY_ARCHIVE
        if not tarball.is_file():
            path, reason = download_first([PY_URL], self.dataset_dir, PY_ARCHIVE, PY_MD5)
            if path is None:
                raise not_found("CIFAR-10", self.data_dir, "cifar10", reason)
        safe_extract(tarball, self.dataset_dir)
        return "pickle", py

    # -- decoding ----------------------------------------------------------------------------
    def _decode(self, splits: list[str]) -> dict[str, DecodedSplit]:
        kind, folder = self.fetch()
        decode = self._decode_jpeg if kind == "jpeg" else self._decode_pickle
        return {split: decode(folder, split) for split in splits}

    def _decode_jpeg(self, tree: Path, split: str) -> DecodedSplit:
        root = tree / split
        if not root.is_dir() or subfolders(root) != list(self.CLASSES):
            raise InvalidDatasetError(f"{root} must hold one folder per CIFAR-10 class: {', '.join(self.CLASSES)}")
        items = scan_class_folders(root, self.CLASSES)
        return decode_labelled(items, tree, self.CLASSES, 3, self.IMAGE_SIZE, desc=f"decoding CIFAR-10 {split}")

    def _decode_pickle(self, folder: Path, split: str) -> DecodedSplit:
        """The canonical python batches: dicts with ``data`` uint8 [N, 3072] (planar RGB) and ``labels``."""
        data, labels = [], []
        for name in _PY_BATCHES[split]:
            with open(folder / name, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")  # the canonical, checksummed format
            data.append(np.asarray(batch[b"data"], dtype=np.uint8))
            labels.extend(batch[b"labels"])
        images = torch.from_numpy(np.concatenate(data).reshape(-1, 3, 32, 32))
        labels_t = torch.tensor(labels, dtype=torch.int64)
        return DecodedSplit(images=images, labels=labels_t, classes=list(self.CLASSES))
