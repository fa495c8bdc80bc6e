"""A tiny CamVid tree (``<root>/camvid/CamVid/{split}{,annot}/``) from real mirror frames, laid out
where :class:`~visionsuite.data.CamVidDataModule` looks first, so the real module runs on it."""

from __future__ import annotations

import shutil
from pathlib import Path


def make_tiny_camvid(root: Path, files: list[tuple[Path, Path]]) -> Path:
    """The same ``files`` (image.jpg, mask.png) as train, val and test; returns ``root`` (a data_dir)."""
    tree = root / "camvid" / "CamVid"
    for split in ("train", "val", "test"):
        (tree / split).mkdir(parents=True, exist_ok=True)
        (tree / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for image, mask in files:
            shutil.copy(image, tree / split / image.name)
            shutil.copy(mask, tree / f"{split}annot" / mask.name)
    return root
