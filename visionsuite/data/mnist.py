"""Fashion-MNIST and MNIST: 28x28 grayscale, 10 classes, read from their original IDX files.

Lookup order for the four ``*-idx?-ubyte.gz`` files: ``data_dir/<name>/raw/`` (or torchvision's
``data_dir/<FashionMNIST|MNIST>/raw/``), then the mirror's ``fashion-mnist/`` / ``mnist/``, then
a download from torchvision's URLs into ``data_dir/<name>/raw/``. The decoded cache lives in
``data_dir/<name>/cache/{train,test}.pt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from .base import TensorClassificationDataModule
from .cache import DecodedSplit
from .idx import read_idx
from .sources import download_first, first_dir_with, mirror_path, not_found

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class _IdxDataModule(TensorClassificationDataModule):
    """Shared fetching/decoding of the MNIST-format datasets."""

    IMAGE_SIZE: ClassVar[tuple[int, int]] = (28, 28)
    IN_CHANS: ClassVar[int] = 1
    #: folder in the mirror, and the torchvision class whose URLs/md5s are used for downloads.
    mirror_subdir: ClassVar[str] = ""
    torchvision_name: ClassVar[str] = ""
    title: ClassVar[str] = ""

    def fetch(self) -> Path:
        """The folder holding the four IDX files (downloading them if nowhere else)."""
        names = [f for pair in _FILES.values() for f in pair]
        local = [self.dataset_dir / "raw", self.data_dir / self.torchvision_name / "raw"]
        found = first_dir_with(names, [*local, mirror_path(self.mirror_subdir)])
        if found is not None:
            return found
        import torchvision.datasets  # only needed to download: its URLs and checksums

        tv = getattr(torchvision.datasets, self.torchvision_name)
        dest = self.dataset_dir / "raw"
        for filename, md5 in tv.resources:
            if (dest / filename).is_file():
                continue
            path, reason = download_first([m + filename for m in tv.mirrors], dest, filename, md5)
            if path is None:
                raise not_found(self.title, self.data_dir, self.mirror_subdir, reason)
        return dest

    def _decode(self, splits: list[str]) -> dict[str, DecodedSplit]:
        raw = self.fetch()
        out = {}
        for split in splits:
            images_file, labels_file = _FILES[split]
            images = torch.from_numpy(read_idx(raw / images_file).copy()).unsqueeze(1)
            labels = torch.from_numpy(read_idx(raw / labels_file).astype("int64"))
            out[split] = DecodedSplit(images=images, labels=labels, classes=list(self.CLASSES))
        return out


class FashionMNISTDataModule(_IdxDataModule):
    """Fashion-MNIST (Zalando): 60k train (55k/5k train/val by default) + 10k test, 28x28x1."""

    dataset_name = "fashion_mnist"
    mirror_subdir = "fashion-mnist"
    torchvision_name = "FashionMNIST"
    title = "Fashion-MNIST"
    CLASSES = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip
    MEAN = (0.2860,)
    STD = (0.3530,)


class MNISTDataModule(_IdxDataModule):
    """MNIST handwritten digits: 60k train (55k/5k train/val by default) + 10k test, 28x28x1."""

    dataset_name = "mnist"
    mirror_subdir = "mnist"
    torchvision_name = "MNIST"
    title = "MNIST"
    CLASSES = tuple(str(d) for d in range(10))
    MEAN = (0.1307,)
    STD = (0.3081,)
