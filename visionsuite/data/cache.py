"""Decoded-split cache: one ``.pt`` file per split holding uint8 images and their targets.

Decoding JPEGs (or even gzip'd idx files) every run wastes minutes; a ``torch.save``'d dict of
tensors loads in a fraction of a second, memory-mapped. Files are written atomically (temporary
file + ``os.replace``) so an interrupted decode never leaves a truncated cache behind, and read
with ``weights_only=True`` so loading a cache can never execute code.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .errors import writing

#: bump when the layout of the cached dict, or what a decoder puts in it, changes; older files are
#: then rebuilt. 3: image/mask pairs sized after their EXIF orientation (version-2 segmentation
#: caches of EXIF-rotated photos could hold misaligned pairs).
CACHE_VERSION = 3

#: the optional tensors of a split, in the order they are stored.
OPTIONAL_TENSORS = ("labels", "masks", "boxes", "box_labels", "box_offsets", "sizes")


@dataclass
class DecodedSplit:
    """A decoded split: ``images`` uint8 [N, C, H, W] plus whichever targets the data has.

    * ``labels`` int64 [N]: one class per image (classification);
    * ``masks`` uint8 [N, H, W]: one class index per pixel (segmentation);
    * ``boxes`` float32 [M, 4] (pixel xyxy in the stored image), ``box_labels`` int64 [M] and
      ``box_offsets`` int64 [N + 1]: image ``i`` owns rows ``box_offsets[i]:box_offsets[i + 1]``.
      Ragged boxes as three flat tensors, so a batch is gathered with tensor ops and the cache
      holds no Python list of tensors;
    * ``sizes`` int64 [N, 2]: each image's original (H, W) before it was resized/letterboxed;
    * ``files`` names the source file of each image, relative to the dataset root;
      ``skipped`` lists the source files that could not be decoded.
    """

    images: Tensor
    labels: Tensor | None = None
    classes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    masks: Tensor | None = None
    boxes: Tensor | None = None
    box_labels: Tensor | None = None
    box_offsets: Tensor | None = None
    sizes: Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            shape = tuple(self.images.shape)
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {shape}")
        n, (h, w) = len(self), tuple(self.images.shape[2:])
        _expect(self.labels, "labels", (n,), (torch.int64,))
        _expect(self.masks, "masks", (n, h, w), (torch.uint8,))
        _expect(self.sizes, "sizes", (n, 2), (torch.int64,))
        parts = (self.boxes, self.box_labels, self.box_offsets)
        if any(p is not None for p in parts):
            if any(p is None for p in parts):
                raise ValueError("boxes, box_labels and box_offsets go together")
            m = int(self.boxes.shape[0])  # type: ignore[union-attr]
            _expect(self.boxes, "boxes", (m, 4), (torch.float32,))
            _expect(self.box_labels, "box_labels", (m,), (torch.int64,))
            _expect(self.box_offsets, "box_offsets", (n + 1,), (torch.int64,))
            off = self.box_offsets
            assert off is not None
            if int(off[0]) != 0 or int(off[-1]) != m or bool((off[1:] < off[:-1]).any()):
                raise ValueError(f"box_offsets must rise from 0 to M={m}")


def concat_splits(first: DecodedSplit, second: DecodedSplit) -> DecodedSplit:
    """``first`` followed by ``second`` (same image size and targets), for training on train + val."""
    if first.images.shape[1:] != second.images.shape[1:]:
        raise ValueError(f"cannot join splits of shapes {tuple(first.images.shape[1:])} and {tuple(second.images.shape[1:])}")
    joined: dict[str, Tensor | None] = {}
    for key in OPTIONAL_TENSORS:
        a, b = getattr(first, key), getattr(second, key)
        if (a is None) != (b is None):
            raise ValueError(f"cannot join a split with {key} to one without")
        if a is None:
            joined[key] = None
        elif key == "box_offsets":
            joined[key] = torch.cat([a, b[1:] + a[-1]])
        else:
            joined[key] = torch.cat([a, b])
    return DecodedSplit(
        images=torch.cat([first.images, second.images]),
        classes=list(first.classes),
        files=[*first.files, *second.files],
        skipped=[*first.skipped, *second.skipped],
        **joined,  # type: ignore[arg-type]
    )


def _expect(t: Tensor | None, name: str, shape: tuple[int, ...], dtypes: tuple[torch.dtype, ...]) -> None:
    if t is not None and (tuple(t.shape) != shape or t.dtype not in dtypes):
        raise ValueError(f"{name} must be {dtypes[0]} {list(shape)}, got {t.dtype} {list(t.shape)}")


def save_split(split: DecodedSplit, path: Path) -> None:
    """Write ``split`` to ``path`` atomically; a failed write (full disk, read-only ``data_dir``)
    leaves no temporary file and raises one :class:`DataWriteError` line naming ``path``."""
    payload = {
        "version": CACHE_VERSION,
        "images": split.images.contiguous(),
        **{k: getattr(split, k).contiguous() for k in OPTIONAL_TENSORS if getattr(split, k) is not None},
        "classes": list(split.classes),
        "files": list(split.files),
        "skipped": list(split.skipped),
    }
    with writing(path, "the dataset cache"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(payload, fh)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; caches are meant to be shared
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def is_valid_cache(path: Path) -> bool:
    """Whether ``path`` is a readable cache of the current version."""
    if not path.is_file():
        return False
    try:
        return torch.load(path, weights_only=True, mmap=True).get("version") == CACHE_VERSION
    except Exception:  # noqa: BLE001 - any unreadable file is simply rebuilt
        return False


def load_split(path: Path) -> DecodedSplit:
    """Read a cache written by :func:`save_split` (memory-mapped, so it is fast and cheap)."""
    data = torch.load(path, weights_only=True, mmap=True)
    return DecodedSplit(
        images=data["images"],
        **{k: data[k] for k in OPTIONAL_TENSORS if k in data},
        classes=list(data["classes"]),
        files=list(data.get("files", [])),
        skipped=list(data.get("skipped", [])),
    )
