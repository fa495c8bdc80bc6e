"""Data modules whose images carry a mask and/or boxes (segmentation, detection).

A subclass lists its samples (:class:`Sample`: image file, optional mask file, optional boxes)
per split in :meth:`DenseTargetDataModule.samples` and sets its constants (``CLASSES``,
``MEAN``/``STD``, ``IMAGE_SIZE``, ``IGNORE_INDEX``); decoding, caching, splits, loaders and
the joint on-device augmentation are inherited. Every sample is brought to ``image_size`` by
the one geometry function (:func:`~visionsuite.data.geometry.fit_sample`), so image, mask and
boxes stay in register, and each image's original size is kept in the cache.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from visionsuite.errors import DataWarning

from . import augment as aug
from .base import TensorClassificationDataModule
from .batch import Batch
from .cache import DecodedSplit
from .errors import DataError, InvalidDatasetError
from .geometry import RESIZE_MODES, ResizeMode, fit_sample
from .images import SWAPPING_ORIENTATIONS, load_image, skipped_message


@dataclass
class Sample:
    """One image file with its targets: a mask file (class index per pixel) and/or boxes.

    ``boxes`` float [M, 4] pixel xyxy in the source image, ``box_labels`` int64 [M].
    """

    image: Path
    mask: Path | None = None
    boxes: Tensor | None = None
    box_labels: Tensor | None = None


def load_mask(path: str | Path) -> Tensor:
    """A label map as uint8 [H, W] of raw class indices (palette indices for ``P`` images).

    Never converted through RGB: a palette or grayscale PNG already stores the class index.
    An EXIF orientation is applied, as :func:`~visionsuite.data.images.load_image` applies it
    to images, so a mask is read the way its image is (a transpose moves pixels, never mixes them).
    """
    with Image.open(path) as img:
        if img.mode not in ("P", "L"):
            raise InvalidDatasetError(f"mask {str(path)!r} is mode {img.mode}; expected one class index per pixel (P or L)")
        return torch.from_numpy(np.array(ImageOps.exif_transpose(img), dtype=np.uint8))


def check_pair_size(
    image: Path, mask: Path, image_size: tuple[int, int], mask_size: tuple[int, int], orientations: tuple[int, int] = (1, 1)
) -> None:
    """Refuse an image and mask of different (H, W), naming both: they cannot be in register.

    Sizes are those after EXIF orientation (what the decoder produces); ``orientations`` (image,
    mask) are named in the message when one of them turns the file, since the raw sizes may agree.
    """
    if tuple(image_size) == tuple(mask_size):
        return
    turned = [f"{what} has EXIF orientation {o}" for what, o in zip(("the image", "the mask"), orientations)
              if o in SWAPPING_ORIENTATIONS]  # fmt: skip
    note = f" once oriented ({', '.join(turned)})" if turned else ""
    raise InvalidDatasetError(
        f"image {str(image)!r} is {image_size[1]}x{image_size[0]} but its mask {str(mask)!r} is "
        f"{mask_size[1]}x{mask_size[0]}{note}"
    )


def decode_samples(
    samples: Sequence[Sample],
    base: Path,
    channels: int,
    size: tuple[int, int],
    mode: ResizeMode,
    ignore_index: int,
    classes: Sequence[str],
) -> tuple[DecodedSplit, int]:
    """Decode and fit ``samples`` into a split; return it and the number of boxes dropped.

    Unreadable samples are skipped (listed in ``skipped``, relative to ``base``).
    """
    n = len(samples)
    images = torch.empty((n, channels, *size), dtype=torch.uint8)
    has_mask = any(s.mask is not None for s in samples)
    has_boxes = any(s.boxes is not None for s in samples)
    masks = torch.empty((n, *size), dtype=torch.uint8) if has_mask else None
    boxes: list[Tensor] = []
    box_labels: list[Tensor] = []
    counts: list[int] = []
    sizes: list[tuple[int, int]] = []
    files: list[str] = []
    skipped: list[str] = []
    dropped = row = 0
    for sample in samples:
        try:
            image = torch.from_numpy(load_image(sample.image, channels, None))
            mask = load_mask(sample.mask) if sample.mask is not None else None
        except (OSError, ValueError, InvalidDatasetError):
            skipped.append(sample.image.relative_to(base).as_posix())
            continue
        if mask is not None and sample.mask is not None:  # never cache a pair out of register
            check_pair_size(sample.image, sample.mask, tuple(image.shape[-2:]), tuple(mask.shape))
        fitted = fit_sample(
            image, size, mode, mask=mask, boxes=sample.boxes if has_boxes else None,
            box_labels=sample.box_labels, mask_fill=ignore_index,
        )  # fmt: skip
        images[row] = fitted.image
        if masks is not None:
            masks[row] = fitted.mask if fitted.mask is not None else ignore_index
        if has_boxes:
            got = fitted.boxes if fitted.boxes is not None else torch.zeros(0, 4)
            boxes.append(got)
            box_labels.append(fitted.box_labels if fitted.box_labels is not None else torch.zeros(0, dtype=torch.int64))
            counts.append(len(got))
            dropped += fitted.dropped_boxes
        sizes.append(tuple(image.shape[-2:]))
        files.append(sample.image.relative_to(base).as_posix())
        row += 1
    parts: dict[str, Any] = {}
    if has_boxes:
        parts["boxes"] = torch.cat(boxes).float() if boxes else torch.zeros(0, 4)
        parts["box_labels"] = torch.cat(box_labels).long() if box_labels else torch.zeros(0, dtype=torch.int64)
        parts["box_offsets"] = torch.tensor([0, *np.cumsum(counts).tolist()], dtype=torch.int64)
    split = DecodedSplit(
        images=images[:row].clone() if row < n else images,
        masks=(masks[:row].clone() if row < n else masks) if masks is not None else None,
        sizes=torch.tensor(sizes, dtype=torch.int64).reshape(-1, 2),
        classes=list(classes),
        files=files,
        skipped=skipped,
        **parts,
    )
    return split, dropped


class DenseTargetDataModule(TensorClassificationDataModule):
    """Base class of data modules with masks and/or boxes (see the module docstring).

    Subclasses implement :meth:`samples` (and fetching); ``_decode`` is provided.
    """

    RESIZABLE = True

    def __init__(
        self,
        ignore_index: int | None = None,
        scale_range: tuple[float, float] | None = None,
        resize_mode: ResizeMode = "letterbox",
        train_window: int | tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            ignore_index: mask value of void pixels (ignored by losses and metrics, and what
                letterboxing and augmentation pad masks with); default the dataset's.
            scale_range: training zoom range about the image centre, e.g. ``[0.75, 1.25]``.
            resize_mode: ``letterbox`` (fit inside, pad), ``crop`` (cover, centre crop) or
                ``stretch``, applied to every image with its mask and boxes when decoding.
            train_window: (H, W), or one size for both: train on a random window of this size
                of each augmented ``image_size`` image (its mask and boxes alike); validation,
                test and predict see whole images. ``None``: whole images.
            **kwargs: every option of :class:`TensorClassificationDataModule`.
        """
        super().__init__(**kwargs)
        self.train_window: tuple[int, int] | None = None
        if train_window is not None:
            size = [train_window] * 2 if isinstance(train_window, int) else list(train_window)
            if len(size) != 2:
                raise InvalidDatasetError(f"train_window must be one size or [H, W], got {train_window}")
            h, w = int(size[0]), int(size[1])
            if not (0 < h <= self.image_size[0] and 0 < w <= self.image_size[1]):
                raise InvalidDatasetError(f"train_window {h}x{w} must fit inside image_size {self.image_size}")
            self.train_window = (h, w)
        self.ignore_index = self.IGNORE_INDEX if ignore_index is None else ignore_index
        if not 0 <= self.ignore_index <= 255:
            raise InvalidDatasetError(f"ignore_index must be in 0..255 (masks are cached as uint8), got {ignore_index}")
        if resize_mode not in RESIZE_MODES:
            raise InvalidDatasetError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}, got {resize_mode!r}")
        self.scale_range = tuple(scale_range) if scale_range is not None else None  # type: ignore[assignment]
        self.resize_mode: ResizeMode = resize_mode

    def transform_batch(self, batch: Batch, train: bool) -> Batch:
        """The base transform, then (training only) the random ``train_window``."""
        out = super().transform_batch(batch, train)
        if train and self.train_window is not None:
            out = aug.random_window(out, self.train_window)
        return out

    def augmentation_summary(self) -> str:
        line = super().augmentation_summary()
        if self.train_window is None:
            return line
        head, rest = line.split(": ", 1)
        ops, norm = rest.split("; ", 1)
        window = f"random {self.train_window[0]}x{self.train_window[1]} window"
        return f"{head}: {window if ops == 'none' else f'{ops}, {window}'}; {norm}"

    @property
    def cache_dir(self) -> Path:
        """One cache per decoding setting (size, resize mode, channels, ignore value)."""
        (h, w), c = self.image_size, self.in_chans
        return self.dataset_dir / f"cache-{h}x{w}-{self.resize_mode}-c{c}-ignore{self.ignore_index}"

    def samples(self, split: str) -> tuple[Path, list[Sample]]:
        """The folder that file names are relative to, and the samples of ``split``."""
        raise NotImplementedError

    def _source_description(self) -> str:
        """The folder(s) skipped file names are relative to: the user's files, not the cache folder."""
        try:
            bases = dict.fromkeys(str(self.samples(s)[0]) for s in self.cache_splits())
        except (NotImplementedError, DataError):
            return super()._source_description()
        return " and ".join(bases)

    def _decode(self, splits: list[str]) -> dict[str, DecodedSplit]:
        out = {}
        for split in splits:
            base, samples = self.samples(split)
            decoded, dropped = decode_samples(
                samples, base, self.in_chans, self.image_size, self.resize_mode, self.ignore_index, self.class_names
            )
            if dropped:
                warnings.warn(
                    f"{split}: dropped {dropped} box(es) left without area by resizing to {self.image_size}",
                    stacklevel=2, category=DataWarning)
            if decoded.skipped and not len(decoded):
                raise InvalidDatasetError(skipped_message(decoded.skipped, str(base)))
            out[split] = decoded
        return out
