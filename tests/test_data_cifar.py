"""CIFAR-10 from the mirror's JPEG archive, and the canonical pickle format's conversion."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from visionsuite.data import CIFAR10DataModule

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def cifar(data_root, cifar_tree) -> CIFAR10DataModule:
    dm = CIFAR10DataModule(data_dir=str(data_root))
    dm.prepare_data()  # first run: extract + decode 60k JPEGs (cached under data/cifar10/cache)
    dm.setup("fit")
    return dm


def test_split_sizes_and_classes(cifar: CIFAR10DataModule) -> None:
    assert (len(cifar.train_set), len(cifar.val_set), len(cifar.test_set)) == (40_000, 10_000, 10_000)
    assert cifar.class_names == CLASSES and cifar.num_classes == 10
    assert (cifar.in_chans, cifar.image_size, cifar.crop_padding, cifar.hflip) == (3, (32, 32), 4, True)
    batch = cifar.test_set[list(range(20))]
    images, labels = batch["image"], batch["label"]
    assert images.dtype == torch.uint8 and images.shape == (20, 3, 32, 32)
    assert labels.tolist() == list(range(10)) * 2  # classes interleaved: first N is balanced
    assert torch.bincount(cifar.test_set.labels).tolist() == [1000] * 10


def test_decoded_image_equals_pil_decoding(cifar: CIFAR10DataModule, cifar_tree) -> None:
    test = cifar.decoded["test"]
    for i in (0, 3, 4567, 9999):
        rel = test.files[i]
        expected = np.asarray(Image.open(cifar_tree / rel).convert("RGB")).transpose(2, 0, 1)
        assert torch.equal(test.images[i], torch.from_numpy(expected.copy()))
        assert CLASSES[int(test.labels[i])] == rel.split("/")[1]


def test_augmented_batch_shapes(cifar: CIFAR10DataModule) -> None:
    batch = next(iter(cifar.train_dataloader()))
    x = cifar.transform_batch(batch, train=True)["image"]
    assert x.shape == (128, 3, 32, 32) and x.dtype == torch.float32
    z = cifar.transform_batch(cifar.train_set[list(range(2000))], train=False)["image"]
    assert z.mean((0, 2, 3)).abs().max() < 0.1


def test_canonical_pickles_convert_to_the_same_cache(tmp_path, cifar_tree, monkeypatch) -> None:
    """The download path's format: ``data_batch_1..5`` / ``test_batch`` dicts of planar RGB rows."""
    monkeypatch.setenv("VISIONSUITE_MIRROR", str(tmp_path / "no-mirror"))
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    real = np.asarray(Image.open(cifar_tree / "test" / "cat" / "0000.jpg").convert("RGB"))
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 3)]:
        rows = np.stack([real.transpose(2, 0, 1).reshape(-1)] * n)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rows, b"labels": [3] * n}, fh)
    dm = CIFAR10DataModule(data_dir=str(tmp_path / "data"), val_size=5)
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (15, 5, 3)
    batch = dm.test_set[[0, 1, 2]]
    images, labels = batch["image"], batch["label"]
    assert torch.equal(images[0], torch.from_numpy(real.transpose(2, 0, 1).copy())) and labels.tolist() == [3, 3, 3]
