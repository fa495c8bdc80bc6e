"""ImageFolderDataModule on small folders of real CIFAR-10 JPEGs."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from visionsuite.data import DatasetNotFoundError, ImageFolderDataModule, InvalidDatasetError
from visionsuite.data.images import load_image


def _make_folder(root: Path, cifar_tree: Path, classes=("cat", "dog", "ship"), per_class: int = 6) -> Path:
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shutil.copy(cifar_tree / "train" / name / f"{i:04d}.jpg", root / name / f"{i:04d}.jpg")
    return root


def _corrupt_files(folder: Path, cifar_tree: Path) -> None:
    data = (cifar_tree / "train" / "cat" / "0100.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.jpg").write_text("this is not an image\n")


def _module(root: Path, tmp_path: Path, **kwargs) -> ImageFolderDataModule:
    args = dict(data_dir=str(tmp_path / "data"), image_size=32, val_size=3, test_size=3, batch_size=4)
    return ImageFolderDataModule(root=str(root), **{**args, **kwargs})


def test_builds_from_a_folder_of_jpegs(tmp_path, cifar_tree) -> None:
    root = _make_folder(tmp_path / "imgs", cifar_tree)
    dm = _module(root, tmp_path)
    assert dm.class_names == ["cat", "dog", "ship"] and dm.num_classes == 3  # before setup
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (12, 3, 3)
    assert not set(dm.train_set.indices.tolist()) & set(dm.val_set.indices.tolist())
    train = dm.decoded["train"]
    assert train.images.dtype == torch.uint8 and train.images.shape == (18, 3, 32, 32)
    assert train.files[:3] == ["cat/0000.jpg", "dog/0000.jpg", "ship/0000.jpg"]  # classes interleaved
    assert train.labels[:3].tolist() == [0, 1, 2]
    expected = np.asarray(Image.open(root / "dog" / "0000.jpg").convert("RGB")).transpose(2, 0, 1)
    assert torch.equal(train.images[1], torch.from_numpy(expected.copy()))
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert dm.skipped_files == []


def test_resizes_and_converts_channels(tmp_path, cifar_tree) -> None:
    root = _make_folder(tmp_path / "imgs", cifar_tree, per_class=3)
    dm = _module(root, tmp_path, image_size=(16, 20), channels=1, val_size=1, test_size=1)
    dm.setup("fit")
    train = dm.decoded["train"]
    assert train.images.shape == (9, 1, 16, 20) and (dm.in_chans, dm.image_size, dm.mean) == (1, (16, 20), (0.458,))
    assert torch.equal(train.images[0], torch.from_numpy(load_image(root / train.files[0], 1, (16, 20))))


def test_train_val_test_layout_and_cache_reuse(tmp_path, cifar_tree, monkeypatch) -> None:
    _make_folder(tmp_path / "ds" / "train", cifar_tree, classes=("cat", "dog"), per_class=5)
    _make_folder(tmp_path / "ds" / "test", cifar_tree, classes=("cat", "dog"), per_class=2)
    dm = _module(tmp_path / "ds", tmp_path, val_size=0.2)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (8, 2, 4)
    assert dm.cache_splits() == ("train", "test")

    monkeypatch.setattr(ImageFolderDataModule, "_decode", lambda self, splits: pytest.fail("decoded again"))
    again = _module(tmp_path / "ds", tmp_path, val_size=0.2)
    again.setup("fit")  # same files + settings → same cache
    assert again.cache_dir == dm.cache_dir and torch.equal(again.train_set.indices, dm.train_set.indices)
    assert _module(tmp_path / "ds", tmp_path, image_size=24).cache_dir != dm.cache_dir


def test_corrupt_files_are_skipped_with_one_warning(tmp_path, cifar_tree) -> None:
    root = _make_folder(tmp_path / "imgs", cifar_tree)
    _corrupt_files(root / "cat", cifar_tree)
    dm = _module(root, tmp_path)
    dm.prepare_data()
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image file\(s\)") as record:
        dm.setup("fit")
    assert len([w for w in record if "unreadable" in str(w.message)]) == 1
    message = str(record[0].message)
    assert "cat/notes.jpg" in message and "cat/truncated.jpg" in message
    assert sorted(dm.skipped_files) == ["cat/notes.jpg", "cat/truncated.jpg"]
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 18


@pytest.mark.parametrize(
    ("layout", "error", "pattern"),
    [
        ("one_class", InvalidDatasetError, "at least two classes; found only 'cat'"),
        ("empty_class", InvalidDatasetError, "class folder 'dog'"),
        ("missing", DatasetNotFoundError, "does not exist"),
    ],
)
def test_bad_folders_give_one_line_errors(tmp_path, cifar_tree, layout, error, pattern) -> None:
    root = tmp_path / "imgs"
    if layout == "one_class":
        _make_folder(root, cifar_tree, classes=("cat",), per_class=2)
    elif layout == "empty_class":
        _make_folder(root, cifar_tree, classes=("cat", "ship"), per_class=2)
        (root / "dog").mkdir()
        (root / "dog" / "readme.txt").write_text("no images here")
    dm = _module(root, tmp_path)
    with pytest.raises(error, match=pattern) as info:
        dm.prepare_data()
    assert "\n" not in str(info.value)


def test_predict_dir_yields_paths_and_eval_normalised_tensors(tmp_path, cifar_tree) -> None:
    root = _make_folder(tmp_path / "imgs", cifar_tree, classes=("cat", "dog"), per_class=2)
    pred = tmp_path / "predict"
    (pred / "nested").mkdir(parents=True)
    for i, name in enumerate(["b.jpg", "a.png", "nested/c.jpg"]):
        Image.open(cifar_tree / "test" / "frog" / f"{i:04d}.jpg").resize((48, 40)).save(pred / name)
    (pred / "ignored.txt").write_text("not an image extension")
    _corrupt_files(pred / "nested", cifar_tree)
    dm = _module(root, tmp_path, image_size=24, predict_dir=str(pred), batch_size=2)
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable"):
        dm.setup("predict")
    batches = list(dm.predict_dataloader())
    paths = [p for _, ps in batches for p in ps]
    assert paths == [str(pred / "a.png"), str(pred / "b.jpg"), str(pred / "nested" / "c.jpg")]
    images = torch.cat([b[0] for b in batches])
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 24, 24)
    assert torch.equal(images[1], torch.from_numpy(load_image(pred / "b.jpg", 3, (24, 24))))
    out = dm.on_after_batch_transfer(batches[0], 0)
    x, ps = out["image"], out["path"]
    assert ps == paths[:2] and x.dtype == torch.float32
    assert torch.equal(x, dm.transform_batch(batches[0][0], train=False))
    assert not (tmp_path / "data").exists()  # predicting needs no training cache


class _Classifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))

    def predict_step(self, batch, _):
        x, paths = batch["image"], batch["path"]
        return {"paths": list(paths), "pred": self.net(x).argmax(1), "mean": x.mean()}


def test_trainer_predict_on_a_folder_skips_training_data(tmp_path, cifar_tree) -> None:
    root = _make_folder(tmp_path / "imgs", cifar_tree, classes=("cat", "dog"), per_class=2)
    pred = tmp_path / "predict"
    pred.mkdir()
    for i in range(5):
        shutil.copy(cifar_tree / "test" / "ship" / f"{i:04d}.jpg", pred / f"{i}.jpg")
    dm = _module(root, tmp_path, predict_dir=str(pred), batch_size=2)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    out = trainer.predict(_Classifier(), datamodule=dm)
    assert [p for o in out for p in o["paths"]] == [str(pred / f"{i}.jpg") for i in range(5)]
    assert not (tmp_path / "data").exists()  # prepare_data did not decode the training folder


def test_load_image_keeps_aspect_ratio_by_centre_cropping(tmp_path) -> None:
    img = np.zeros((20, 40, 3), dtype=np.uint8)
    img[:, 5:35] = 255  # white except 5 px each side: the centre square is all white
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = load_image(tmp_path / "wide.png", 3, (10, 10))
    assert out.shape == (3, 10, 10) and out.min() >= 250  # the centre square only


def test_no_warning_for_clean_folder(tmp_path, cifar_tree) -> None:
    dm = _module(_make_folder(tmp_path / "imgs", cifar_tree, per_class=3), tmp_path, val_size=1, test_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        dm.setup("fit")
