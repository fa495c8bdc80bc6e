"""Fashion-MNIST from the mirror: sizes, cache, splits, loaders, on-device transforms."""

from __future__ import annotations

import time
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from visionsuite.data import FashionMNISTDataModule
from visionsuite.data.cache import load_split


@pytest.fixture(scope="module")
def fmnist(data_root, mirror) -> FashionMNISTDataModule:
    dm = FashionMNISTDataModule(data_dir=str(data_root))
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_sizes_dtype_labels(fmnist: FashionMNISTDataModule) -> None:
    assert (len(fmnist.train_set), len(fmnist.val_set), len(fmnist.test_set)) == (55_000, 5_000, 10_000)
    for ds in (fmnist.train_set, fmnist.test_set):
        images, labels = ds[list(range(len(ds)))]
        assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28)
        assert labels.dtype == torch.int64 and set(labels.unique().tolist()) == set(range(10))
    assert fmnist.num_classes == 10
    assert (fmnist.class_names[0], fmnist.class_names[9]) == ("T-shirt/top", "Ankle boot")
    assert (fmnist.in_chans, fmnist.image_size) == (1, (28, 28))


def test_attributes_before_setup() -> None:
    dm = FashionMNISTDataModule(data_dir="/nonexistent")
    assert (dm.num_classes, dm.in_chans, dm.image_size, len(dm.mean), len(dm.std)) == (10, 1, (28, 28), 1, 1)


def test_cache_round_trips_and_second_setup_is_fast(fmnist: FashionMNISTDataModule, data_root, monkeypatch) -> None:
    path = fmnist.cache_path("train")
    assert path == data_root / "fashion_mnist" / "cache" / "train.pt"
    a, b = load_split(path), load_split(path)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.classes == b.classes
    assert torch.load(path, weights_only=True)["images"].shape == (60_000, 1, 28, 28)

    def no_decode(self, splits):  # a second setup must come from the cache only
        raise AssertionError(f"re-decoded {splits}")

    monkeypatch.setattr(FashionMNISTDataModule, "_decode", no_decode)
    again = FashionMNISTDataModule(data_dir=str(data_root))
    start = time.perf_counter()
    again.prepare_data()
    again.setup("fit")
    assert time.perf_counter() - start < 2.0
    assert torch.equal(again.train_set[[0, 1, 2]][0], fmnist.train_set[[0, 1, 2]][0])


def test_splits_disjoint_deterministic_and_seeded(fmnist: FashionMNISTDataModule, data_root) -> None:
    train, val = set(fmnist.train_set.indices.tolist()), set(fmnist.val_set.indices.tolist())
    assert not train & val and len(train | val) == 60_000
    same = FashionMNISTDataModule(data_dir=str(data_root), seed=42)
    same.setup("fit")
    assert torch.equal(same.val_set.indices, fmnist.val_set.indices)
    other = FashionMNISTDataModule(data_dir=str(data_root), seed=7)
    other.setup("fit")
    assert not torch.equal(other.val_set.indices, fmnist.val_set.indices)
    frac = FashionMNISTDataModule(
        data_dir=str(data_root), val_size=0.2, train_subset=1000, val_subset=100, test_subset=50
    )
    frac.setup("fit")
    assert (len(frac.train_set), len(frac.val_set), len(frac.test_set)) == (1000, 100, 50)
    full = FashionMNISTDataModule(data_dir=str(data_root), val_size=0.2)
    full.setup("fit")
    assert torch.equal(frac.train_set.indices, full.train_set.indices[:1000])  # subset = first N


def test_loader_yields_uint8_batches_and_normalises_on_transfer(fmnist: FashionMNISTDataModule) -> None:
    batch = next(iter(fmnist.train_dataloader()))
    images, labels = batch
    assert images.dtype == torch.uint8 and images.shape == (128, 1, 28, 28) and labels.shape == (128,)
    out = fmnist.on_after_batch_transfer(batch, 0)  # trainer is None → eval transform
    x, y = out["image"], out["label"]
    assert x.dtype == torch.float32 and y is labels
    assert torch.allclose(x, (images.float() / 255 - 0.2860) / 0.3530)
    big = next(iter(DataLoader(fmnist.train_set, batch_size=None, sampler=[list(range(4096))])))
    z = fmnist.on_after_batch_transfer(big, 0)["image"]
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05
    assert len(fmnist.val_dataloader()) == 5_000 // 128 + 1


def test_predict_without_predict_dir_uses_the_test_split(data_root, mirror) -> None:
    dm = FashionMNISTDataModule(data_dir=str(data_root), test_subset=300, eval_batch_size=256)
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    images, names = batches[0]
    assert images.shape == (256, 1, 28, 28) and names[:2] == ["test/0", "test/1"]
    assert sum(len(n) for _, n in batches) == 300


def test_augments_only_while_training(data_root, mirror) -> None:
    dm = FashionMNISTDataModule(data_dir=str(data_root), crop_padding=4, hflip=True, train_subset=256)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    eval_x = dm.transform_batch(batch[0], train=False)
    dm.trainer = SimpleNamespace(training=False)
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)["image"], eval_x)
    dm.trainer = SimpleNamespace(training=True)
    assert not torch.equal(dm.on_after_batch_transfer(batch, 0)["image"], eval_x)
    no_aug = FashionMNISTDataModule(data_dir=str(data_root), crop_padding=4, hflip=True, augment=False)
    no_aug.trainer = SimpleNamespace(training=True)
    assert torch.equal(no_aug.on_after_batch_transfer(batch, 0)["image"], eval_x)


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))

    def training_step(self, batch, _):
        x, y = batch["image"], batch["label"]
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, _):
        x = batch["image"]
        assert x.dtype == torch.float32

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_calls_the_hook_with_the_right_mode(data_root, mirror, tmp_path) -> None:
    dm = FashionMNISTDataModule(
        data_dir=str(data_root), batch_size=32, crop_padding=2, train_subset=64, val_subset=32
    )
    modes: list[bool] = []
    original = dm.transform_batch
    dm.transform_batch = lambda images, train: (modes.append(train), original(images, train))[1]
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(_Tiny(), datamodule=dm)
    assert modes.count(True) == 2  # two training batches, augmented
    assert modes.count(False) >= 1  # sanity check + validation, not augmented


class _PerSamplePIL(Dataset):
    """The usual torchvision-style pipeline this layer replaces: PIL image + ToTensor per sample."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images[:, 0].numpy(), labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]
        return (x - 0.2860) / 0.3530, self.labels[i]


@pytest.fixture
def one_thread():
    """Compare both pipelines single-threaded: on a busy shared CPU, OpenMP threads of small
    tensor ops spin against other processes and make timings meaningless."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_batch_loading_is_far_faster_than_per_sample_pil(fmnist: FashionMNISTDataModule, one_thread) -> None:
    n = 4096
    images, labels = fmnist.train_set[list(range(n))]
    per_sample = DataLoader(_PerSamplePIL(images, labels), batch_size=128)
    start = time.perf_counter()
    for _ in per_sample:
        pass
    slow = time.perf_counter() - start
    dm_loader = fmnist.train_dataloader()
    start = time.perf_counter()
    seen = 0
    for batch in dm_loader:
        fmnist.on_after_batch_transfer(batch, 0)
        seen += len(batch[1])
        if seen >= n:
            break
    fast = time.perf_counter() - start
    print(f"per-sample PIL: {n / slow:,.0f} img/s, batched uint8: {seen / fast:,.0f} img/s")
    assert fast * 5 < slow


def test_loader_with_worker_processes(data_root, mirror) -> None:
    dm = FashionMNISTDataModule(data_dir=str(data_root), num_workers=1, batch_size=100, train_subset=300)
    batches = list(dm.train_dataloader())
    assert [len(b[1]) for b in batches] == [100, 100, 100]
    assert all(b[0].dtype == torch.uint8 for b in batches)
