"""The segmentation data modules on real CamVid frames: pairing, mask checks (one-line errors, exit
2, naming the file), colour masks through a palette, conversions, the corrupt-file policy."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_camvid import make_tiny_camvid

from visionsuite.cli.app import main
from visionsuite.data import CamVidDataModule, SegmentationFolderDataModule
from visionsuite.data.errors import InvalidDatasetError

TINY = str(Path(__file__).parents[1] / "configs" / "segmentation_tiny.yaml")
PALETTE = [list(c) for c in CamVidDataModule.PALETTE]


def _folders(tmp_path: Path, files: list[tuple[Path, Path]]) -> tuple[Path, Path]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for image, mask in files:
        shutil.copy(image, images / image.name)
        shutil.copy(mask, masks / mask.name)
    return images, masks


def _module(tmp_path: Path, images: Path, masks: Path, **kw: object) -> SegmentationFolderDataModule:
    options = {"val_size": 1, **kw}
    return SegmentationFolderDataModule(
        images=str(images), masks=str(masks), class_names=list(CamVidDataModule.CLASSES), ignore_index=11,
        data_dir=str(tmp_path / "data"), image_size=[30, 40], batch_size=2, **options,
    )  # fmt: skip


def _fit_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], images: Path, masks: Path, *extra: str) -> str:
    """Run ``fit`` on the folder module; it must fail with exit 2 and one line; return that line."""
    args = [
        "fit", "--config", TINY, "--data", "SegmentationFolderDataModule", "--data.images", str(images),
        "--data.masks", str(masks), "--data.class_names", "11", "--data.ignore_index", "11",
        "--data.data_dir", str(tmp_path / "data"), "--data.image_size", "[30, 40]",
        "--trainer.default_root_dir", str(tmp_path / "logs"), "--trainer.max_steps", "1", *extra,
    ]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_folder_module_pairs_index_masks_and_holds_out_val(tmp_path: Path, camvid_files: list) -> None:
    images, masks = _folders(tmp_path, camvid_files)
    dm = _module(tmp_path, images, masks)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set)) == (2, 1)
    batch = dm.train_set[[0, 1]]
    assert batch["mask"].shape == (2, 30, 40) and int(batch["mask"].max()) <= 11


def test_mask_value_out_of_range_is_an_error_naming_file_and_values(
    tmp_path: Path, camvid_files: list, capsys: pytest.CaptureFixture[str]
) -> None:
    images, masks = _folders(tmp_path, camvid_files)
    bad = masks / camvid_files[1][1].name
    m = np.array(Image.open(bad))
    m[0, :3] = [13, 40, 40]
    Image.fromarray(m, mode="L").save(bad)
    line = _fit_error(tmp_path, capsys, images, masks)
    assert bad.name in line and "[13, 40]" in line and "ignore value 11" in line


def test_image_without_mask_and_size_mismatch_name_the_pair(
    tmp_path: Path, camvid_files: list, capsys: pytest.CaptureFixture[str]
) -> None:
    images, masks = _folders(tmp_path, camvid_files)
    orphan = masks / camvid_files[0][1].name
    orphan.rename(tmp_path / "elsewhere.png")
    line = _fit_error(tmp_path, capsys, images, masks)
    assert camvid_files[0][0].name in line and "has no mask" in line
    # the mask back, but at another size than its image
    Image.open(tmp_path / "elsewhere.png").resize((240, 180), Image.Resampling.NEAREST).save(orphan)
    line = _fit_error(tmp_path, capsys, images, masks)
    assert camvid_files[0][0].name in line and orphan.name in line and "480x360" in line and "240x180" in line


def test_colour_masks_decode_through_the_palette(tmp_path: Path, camvid_files: list) -> None:
    """CamVid's index masks rendered in CamVid's colours decode back to the same indices."""
    images, masks = _folders(tmp_path, camvid_files)
    index_dir = tmp_path / "index"
    shutil.copytree(masks, index_dir)
    lut = np.array([*PALETTE, [0, 0, 0]], dtype=np.uint8)  # void (11) black
    for path in masks.iterdir():
        Image.fromarray(lut[np.array(Image.open(path))]).save(path)  # RGB colour mask
    colour = _module(tmp_path, images, masks, palette=PALETTE, void_color=[0, 0, 0])
    index = _module(tmp_path / "i", images, index_dir)
    colour.setup("fit"), index.setup("fit")
    assert Image.open(next(masks.iterdir())).mode == "RGB"
    assert np.array_equal(colour.decoded["train"].masks.numpy(), index.decoded["train"].masks.numpy())


def test_colour_not_in_palette_names_file_and_colour(
    tmp_path: Path, camvid_files: list, capsys: pytest.CaptureFixture[str]
) -> None:
    images, masks = _folders(tmp_path, camvid_files)
    lut = np.array([*PALETTE, [0, 0, 0]], dtype=np.uint8)
    for path in masks.iterdir():
        rgb = lut[np.array(Image.open(path))]
        if path.name == camvid_files[2][1].name:
            rgb[5, 5] = [1, 2, 3]
        Image.fromarray(rgb).save(path)
    line = _fit_error(tmp_path, capsys, images, masks, "--data.palette", str(PALETTE))
    assert camvid_files[2][1].name in line and "(1, 2, 3)" in line


def test_grayscale_and_rgba_images_are_converted(tmp_path: Path, camvid_files: list) -> None:
    images, masks = _folders(tmp_path, camvid_files)
    first, second = (images / f.name for f, _ in camvid_files[:2])
    rgb = Image.open(first).convert("RGB")
    Image.open(first).convert("L").save(first.with_suffix(".png"))
    Image.open(second).convert("RGBA").save(second.with_suffix(".png"))
    first.unlink(), second.unlink()
    dm = _module(tmp_path, images, masks, val_size=0, normalize=False, resize_mode="stretch")
    dm.setup("fit")
    gray = dm.decoded["train"].images[dm.decoded["train"].files.index(first.with_suffix(".png").name)]
    assert gray.shape == (3, 30, 40) and bool((gray[0] == gray[1]).all() and (gray[1] == gray[2]).all())
    assert not (gray[0] == np.array(rgb.resize((40, 30)))[..., 0]).all()  # luma, not the red channel


def test_corrupt_image_is_skipped_and_counted(tmp_path: Path, camvid_files: list) -> None:
    images, masks = _folders(tmp_path, camvid_files)
    broken = images / camvid_files[1][0].name
    broken.write_bytes(broken.read_bytes()[:200])
    dm = _module(tmp_path, images, masks, val_size=0)
    with pytest.warns(UserWarning, match="1 "):
        dm.setup("fit")
    assert dm.skipped_files == [broken.name] and len(dm.train_set) == 2


def test_camvid_module_reads_the_official_splits(tmp_path: Path, camvid_files: list) -> None:
    root = make_tiny_camvid(tmp_path, camvid_files)
    dm = CamVidDataModule(data_dir=str(root), image_size=[45, 60], batch_size=3)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (3, 3, 3)
    assert dm.ignore_index == 11 and dm.num_classes == 11
    assert (dm.cache_dir / "val.pt").is_file()  # the official val split, not a hold-out


def test_ignore_index_disagreement_is_a_config_error(
    tmp_path: Path, camvid_files: list, capsys: pytest.CaptureFixture[str]
) -> None:
    images, masks = _folders(tmp_path, camvid_files)
    args = [
        "fit", "--config", TINY, "--data", "SegmentationFolderDataModule", "--data.images", str(images),
        "--data.masks", str(masks), "--data.class_names", "11", "--data.data_dir", str(tmp_path / "data"),
        "--data.ignore_index", "11", "--model.ignore_index", "255", "--trainer.max_steps", "1",
        "--trainer.default_root_dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    assert main(args) == 2
    assert "ignore_index: 11" in capsys.readouterr().err
    with pytest.raises(InvalidDatasetError, match="give both"):
        SegmentationFolderDataModule(images=str(images), masks=str(masks), class_names=11, val_images=str(images))


def test_train_on_val_trains_on_both_official_splits(tmp_path: Path, camvid_files: list) -> None:
    root = make_tiny_camvid(tmp_path, camvid_files)
    for ext, folder in (("jpg", "val"), ("png", "valannot")):  # val: 2 frames, so the counts tell the splits apart
        (root / "camvid" / "CamVid" / folder / f"{Path(camvid_files[0][0]).stem}.{ext}").unlink()
    dm = CamVidDataModule(data_dir=str(root), image_size=[45, 60], batch_size=3, train_on_val=True)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (5, 2, 3)
    train, val = dm.train_set[list(range(5))], dm.val_set[[0, 1]]
    for image, mask in zip(val["image"], val["mask"]):  # every val frame is among the training frames
        assert any(torch.equal(image, i) and torch.equal(mask, m) for i, m in zip(train["image"], train["mask"]))


def test_train_on_val_without_a_stored_val_split_is_an_error(tmp_path: Path, camvid_files: list) -> None:
    images, masks = _folders(tmp_path, camvid_files)
    with pytest.raises(InvalidDatasetError, match="train_on_val needs a stored val split"):
        _module(tmp_path, images, masks, train_on_val=True).setup("fit")


def test_train_window_crops_training_batches_only(tmp_path: Path, camvid_files: list) -> None:
    root = make_tiny_camvid(tmp_path, camvid_files)
    dm = CamVidDataModule(data_dir=str(root), image_size=[45, 60], batch_size=3, train_window=[24, 32])
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    train, val = dm.transform_batch(batch, train=True), dm.transform_batch(batch, train=False)
    assert train["image"].shape[-2:] == (24, 32) and train["mask"].shape[-2:] == (24, 32)
    assert val["image"].shape[-2:] == (45, 60) and val["mask"].shape[-2:] == (45, 60)
    assert dm.augmentation_summary().startswith("train augmentation: hflip p=0.5, random 24x32 window;")
    with pytest.raises(InvalidDatasetError, match="train_window 50x32 must fit inside image_size"):
        CamVidDataModule(data_dir=str(root), image_size=[45, 60], train_window=[50, 32])
