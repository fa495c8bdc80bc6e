"""Real Fashion-MNIST images for the generative tests, through the data module's own pipeline
(uint8 → normalised) and back to [0, 1] pixels with :func:`denormalize`, as the tasks will do. Each
test here runs seeded on one thread (``tests/conftest.py::_seed_and_one_thread``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import Tensor

from visionsuite.data import FashionMNISTDataModule
from visionsuite.models.generative import denormalize


@pytest.fixture(scope="session")
def fmnist_dm(data_root: Path, mirror: Path) -> FashionMNISTDataModule:
    dm = FashionMNISTDataModule(data_dir=str(data_root))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _pixels(dm: FashionMNISTDataModule, split: str, n: int) -> tuple[Tensor, Tensor]:
    batch = getattr(dm, f"{split}_set")[list(range(n))]  # a batch dict (data/batch.py)
    normalised = dm.transform_batch(batch, train=False)["image"]
    return denormalize(normalised, dm.mean, dm.std), batch["label"]


@pytest.fixture(scope="session")
def fmnist_train(fmnist_dm: FashionMNISTDataModule) -> tuple[Tensor, Tensor]:
    """512 training images in [0, 1], [512, 1, 28, 28], and their labels."""
    return _pixels(fmnist_dm, "train", 512)


@pytest.fixture(scope="session")
def fmnist_test(fmnist_dm: FashionMNISTDataModule) -> tuple[Tensor, Tensor]:
    """256 held-out (test split) images in [0, 1] and their labels."""
    return _pixels(fmnist_dm, "test", 256)

