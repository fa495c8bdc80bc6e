"""Real CamVid frames from the mirror (``camvid_files``, ``tiny_camvid_root``: ``tests/conftest.py``), shrunk
for CPU tests; each test here runs seeded on one thread (``tests/conftest.py::_seed_and_one_thread``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

NUM_CLASSES, VOID = 11, 11
SIZE = (60, 80)  # 360x480 divided by 6: not a multiple of 32, like CamVid itself


@pytest.fixture(scope="session")
def camvid(camvid_files: list[tuple[Path, Path]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images float [3, 3, 60, 80] (normalised with mean = std = 0.5) and masks int64 [3, 60, 80] (void 11)."""
    h, w = SIZE
    images, masks = [], []
    for image_path, mask_path in camvid_files:
        image = Image.open(image_path).convert("RGB").resize((w, h), Image.Resampling.BILINEAR)
        mask = Image.open(mask_path).resize((w, h), Image.Resampling.NEAREST)
        images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
        masks.append(torch.from_numpy(np.asarray(mask).astype(np.int64)))
    x = (torch.stack(images).float() / 255 - 0.5) / 0.5
    y = torch.stack(masks)
    assert y.max() <= VOID and (y == VOID).any(), "the CamVid masks should hold classes 0-10 and void 11"
    return x, y
