"""Fashion-MNIST from the mirror: sizes, cache, splits, loaders, on-device transforms."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

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
        batch = ds[list(range(len(ds)))]
        images, labels = batch["image"], batch["label"]
        assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 28)
        assert labels.dtype == torch.int64 and set(labels.unique().tolist()) == set(range(10))
    assert fmnist.num_classes == 10
    assert (fmnist.class_names[0], fmnist.class_names[9]) == ("T-shirt/top", "Ankle boot")
    assert (fmnist.in_chans, fmnist.image_size) == (1, (28, 28))


def test_attributes_before_setup() -> None:
    dm = FashionMNISTDataModule(data_dir="/nonexistent")
    assert (dm.num_classes, dm.in_chans, dm.image_size, len(dm.mean), len(dm.std)) == (10, 1, (28, 28), 1, 1)


def test_cache_round_trips_and_second_setup_reads_only_the_cache(fmnist: FashionMNISTDataModule, data_root, monkeypatch) -> None:
    path = fmnist.cache_path("train")
    assert path == data_root / "fashion_mnist" / "cache" / "train.pt"
    a, b = load_split(path), load_split(path)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.classes == b.classes
    assert torch.load(path, weights_only=True)["images"].shape == (60_000, 1, 28, 28)

    def no_decode(self, splits):  # a second setup must come from the cache only
        raise AssertionError(f"re-decoded {splits}")

    monkeypatch.setattr(FashionMNISTDataModule, "_decode", no_decode)
    again = FashionMNISTDataModule(data_dir=str(data_root))
    again.prepare_data()
    again.setup("fit")
    assert torch.equal(again.train_set[[0, 1, 2]]["image"], fmnist.train_set[[0, 1, 2]]["image"])


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
    assert set(batch) == {"image", "label"}
    images, labels = batch["image"], batch["label"]
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
    assert set(batches[0]) == {"image", "path"}
    images, names = batches[0]["image"], batches[0]["path"]
    assert images.shape == (256, 1, 28, 28) and names[:2] == ["test/0", "test/1"]
    assert sum(len(b["path"]) for b in batches) == 300


def test_augments_only_while_training(data_root, mirror) -> None:
    dm = FashionMNISTDataModule(data_dir=str(data_root), crop_padding=4, hflip=True, train_subset=256)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    eval_x = dm.transform_batch(batch, train=False)["image"]
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
    dm.transform_batch = lambda batch, train: (modes.append(train), original(batch, train))[1]
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(_Tiny(), datamodule=dm)
    assert modes.count(True) == 2  # two training batches, augmented
    assert modes.count(False) >= 1  # sanity check + validation, not augmented


def test_loader_with_worker_processes(data_root, mirror) -> None:
    dm = FashionMNISTDataModule(data_dir=str(data_root), num_workers=1, batch_size=100, train_subset=300)
    batches = list(dm.train_dataloader())
    assert [len(b["label"]) for b in batches] == [100, 100, 100]
    assert all(b["image"].dtype == torch.uint8 for b in batches)


@pytest.mark.parametrize("name", ["FashionMNISTDataModule", "CIFAR10DataModule", "ImageFolderDataModule"])
def test_the_cli_sees_every_base_option_through_kwargs(name: str) -> None:
    """The modules forward ``**kwargs`` to the base; LightningCLI (jsonargparse) still lists every option."""
    import inspect

    from jsonargparse import ArgumentParser

    import visionsuite.data as data

    cls = getattr(data, name)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "data")
    keys = {a.dest for a in parser._actions}
    base = inspect.signature(data.TensorClassificationDataModule.__init__).parameters
    assert {f"data.{p}" for p in base if p != "self"} <= keys
    defaults = parser.get_defaults().data
    assert (defaults.crop_padding, defaults.hflip) == {"CIFAR10DataModule": (4, True)}.get(
        name, (0, name == "ImageFolderDataModule")
    )


def test_fit_reports_the_augmentation_in_use(data_root, mirror, caplog) -> None:
    dm = FashionMNISTDataModule(data_dir=str(data_root), crop_padding=2, hflip=True)
    with caplog.at_level("INFO"):
        dm.setup("fit")
    lines = [r.getMessage() for r in caplog.records if "train augmentation" in r.getMessage()]
    assert lines == ["train augmentation: random crop pad 2, hflip p=0.5; normalise mean=(0.286) std=(0.353)"]
    off = FashionMNISTDataModule(data_dir=str(data_root), augment=False, normalize=False)
    assert off.augmentation_summary() == "train augmentation: none; normalise off"


def test_array_datasets_refuse_other_channels() -> None:
    from visionsuite.data import InvalidDatasetError

    with pytest.raises(InvalidDatasetError, match="1 channel"):
        FashionMNISTDataModule(data_dir="/nonexistent", channels=3)
    assert FashionMNISTDataModule(data_dir="/nonexistent", image_size=28, channels=1).image_size == (28, 28)


def test_another_image_size_resizes_each_batch_on_the_device(data_root) -> None:
    """The cache keeps 28x28; batches come out at ``image_size``, bilinear, after augmentation,
    then normalised (the resize of the [0, 1] images, not of the normalised ones)."""
    import torch.nn.functional as F

    dm = FashionMNISTDataModule(data_dir=str(data_root), image_size=[40, 56], test_subset=16, augment=False)
    dm.prepare_data()
    dm.setup("test")
    raw = dm.test_set[list(range(16))]
    assert raw["image"].shape[-2:] == (28, 28)
    out = dm.transform_batch(raw, train=False)["image"]
    expected = F.interpolate(raw["image"].float() / 255, size=(40, 56), mode="bilinear", align_corners=False)
    assert out.shape == (16, 1, 40, 56)
    assert torch.allclose(out, (expected - dm.mean[0]) / dm.std[0], atol=1e-5)
    small = FashionMNISTDataModule(data_dir=str(data_root), image_size=14, test_subset=16, augment=False, normalize=False)
    small.setup("test")
    shrunk = small.transform_batch(raw, train=False)["image"]
    pixels = raw["image"].float() / 255
    antialiased = F.interpolate(pixels, size=(14, 14), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(shrunk, antialiased, atol=1e-5)  # shrinking filters, as PIL does
    assert not torch.allclose(shrunk, F.interpolate(pixels, size=(14, 14), mode="bilinear", align_corners=False), atol=1e-3)
