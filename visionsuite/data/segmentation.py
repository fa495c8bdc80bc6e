"""Segmentation data from an images folder and a masks folder (per split), checked before caching.

:class:`PairedMaskDataModule` pairs ``<images>/<name>.<ext>`` with ``<masks>/<name>.png`` (same
stem) and checks each pair once, when the cache is built, so a bad dataset fails with a one-line
error naming the file instead of training on garbage:

* an image without its mask (or a mask without its image), or an image and mask of different
  sizes → :class:`InvalidDatasetError` naming the pair; sizes are compared as decoded, with
  the EXIF orientation of either file applied (masks are oriented like images);
* an index mask (mode ``P``/``L``: one class index per pixel) with a value outside
  ``[0, num_classes)`` that is not ``ignore_index`` → error naming the file and the values;
* a colour mask (``RGB``/``RGBA``, alpha ignored) is mapped through ``palette`` (one RGB per
  class; ``void_color`` maps to ``ignore_index``) into an index PNG under the dataset folder; a
  colour that is not in the palette → error naming the file and the colour.

Images are converted to RGB (grayscale is replicated, RGBA drops its alpha) or to ``L`` for
``channels: 1``. An image file that cannot be decoded is skipped and counted (the foundation's
policy, :func:`~visionsuite.data.images.skipped_message`), not fatal.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from visionsuite.errors import DataWarning

from .cache import CACHE_VERSION
from .datasets import TensorImageDataset
from .dense import DenseTargetDataModule, Sample, check_pair_size
from .errors import InvalidDatasetError
from .geometry import fit_sample
from .image_folder import IMAGENET_MEAN, IMAGENET_STD
from .images import (
    IMG_EXTENSIONS,
    exif_orientation,
    list_image_files,
    load_image,
    open_regular_file,
    oriented_size,
    skipped_message,
)

#: the splits a paired-folder dataset may store; a missing ``val``/``test`` is held out of ``train``.
SPLITS = ("train", "val", "test")


def check_index_mask(mask: np.ndarray, path: Path, num_classes: int, ignore_index: int) -> None:
    """Refuse values outside ``[0, num_classes)`` other than ``ignore_index``, naming file and values."""
    values = np.unique(mask)
    bad = [int(v) for v in values if v >= num_classes and v != ignore_index]
    if bad:
        raise InvalidDatasetError(
            f"mask {str(path)!r} holds values {bad} outside [0, {num_classes}) that are not "
            f"the ignore value {ignore_index}"
        )


def colour_to_index(rgb: np.ndarray, path: Path, palette: list[list[int]], ignore_index: int,
                    void_color: list[int] | None) -> np.ndarray:  # fmt: skip
    """Map an RGB mask [H, W, 3] to class indices through ``palette``; unknown colours are an error."""
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(palette)}
    if void_color is not None:
        table[(void_color[0] << 16) | (void_color[1] << 8) | void_color[2]] = ignore_index
    found, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(c) for c in found if int(c) not in table]
    if unknown:
        c = unknown[0]
        raise InvalidDatasetError(
            f"colour mask {str(path)!r} has colour {(c >> 16, (c >> 8) & 255, c & 255)} that is not in the "
            f"palette ({len(unknown)} unknown colour(s)); add it to data.palette or set data.void_color"
        )
    lut = np.array([table[int(c)] for c in found], dtype=np.uint8)
    return lut[inverse].reshape(codes.shape)


def image_size_of(path: Path) -> tuple[int, int] | None:
    """(H, W) the decoder will produce (EXIF orientation applied), or ``None`` when unreadable.

    The raw header size is not enough: :func:`~visionsuite.data.images.load_image` turns an
    image with orientation 5-8, so its mask must match the turned size. ``None``: skipped later.
    """
    try:
        with open_regular_file(path) as fh, Image.open(fh) as img:
            return oriented_size(img)
    except (OSError, ValueError, SyntaxError):
        return None


def image_orientation_of(path: Path) -> int:
    """The EXIF orientation of an image file (1 when there is none or it is unreadable)."""
    try:
        with open_regular_file(path) as fh, Image.open(fh) as img:
            return exif_orientation(img)
    except (OSError, ValueError, SyntaxError):
        return 1


class PairedMaskDataModule(DenseTargetDataModule):
    """Images + masks folders per split (see the module docstring); subclasses give :meth:`split_folders`."""

    #: RGB per class (index order): colour masks are decoded with it, predictions drawn with it.
    PALETTE: tuple[tuple[int, int, int], ...] = ()
    #: the colour void pixels are drawn with.
    VOID_COLOR: tuple[int, int, int] = (0, 0, 0)

    def __init__(
        self,
        palette: list[list[int]] | None = None,
        void_color: list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            palette: one ``[r, g, b]`` per class; needed for colour masks, and the colours of
                predicted masks (default: the dataset's, else a fixed generated one).
            void_color: the colour of void pixels in colour masks (mapped to ``ignore_index``).
            **kwargs: every option of :class:`DenseTargetDataModule`.
        """
        super().__init__(**kwargs)
        self._palette = [list(c) for c in palette] if palette is not None else None
        self.void_color = list(void_color) if void_color is not None else list(self.VOID_COLOR)
        self._samples: dict[str, tuple[Path, list[Sample]]] = {}
        self.predict_root: Path | None = None

    @property
    def palette(self) -> list[list[int]]:
        """One RGB per class: the config's, the dataset's, or a generated one."""
        if self._palette is not None:
            return self._palette
        if self.PALETTE:
            return [list(c) for c in self.PALETTE]
        return default_palette(self.num_classes)

    def split_folders(self) -> dict[str, tuple[Path, Path]]:
        """``{split: (images folder, masks folder)}`` for the splits stored on disk (``train`` always)."""
        raise NotImplementedError

    def cache_splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if s in self.split_folders())

    def _source_description(self) -> str:
        """The images folder(s) skipped names are relative to (the user's folders, not the cache's)."""
        folders = self.split_folders()
        return " and ".join(dict.fromkeys(str(folders[s][0]) for s in self.cache_splits()))

    # -- pairing and checks --------------------------------------------------------------------
    def samples(self, split: str) -> tuple[Path, list[Sample]]:
        if split not in self._samples:
            images_dir, masks_dir = self.split_folders()[split]
            self._samples[split] = (images_dir, [self._checked(i, m, split) for i, m in self._pairs(images_dir, masks_dir)])
        return self._samples[split]

    @staticmethod
    def _pairs(images_dir: Path, masks_dir: Path) -> list[tuple[Path, Path]]:
        for folder, what in ((images_dir, "images"), (masks_dir, "masks")):
            if not folder.is_dir():
                raise InvalidDatasetError(f"{what} folder {str(folder)!r} does not exist")
        images = list_image_files(images_dir)
        masks = {p.relative_to(masks_dir).with_suffix("").as_posix(): p for p in list_image_files(masks_dir)}
        if not images:
            raise InvalidDatasetError(f"images folder {str(images_dir)!r} holds no image files")
        pairs = []
        for image in images:
            key = image.relative_to(images_dir).with_suffix("").as_posix()
            mask = masks.pop(key, None)
            if mask is None:
                raise InvalidDatasetError(f"image {str(image)!r} has no mask {str(masks_dir / key)}.png")
            pairs.append((image, mask))
        if masks:
            extra = next(iter(masks.values()))
            raise InvalidDatasetError(f"mask {str(extra)!r} has no image in {str(images_dir)!r} ({len(masks)} such)")
        return pairs

    def _checked(self, image: Path, mask: Path, split: str) -> Sample:
        """Check one pair (sizes, values or colours); colour masks are converted to index PNGs."""
        size = image_size_of(image)
        try:
            with open_regular_file(mask) as fh, Image.open(fh) as img:
                # oriented like images are decoded (load_mask does the same), so the pair stays in register
                mode, mask_orientation = img.mode, exif_orientation(img)
                img = ImageOps.exif_transpose(img)
                mask_size = (img.height, img.width)
                pixels = np.array(img.convert("RGB") if mode in ("RGB", "RGBA") else img, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as err:
            raise InvalidDatasetError(f"mask {str(mask)!r} (of image {str(image)!r}) is unreadable: {err}") from None
        if size is None:
            return Sample(image, mask)  # unreadable image: decode_samples skips and counts it
        if size != mask_size:
            check_pair_size(image, mask, size, mask_size, (image_orientation_of(image), mask_orientation))
        if mode in ("P", "L"):
            check_index_mask(pixels, mask, self.num_classes, self.ignore_index)
            return Sample(image, mask)
        if mode not in ("RGB", "RGBA"):
            raise InvalidDatasetError(f"mask {str(mask)!r} is mode {mode}; expected an index (P/L) or colour (RGB) PNG")
        if self._palette is None and not self.PALETTE:
            raise InvalidDatasetError(f"mask {str(mask)!r} is a colour mask; give data.palette (one [r, g, b] per class)")
        index = colour_to_index(pixels, mask, self.palette, self.ignore_index, self.void_color)
        out = self.dataset_dir / "index_masks" / split / (mask.stem + ".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(index, mode="L").save(out)
        return Sample(image, out)

    # -- prediction: keep each file's geometry so masks go back to the original size -----------
    def _predict_folder_set(self) -> TensorImageDataset:
        folder, files = self._predict_files()
        self.predict_root = folder
        return self._fitted_set(files, f"predict_dir {folder}")

    def _predict_test_set(self) -> TensorImageDataset:
        """Without ``predict_dir``: the test split's files, decoded again with their geometry."""
        assert self.decoded is not None and self.test_set is not None
        which = "test" if "test" in self.decoded else "train"
        base = self.split_folders()[which][0]
        self.predict_root = base
        files = [base / self.decoded[which].files[i] for i in self.test_set.indices.tolist()]
        return self._fitted_set(files, str(base))

    def _fitted_set(self, files: list[Path], where: str) -> TensorImageDataset:
        """Decode ``files`` with the training geometry (``resize_mode``), skipping unreadable ones."""
        images, paths, skipped = [], [], []
        for f in files:
            try:
                image = torch.from_numpy(load_image(f, self.in_chans, None))
            except (OSError, ValueError):
                skipped.append(f.name)
                continue
            images.append(fit_sample(image, self.image_size, self.resize_mode).image)
            paths.append(str(f))
        if skipped:
            warnings.warn(skipped_message(skipped, where), stacklevel=3, category=DataWarning)
        if not images:
            raise InvalidDatasetError(f"{where}: none of its {len(files)} image files is readable")
        return TensorImageDataset(torch.stack(images), paths=paths)


def default_palette(n: int) -> list[list[int]]:
    """``n`` distinct colours (the PASCAL VOC bit-interleaving scheme), for data without a palette."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i + 1
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append([r, g, b])
    return out


class SegmentationFolderDataModule(PairedMaskDataModule):
    """Your own segmentation data: ``images`` + ``masks`` folders (optionally per split).

    ``val_images``/``val_masks`` and ``test_images``/``test_masks`` give official splits; a split
    without them is held out of the training folders (``val_size``/``test_size``, seeded). Masks
    are index PNGs, or colour PNGs with ``palette``. The cache sits in
    ``data_dir/segmentation_folder/<images folder name>-<fingerprint>/``, the fingerprint covering
    every file's path, size and mtime plus the palette, so editing the data rebuilds it.
    """

    dataset_name = "segmentation_folder"
    MEAN, STD = IMAGENET_MEAN, IMAGENET_STD
    IMAGE_SIZE = (256, 256)
    IN_CHANS = 3

    def __init__(
        self,
        images: str,
        masks: str,
        class_names: list[str] | int,
        val_images: str | None = None,
        val_masks: str | None = None,
        test_images: str | None = None,
        test_masks: str | None = None,
        image_size: int | tuple[int, int] = 256,
        val_size: int | float = 0.1,
        test_size: int | float = 0,
        ignore_index: int = 255,
        hflip: bool = True,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            images, masks: the training images and masks folders (masks paired by file stem).
            class_names: class names in index order, or just their number.
            val_images, val_masks, test_images, test_masks: official splits (optional).
            image_size: (H, W) the pairs are brought to (``resize_mode``, letterbox by default).
            val_size, test_size: images held out of the training folders for a missing split.
            ignore_index: mask value of void pixels (255 by default).
            **kwargs: ``palette``, ``void_color`` and every option of :class:`DenseTargetDataModule`.
        """
        super().__init__(image_size=image_size, val_size=val_size, test_size=test_size,
                         ignore_index=ignore_index, hflip=hflip, **kwargs)  # fmt: skip
        self._class_names = [f"class{i}" for i in range(class_names)] if isinstance(class_names, int) else list(class_names)
        given = {"train": (images, masks), "val": (val_images, val_masks), "test": (test_images, test_masks)}
        self._folders: dict[str, tuple[Path, Path]] = {}
        for split, (i, m) in given.items():
            if (i is None) != (m is None):
                raise InvalidDatasetError(f"give both {split}_images and {split}_masks, or neither")
            if i is not None and m is not None:
                self._folders[split] = (Path(i).expanduser(), Path(m).expanduser())
        self._fingerprint: str | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    def split_folders(self) -> dict[str, tuple[Path, Path]]:
        return dict(self._folders)

    @property
    def dataset_dir(self) -> Path:
        """``data_dir/segmentation_folder/<images folder name>-<fingerprint of files and palette>``."""
        if self._fingerprint is None:
            digest = hashlib.sha1(f"{CACHE_VERSION}|{self._palette}|{self.void_color}|{self.num_classes}".encode())
            for split, (images, masks) in sorted(self._folders.items()):
                for folder in (images, masks):
                    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS) if folder.is_dir() else []
                    for p in files:
                        st = p.lstat()
                        digest.update(f"{split}|{p.relative_to(folder).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            self._fingerprint = digest.hexdigest()[:12]
        name = self._folders["train"][0].resolve().name
        return self.data_dir / self.dataset_name / f"{name}-{self._fingerprint}"
