"""Decoded-split cache: one ``.pt`` file per split holding uint8 images and int64 labels.

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

#: bump when the layout of the cached dict changes; older files are then rebuilt.
CACHE_VERSION = 1


@dataclass
class DecodedSplit:
    """A decoded split: ``images`` uint8 [N, C, H, W], ``labels`` int64 [N], class names.

    ``files`` (optional) names the source file of each image, relative to the dataset root;
    ``skipped`` lists the source files that could not be decoded.
    """

    images: Tensor
    labels: Tensor
    classes: list[str]
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            shape = tuple(self.images.shape)
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be [N={self.images.shape[0]}], got {tuple(self.labels.shape)}")


def save_split(split: DecodedSplit, path: Path) -> None:
    """Write ``split`` to ``path`` atomically; a failed write (full disk, read-only ``data_dir``)
    leaves no temporary file and raises one :class:`DataWriteError` line naming ``path``."""
    payload = {
        "version": CACHE_VERSION,
        "images": split.images.contiguous(),
        "labels": split.labels.to(torch.int64).contiguous(),
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
        labels=data["labels"],
        classes=list(data["classes"]),
        files=list(data.get("files", [])),
        skipped=list(data.get("skipped", [])),
    )
