"""Real CamVid frames from the mirror, shrunk for CPU tests; seeding and one thread per test."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

#: test-split frames from three different drives (sky, road, cars, pedestrians, poles all present).
FRAMES = ("0001TP_008550", "0001TP_010320", "Seq05VD_f01710")
NUM_CLASSES, VOID = 11, 11
SIZE = (60, 80)  # 360x480 divided by 6: not a multiple of 32, like CamVid itself


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; tiny tensors gain nothing from more
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def camvid_files(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    """(image.jpg, mask.png) of :data:`FRAMES`, extracted from the mirror's tar (safe 'data' filter)."""
    out = tmp_path_factory.mktemp("camvid")
    wanted = {f"CamVid/{d}/{f}.{ext}" for f in FRAMES for d, ext in (("test", "jpg"), ("testannot", "png"))}
    with tarfile.open(mirror / "camvid" / "camvid.tar.gz") as tar:
        members = [m for m in tar if m.name in wanted]
        tar.extractall(out, members=members, filter="data")
    return [(out / f"CamVid/test/{f}.jpg", out / f"CamVid/testannot/{f}.png") for f in FRAMES]


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
