"""Any folder of images with one sub-folder per class, decoded once to a uint8 cache.

Layouts (``root`` is the only required argument):

* ``root/<class>/*.jpg`` — everything is training data; ``val_size`` and ``test_size`` images
  are held out of it with the seeded generator;
* ``root/train/<class>/…`` plus optional ``root/val/<class>/…`` and ``root/test/<class>/…`` —
  a missing ``val`` or ``test`` folder is held out of ``train`` the same way. (So a dataset
  whose class is literally named ``train`` must use this layout.)

Class names are the sorted sub-folder names of the training folder (at least two; a class
folder without images is an error naming it). Files are searched recursively inside a class
folder; other files (non-image extensions, hidden files) are ignored. Every image is converted
to ``channels`` (1 = ``L``, 3 = ``RGB``) and resized to ``image_size`` keeping its aspect ratio
(centre crop), exactly like ``predict_dir`` images.

**Unreadable images are skipped, not fatal.** A truncated JPEG or a text file named ``.jpg``
is left out of the cache; ``setup`` then emits one warning with the count and the first few
names, and the module lists them in ``skipped_files``. A class left with no readable image is
an error. The cache sits in ``data_dir/image_folder/<root name>-<fingerprint>/`` where the
fingerprint covers every file's path, size and mtime plus ``image_size`` and ``channels``, so
editing the folder or the settings rebuilds it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from .base import TensorClassificationDataModule
from .cache import CACHE_VERSION, DecodedSplit
from .errors import InvalidDatasetError
from .images import class_folders, decode_labelled, scan_class_folders

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: 1-channel defaults: ImageNet's statistics averaged with the luma weights of ``L`` conversion.
IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD = (0.458,), (0.226,)


class ImageFolderDataModule(TensorClassificationDataModule):
    """A class-per-folder image dataset (see the module docstring for layouts and policies)."""

    dataset_name = "image_folder"

    RESIZABLE = True

    def __init__(
        self,
        root: str,
        image_size: int | tuple[int, int] = 224,
        channels: int = 3,
        val_size: int | float = 0.1,
        test_size: int | float = 0.1,
        hflip: bool = True,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            root: the image folder (layouts in the module docstring).
            image_size: (H, W) or one side of the decoded images (aspect kept, centre crop).
            channels: 1 (grayscale) or 3 (RGB).
            mean, std: normalisation; default ImageNet's (its gray average for 1 channel).
            **kwargs: every other option of :class:`TensorClassificationDataModule`.
        """
        gray = channels == 1
        super().__init__(
            image_size=image_size, channels=channels, val_size=val_size, test_size=test_size, hflip=hflip,
            mean=mean if mean is not None else (IMAGENET_GRAY_MEAN if gray else IMAGENET_MEAN),
            std=std if std is not None else (IMAGENET_GRAY_STD if gray else IMAGENET_STD),
            **kwargs,
        )  # fmt: skip
        self.root = Path(root).expanduser()
        self._classes: list[str] | None = None
        self._items: dict[str, list[tuple[Path, int]]] | None = None
        self._fingerprint: str | None = None

    # -- layout ------------------------------------------------------------------------------
    def split_dirs(self) -> dict[str, Path]:
        """The folder of each split stored on disk (``train`` always; ``val``/``test`` if present)."""
        if (self.root / "train").is_dir():
            return {s: self.root / s for s in ("train", "val", "test") if (self.root / s).is_dir()}
        return {"train": self.root}

    def cache_splits(self) -> tuple[str, ...]:
        return tuple(self.split_dirs())

    @property
    def class_names(self) -> list[str]:
        """Sorted class folder names of the training folder (a cheap directory listing)."""
        if self._classes is None:
            self._classes = class_folders(self.split_dirs()["train"])
        return list(self._classes)

    def _scan(self) -> dict[str, list[tuple[Path, int]]]:
        if self._items is None:
            self._items = {s: scan_class_folders(d, self.class_names) for s, d in self.split_dirs().items()}
        return self._items

    @property
    def cache_dir(self) -> Path:
        """``data_dir/image_folder/<root name>-<fingerprint of files and settings>``."""
        if self._fingerprint is None:
            digest = hashlib.sha1(f"{CACHE_VERSION}|{self.image_size}|{self.in_chans}".encode())
            for split, items in self._scan().items():
                for path, label in items:
                    st = path.stat() if path.exists() else path.lstat()  # a dangling link is skipped later
                    rel = path.relative_to(self.root).as_posix()
                    digest.update(f"{split}|{rel}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            self._fingerprint = digest.hexdigest()[:12]
        return self.data_dir / self.dataset_name / f"{self.root.resolve().name}-{self._fingerprint}"

    def _source_description(self) -> str:
        return str(self.root)

    # -- decoding ----------------------------------------------------------------------------
    def _decode(self, splits: list[str]) -> dict[str, DecodedSplit]:
        return {split: self._decode_split(split) for split in splits}

    def _decode_split(self, split: str) -> DecodedSplit:
        items = self._scan()[split]
        decoded = decode_labelled(
            items, self.root, self.class_names, self.in_chans, self.image_size, desc=f"decoding {split}"
        )
        if split == "train":
            counts = torch.bincount(decoded.labels, minlength=self.num_classes)
            empty = [c for c, n in zip(self.class_names, counts.tolist()) if n == 0]
            if empty:
                raise InvalidDatasetError(f"class folder {empty[0]!r} in {str(self.root)!r} has no readable image")
        return decoded
