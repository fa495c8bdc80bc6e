"""Image files → uint8 tensors: folder scanning, one decoding recipe, a parallel decoder.

Training caches and ``predict_dir`` images go through the same :func:`load_image`, so a
prediction sees exactly the pixels a training image of the same file would have: converted to
``L`` (1 channel) or ``RGB`` (3 channels), EXIF orientation applied, and, when the size
differs, resized keeping the aspect ratio and centre-cropped to ``(H, W)`` (by
:func:`~visionsuite.data.geometry.fit_sample`, the one geometry function of the data layer).

Unreadable files (truncated, not an image despite the extension) are *skipped*, not fatal: a
scraped folder with a few broken files should still train. Callers report the count.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps
from torch import Tensor
from tqdm.auto import tqdm

from visionsuite.core.console import interactive

from .cache import DecodedSplit
from .errors import DatasetNotFoundError, InvalidDatasetError
from .geometry import fit_sample

#: file extensions treated as images (torchvision's list).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
#: below this many files decoding stays in-process (a pool costs more than it saves).
POOL_MIN_FILES = 2000


def load_image(path: str | Path, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """Decode one file to a uint8 array [C, H, W] with ``channels`` (1 or 3) and ``size`` (H, W).

    ``size=None`` keeps the file's size (callers that move targets along use :func:`fit_sample`).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    with open_regular_file(path) as fh, Image.open(fh) as img:
        img = ImageOps.exif_transpose(img)
        img = to_mode(img, "L" if channels == 1 else "RGB")
        arr = np.array(img, dtype=np.uint8)  # a writable copy (asarray is read-only)
    chw = arr[None] if channels == 1 else np.ascontiguousarray(arr.transpose(2, 0, 1))
    if size is not None and chw.shape[1:] != tuple(size):
        chw = fit_sample(torch.from_numpy(chw), size, "crop").image.numpy()
    return chw


#: EXIF orientations that :func:`~PIL.ImageOps.exif_transpose` turns by 90 degrees (width and height swap).
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation :func:`load_image` applies to ``img`` (1, none, for a missing or odd tag).

    Read the way :func:`~PIL.ImageOps.exif_transpose` reads it, so a size check that uses it
    agrees with the decoder (JPEG: from the header alone; PNG: Pillow may read the file for it).
    """
    value = img.getexif().get(ExifTags.Base.Orientation, 1)
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """(H, W) of ``img`` once its EXIF orientation is applied: the size :func:`load_image` decodes to."""
    if exif_orientation(img) in SWAPPING_ORIENTATIONS:
        return img.width, img.height
    return img.height, img.width


def open_regular_file(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading, refusing anything but a regular file.

    A FIFO named ``x.jpg`` would block a plain ``open`` for ever (until some writer appears);
    opening non-blocking and checking the opened file itself cannot hang and cannot be raced.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


#: modes holding more than 8 bits per pixel: Pillow's own conversion *clips* them to 255.
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_mode(img: Image.Image, mode: str) -> Image.Image:
    """``img.convert(mode)``, except that 16-bit grayscale is *scaled* to 8 bits (x / 257).

    Pillow opens a 16-bit grayscale PNG/TIFF as ``I;16`` and converts it by clipping, which
    turns most of the image white. (Pillow reads 16-bit RGB and gray+alpha files as 8-bit
    ``RGB``/``RGBA`` itself; 32-bit ``I`` images are taken as 16-bit, which is what Pillow
    produced for 16-bit PNGs before ``I;16``.)
    """
    if img.mode in _WIDE_GRAY_MODES:
        wide = np.asarray(img).astype(np.int64)
        img = Image.fromarray(((np.clip(wide, 0, 65535) + 128) // 257).astype(np.uint8), mode="L")
    return img if img.mode == mode else img.convert(mode)


def _decode_or_none(job: tuple[str, int, tuple[int, int]]) -> np.ndarray | None:
    try:
        return load_image(*job)
    except Exception:  # noqa: BLE001 - any unreadable file is skipped and reported by the caller
        return None


def _workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def decode_images(
    paths: Sequence[str | Path], channels: int, size: tuple[int, int], desc: str = "decoding"
) -> tuple[Tensor, list[int]]:
    """Decode ``paths`` into one uint8 tensor [M, C, H, W]; also return the indices that failed.

    Large lists are decoded by a process pool (PIL releases little of the GIL) behind a tqdm bar
    (in a terminal only);
    results come back in order, so row ``i`` of the output is the ``i``-th readable path.
    """
    jobs = [(str(p), channels, tuple(size)) for p in paths]
    out = torch.empty((len(jobs), channels, *size), dtype=torch.uint8)
    failed: list[int] = []
    workers = _workers()
    use_pool = workers > 1 and len(jobs) >= POOL_MIN_FILES
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = multiprocessing.get_context(method).Pool(workers) if use_pool else None
    try:
        results = pool.imap(_decode_or_none, jobs, chunksize=64) if pool else map(_decode_or_none, jobs)
        row = 0
        bar = tqdm(results, total=len(jobs), desc=desc, unit="img", leave=False, disable=not interactive(sys.stderr))
        for i, arr in enumerate(bar):  # a bar in a terminal only: a file gets the caller's one line
            if arr is None:
                failed.append(i)
                continue
            out[row] = torch.from_numpy(arr)
            row += 1
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    # clone so a shorter result does not drag the full-size storage into torch.save
    return (out[:row].clone() if failed else out), failed


def list_image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, sorted; hidden files and folders are ignored.

    Symlinked sub-folders are not followed: a link back up the tree would list every image
    again at each level (and copies would leak across train/val/test). ``folder`` itself and
    symlinked files are used.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):  # symlinked sub-folders are not entered
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def subfolders(root: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``root``."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def class_folders(root: Path) -> list[str]:
    """Class names = the sorted sub-folder names of ``root`` (no file is opened: cheap).

    Raises one-line errors for a missing ``root`` and for fewer than two classes.
    """
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {str(root)!r} does not exist (or is not a folder)")
    classes = subfolders(root)
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise InvalidDatasetError(
            f"image folder {str(root)!r} needs one sub-folder per class and at least two classes; found {found}"
        )
    return classes


def scan_class_folders(root: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """``(file, label)`` for every image under ``root/<class>/``, classes interleaved.

    The order is round-robin over classes (1st of each class, then 2nd of each, …) so that
    "the first N" of a split is class-balanced. A class folder without images is an error
    naming the class; a class folder missing from ``root`` is fine (e.g. a small test folder).
    """
    per_class: list[list[Path]] = []
    for name in classes:
        folder = root / name
        files = list_image_files(folder) if folder.is_dir() else []
        if folder.is_dir() and not files:
            raise InvalidDatasetError(
                f"class folder {name!r} in {str(root)!r} holds no image files ({', '.join(IMG_EXTENSIONS)})"
            )
        per_class.append(files)
    unknown = sorted(set(subfolders(root)) - set(classes))
    if unknown:
        raise InvalidDatasetError(
            f"{str(root)!r} has class folder(s) {unknown} that the training folder does not have"
        )
    longest = max((len(f) for f in per_class), default=0)
    return [(files[i], label) for i in range(longest) for label, files in enumerate(per_class) if i < len(files)]


def skipped_message(files: Sequence[str], where: str, shown: int = 3) -> str:
    """One line: how many files were skipped under ``where`` and the first few names."""
    first = ", ".join(str(f) for f in files[:shown])
    more = f" (+{len(files) - shown} more)" if len(files) > shown else ""
    return f"skipped {len(files)} unreadable image file(s) under {where}: {first}{more}"


def decode_labelled(
    items: Sequence[tuple[Path, int]],
    base: Path,
    classes: Sequence[str],
    channels: int,
    size: tuple[int, int],
    desc: str,
) -> DecodedSplit:
    """Decode ``(file, label)`` pairs into a split; unreadable files go to ``skipped``.

    ``files`` and ``skipped`` are stored relative to ``base`` (POSIX separators).
    """
    images, failed = decode_images([f for f, _ in items], channels, size, desc=desc)
    bad = set(failed)
    kept = [item for i, item in enumerate(items) if i not in bad]
    return DecodedSplit(
        images=images,
        labels=torch.tensor([label for _, label in kept], dtype=torch.int64),
        classes=list(classes),
        files=[f.relative_to(base).as_posix() for f, _ in kept],
        skipped=[items[i][0].relative_to(base).as_posix() for i in failed],
    )
