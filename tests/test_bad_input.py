"""Bad input from the user ends in one line and exit status 2, never in a traceback.

Through ``visionsuite.cli.app.main`` in-process (the tiny Fashion-MNIST config) for what a user
types, and by direct construction for what a Python caller passes.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch

from visionsuite.backbones import create_backbone
from visionsuite.backbones.weights import WeightsFileError, safe_load
from visionsuite.cli.app import main
from visionsuite.data import (
    CIFAR10DataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
)
from visionsuite.data.cache import DecodedSplit, save_split
from visionsuite.data.errors import CorruptArchiveError, DataWriteError
from visionsuite.errors import ConfigError
from visionsuite.tasks import ClassificationTask

TINY = str(Path(__file__).parent / "configs" / "lenet5_tiny.yaml")


def _run(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``fit`` on the tiny config with ``args``; assert exit 2 and one error line; return it."""
    dirs = ["--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path)]
    code = main(["fit", "--config", TINY, *dirs, "--trainer.fast_dev_run", "true", *args])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("visionsuite: error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == errors[0]
    return errors[0]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["--data.init_args.batch_size", "0"], "FashionMNISTDataModule: batch_size must be an integer >= 1, got 0"),
        (["--data.init_args.batch_size", "-8"], "batch_size must be an integer >= 1, got -8"),
        (["--data.init_args.eval_batch_size", "0"], "eval_batch_size must be an integer >= 1 (or null), got 0"),
        (["--data.init_args.num_workers", "-1"], "num_workers must be an integer >= 0, got -1"),
        (["--data.init_args.crop_padding", "-2"], "crop_padding must be an integer >= 0, got -2"),
        (["--data.init_args.crop_pad_mode", "mirror"], "crop_pad_mode"),
        (["--data.init_args.train_subset", "-1"], "train_subset must be an integer >= 0 (or null), got -1"),
        (["--data.init_args.val_size", "-5"], "val_size must be an integer >= 0 or a fraction in [0, 1), got -5"),
        (["--model.init_args.lr", "-1"], "ClassificationTask: lr must be a finite number > 0, got -1.0"),
        (["--model.init_args.lr", ".inf"], "lr must be a finite number > 0, got inf"),
        (["--model.init_args.lr", ".nan"], "lr must be a finite number > 0, got nan"),
        (["--model.init_args.weight_decay", "-0.1"], "weight_decay must be a finite number >= 0, got -0.1"),
        (["--model.init_args.triangular_ends", "[0.2, 2]"], "triangular_ends must be two numbers in [0, 1] (start, end)"),
        (["--model.init_args.checkpoint_every_n_steps", "0"], "checkpoint_every_n_steps must be an integer >= 1"),
    ],
)
def test_out_of_range_arguments(override, expected, data_root, tmp_path, capsys) -> None:
    line = _run(["--data.init_args.data_dir", str(data_root), *override], tmp_path, capsys)
    assert expected in line, line


def test_negative_image_size_of_an_image_folder(cifar_tree, tmp_path, capsys) -> None:
    data = ["--data", "visionsuite.data.ImageFolderDataModule", "--data.init_args.root", str(cifar_tree / "test")]
    line = _run([*data, "--data.init_args.image_size", "-5"], tmp_path, capsys)
    assert "ImageFolderDataModule: image_size must be an integer >= 1 or a pair" in line and "got -5" in line
    with pytest.raises(ConfigError, match=r"image_size .* got \[32, 0\]"):
        ImageFolderDataModule(root=str(cifar_tree / "test"), image_size=[32, 0])


def test_python_callers_get_the_same_checks(tmp_path) -> None:
    """No parser in between: the constructors themselves refuse out-of-range values."""
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1, got 0"):
        FashionMNISTDataModule(data_dir=str(tmp_path), batch_size=0)
    with pytest.raises(ConfigError, match="std must be a list of finite numbers > 0"):
        FashionMNISTDataModule(data_dir=str(tmp_path), std=[0.0])
    with pytest.raises(ConfigError, match="lr must be a finite number > 0, got nan"):
        ClassificationTask(lr=float("nan"))
    with pytest.raises(ConfigError, match="label_smoothing must be a finite number >= 0 and < 1"):
        ClassificationTask(label_smoothing=1.5)
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 1, got 0"):
        ClassificationTask(num_classes=0)
    FashionMNISTDataModule(data_dir=str(tmp_path), val_size=0.2, eval_batch_size=None)  # valid values pass
    ClassificationTask(lr=1e-3, milestones=[2, 4], weight_decay=0.0)


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        ("VAETask", {"latent_dim": 0}, "VAETask: latent_dim must be an integer >= 1, got 0"),
        ("GANTask", {"latent_dim": -3}, "GANTask: latent_dim must be an integer >= 1, got -3"),
        ("AutoencoderTask", {"img_size": 0}, "AutoencoderTask: img_size must be an integer >= 1, got 0"),
        ("GANTask", {"n_critic": 0}, "n_critic must be"),
        ("GANTask", {"ema_decay": 1.0}, "ema_decay must be a finite number >= 0 and < 1, got 1.0"),
        ("VAETask", {"beta": float("inf")}, "beta must be a finite number >= 0, got inf"),
        ("DetectionTask", {"fpn_channels": 0}, "fpn_channels must be an integer >= 1, got 0"),
        ("DetectionTask", {"head": "fcos", "fpn_channels": 48}, "fpn_channels must be a multiple of 32 for the fcos head"),
        ("DetectionTask", {"head": "yolo", "fpn_channels": 1}, "fpn_channels must be at least 2 for the yolo head"),
        ("DetectionTask", {"score_thresh": 1.5}, "score_thresh must be a finite number >= 0 and < 1, got 1.5"),
        ("ClassificationTask", {"backbone_lr_mult": float("nan")}, "backbone_lr_mult must be a finite number >= 0, got nan"),
        ("SegmentationTask", {"encoder_lr_mult": -1.0}, "encoder_lr_mult must be"),
    ],
)
def test_task_options_out_of_range_are_one_line(task: str, kwargs: dict, message: str) -> None:
    """Checked where they are declared (core/options.py), before any network is built."""
    import visionsuite.tasks as tasks

    extra = {"backbone": "resnet18", "num_classes": 3} if task == "DetectionTask" else {}
    with pytest.raises(ConfigError) as info:
        getattr(tasks, task)(**extra, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_generative_model_refuses_data_of_another_size(data_root: Path, mirror: Path) -> None:
    from lightning.pytorch import Trainer

    from visionsuite.tasks import VAETask

    task = VAETask(img_size=32)
    trainer = Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    dm = FashionMNISTDataModule(data_dir=str(data_root), train_subset=64, val_subset=64, batch_size=32)
    with pytest.raises(ConfigError, match=r"model.img_size=32 but the data's images are 28x28"):
        trainer.fit(task, datamodule=dm)


@pytest.fixture
def lenet_weights(tmp_path) -> Path:
    path = tmp_path / "lenet5.pt"
    torch.save(create_backbone("lenet5", num_classes=10, in_chans=1).state_dict(), path)
    return path


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "empty"])
def test_missing_or_damaged_weights_file(damage, lenet_weights, data_root, tmp_path, capsys) -> None:
    path = tmp_path / "w" / "bad.pt"
    path.parent.mkdir()
    data = lenet_weights.read_bytes()
    contents = {"truncated": data[: len(data) // 2], "garbage": b"<html>404 Not Found</html>\n", "empty": b""}
    if damage != "missing":
        path.write_bytes(contents[damage])
        with pytest.raises(WeightsFileError, match="not a readable weights file; it may be truncated"):
            safe_load(path)
    args = ["--data.init_args.data_dir", str(data_root), "--model.init_args.weights", str(path)]
    line = _run(args, tmp_path, capsys)
    assert str(path) in line
    assert ("Weights file not found" if damage == "missing" else "not a readable weights file") in line


def test_truncated_dataset_archive(mirror, tmp_path, capsys) -> None:
    """A CIFAR-10 archive cut short (an interrupted copy) in data_dir: one line, nothing extracted."""
    archive = tmp_path / "data" / "cifar10" / "cifar10-jpeg.tar.gz"
    archive.parent.mkdir(parents=True)
    with open(mirror / "cifar10" / "cifar10-jpeg.tar.gz", "rb") as src:
        archive.write_bytes(src.read(1 << 20))
    with pytest.raises(CorruptArchiveError, match="truncated or corrupt"):
        CIFAR10DataModule(data_dir=str(tmp_path / "data")).prepare_data()
    assert sorted(p.name for p in archive.parent.iterdir()) == ["cifar10-jpeg.tar.gz"]  # no partial tree
    data = ["--data", "visionsuite.data.CIFAR10DataModule", "--data.init_args.data_dir", str(tmp_path / "data")]
    line = _run([*data, "--model.init_args.in_chans", "3"], tmp_path, capsys)
    assert str(archive) in line and "truncated or corrupt" in line and "fetch it again" in line


def test_truncated_idx_file(mirror, tmp_path) -> None:
    raw = tmp_path / "fashion_mnist" / "raw"
    raw.mkdir(parents=True)
    for name in os.listdir(mirror / "fashion-mnist"):
        shutil.copy(mirror / "fashion-mnist" / name, raw / name)
    images = raw / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:50_000])
    with pytest.raises(CorruptArchiveError, match="t10k-images-idx3-ubyte.gz is truncated or corrupt"):
        FashionMNISTDataModule(data_dir=str(tmp_path)).prepare_data()


def test_data_dir_inside_a_file(tmp_path, capsys) -> None:
    """A data_dir the OS cannot create (a path through a regular file): one line naming the path."""
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    line = _run(["--data.init_args.data_dir", str(tmp_path / "notes.txt" / "data")], tmp_path, capsys)
    assert "cannot write the dataset cache" in line and str(tmp_path / "notes.txt" / "data") in line


def test_archive_into_an_unwritable_data_dir(mirror, tmp_path) -> None:
    """Extracting the mirror's CIFAR-10 archive where no folder can be made: one line, not a traceback."""
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    with pytest.raises(DataWriteError, match="cannot write the files of cifar10-jpeg.tar.gz to") as info:
        CIFAR10DataModule(data_dir=str(tmp_path / "notes.txt" / "data")).prepare_data()
    assert "Not a directory" in str(info.value) and "\n" not in str(info.value)


def _split() -> DecodedSplit:
    images, labels = torch.zeros(64, 1, 28, 28, dtype=torch.uint8), torch.zeros(64, dtype=torch.int64)
    return DecodedSplit(images=images, labels=labels, classes=["a"])


def test_full_disk_while_writing_the_cache(tmp_path, monkeypatch) -> None:
    """The cache file is written into /dev/full: the kernel's real ENOSPC, no temp file left."""
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux)")
    real_fdopen = os.fdopen

    def full_disk(fd: int, *args, **kwargs):
        os.close(fd)
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", full_disk)
    path = tmp_path / "cache" / "train.pt"
    with pytest.raises(DataWriteError) as info:
        save_split(_split(), path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "No space left on device" in message
    assert "the disk is full" in message and info.value.__cause__ is not None
    assert list(path.parent.iterdir()) == []  # the temporary file was removed


def test_read_only_data_dir(tmp_path, monkeypatch) -> None:
    """Read-only data_dir: real permissions where they apply (not as root), else the OS's EROFS."""
    path = tmp_path / "ro" / "cache" / "train.pt"
    path.parent.mkdir(parents=True)
    if os.geteuid() != 0:
        path.parent.chmod(0o555)
    else:  # root ignores permission bits: raise what a read-only mount raises
        import tempfile

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path.parent))

        monkeypatch.setattr(tempfile, "mkstemp", read_only)
    try:
        with pytest.raises(DataWriteError, match="data_dir") as info:
            save_split(_split(), path)
    finally:
        path.parent.chmod(0o755)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert list(path.parent.iterdir()) == []
