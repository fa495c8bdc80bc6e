"""Image folders that would fool the scan or the decoder: link loops, FIFOs, 16-bit and odd modes.

All images are real CIFAR-10 JPEGs from the mirror (or converted from them).
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionsuite.data import ImageFolderDataModule
from visionsuite.data.images import list_image_files, load_image


def _make_folder(root: Path, cifar_tree: Path, classes=("cat", "dog"), per_class: int = 4) -> Path:
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shutil.copy(cifar_tree / "train" / name / f"{i:04d}.jpg", root / name / f"{i:04d}.jpg")
    return root


def _module(root: Path, tmp_path: Path, **kwargs) -> ImageFolderDataModule:
    args = dict(data_dir=str(tmp_path / "data"), image_size=32, val_size=2, test_size=2, batch_size=4)
    return ImageFolderDataModule(root=str(root), **{**args, **kwargs})


def test_symlink_loop_lists_each_image_once(tmp_path, cifar_tree) -> None:
    """``cat/loop -> ..`` would repeat every image at each level (40 deep) and leak copies across splits."""
    root = _make_folder(tmp_path / "imgs", cifar_tree)
    (root / "cat" / "loop").symlink_to("..", target_is_directory=True)
    assert [p.name for p in list_image_files(root / "cat")] == ["0000.jpg", "0001.jpg", "0002.jpg", "0003.jpg"]

    dm = _module(root, tmp_path)
    dm.setup("fit")
    files = dm.decoded["train"].files
    assert sorted(files) == sorted(f"{c}/{i:04d}.jpg" for c in ("cat", "dog") for i in range(4))
    split_files = {
        name: {files[i] for i in getattr(dm, f"{name}_set").indices.tolist()} for name in ("train", "val", "test")
    }
    assert sum(len(s) for s in split_files.values()) == 8  # each image in exactly one split
    assert not (split_files["train"] & split_files["val"] or split_files["train"] & split_files["test"])


def test_linked_class_folder_and_linked_file_are_used(tmp_path, cifar_tree) -> None:
    """Only links *inside* a class folder to folders are skipped; a linked class folder or file counts."""
    elsewhere = _make_folder(tmp_path / "elsewhere", cifar_tree, classes=("ship",), per_class=3)
    root = _make_folder(tmp_path / "imgs", cifar_tree)
    (root / "ship").symlink_to(elsewhere / "ship", target_is_directory=True)
    (root / "cat" / "extra.jpg").symlink_to(cifar_tree / "train" / "cat" / "0100.jpg")
    dm = _module(root, tmp_path)
    dm.setup("fit")
    assert dm.class_names == ["cat", "dog", "ship"]
    assert len(dm.decoded["train"].files) == 4 + 4 + 3 + 1 and dm.skipped_files == []


def _with_timeout(fn, fifo: Path, seconds: float = 120.0) -> None:
    """Run ``fn`` in a thread; if it is still blocked on ``fifo`` after ``seconds``, unblock it and fail."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():  # a reader blocked on the FIFO: give it a writer that closes at once
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail(f"decoding hung on the FIFO {fifo}")
    if errors:
        raise errors[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_jpg_is_skipped_and_counted(tmp_path, cifar_tree) -> None:
    root = _make_folder(tmp_path / "imgs", cifar_tree)
    fifo = root / "dog" / "stream.jpg"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        _with_timeout(lambda: load_image(fifo, 3, (32, 32)), fifo)

    dm = _module(root, tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _with_timeout(lambda: dm.setup("fit"), fifo)
    skipped = [str(w.message) for w in record if "skipped" in str(w.message)]
    assert len(skipped) == 1 and "skipped 1 unreadable image file(s)" in skipped[0] and "dog/stream.jpg" in skipped[0]
    assert dm.skipped_files == ["dog/stream.jpg"] and len(dm.decoded["train"].files) == 8


def _gray_source(cifar_tree: Path) -> np.ndarray:
    return np.asarray(Image.open(cifar_tree / "train" / "horse" / "0007.jpg").convert("L"))


def _png_bit_depth(path: Path) -> int:
    return path.read_bytes()[24]  # IHDR: signature (8) + length (4) + type (4) + width + height, then depth


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path, cifar_tree) -> None:
    gray = _gray_source(cifar_tree)
    path = tmp_path / "horse16.png"
    Image.fromarray(gray.astype(np.uint16) * 257).save(path)  # full 16-bit range, as a scanner writes it
    assert _png_bit_depth(path) == 16 and Image.open(path).mode.startswith("I")
    one = load_image(path, 1, gray.shape)[0].astype(int)
    assert np.abs(one - gray).max() <= 1 and one.mean() < 250
    three = load_image(path, 3, gray.shape).astype(int)
    assert np.abs(three - gray[None]).max() <= 1


def test_16bit_png_in_an_image_folder(tmp_path, cifar_tree) -> None:
    root = _make_folder(tmp_path / "imgs", cifar_tree)
    gray = _gray_source(cifar_tree)
    Image.fromarray(gray.astype(np.uint16) * 257).save(root / "cat" / "horse16.png")
    dm = _module(root, tmp_path, channels=1)
    dm.setup("fit")
    train = dm.decoded["train"]
    image = train.images[train.files.index("cat/horse16.png"), 0].numpy().astype(int)
    assert np.abs(image - gray).max() <= 1


def _write_png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit PNG by hand (Pillow cannot write 16-bit colour): gray+alpha ``[H, W, 2]`` or RGB ``[H, W, 3]``."""
    data = np.asarray(array, dtype=">u2")
    height, width, channels = data.shape
    rows = b"".join(b"\x00" + data[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, {2: 4, 3: 2}[channels], 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_16bit_rgb_and_gray_alpha_pngs(tmp_path, cifar_tree) -> None:
    rgb = np.asarray(Image.open(cifar_tree / "train" / "ship" / "0003.jpg").convert("RGB"))
    _write_png16(tmp_path / "rgb16.png", rgb.astype(np.uint16) * 257)
    assert _png_bit_depth(tmp_path / "rgb16.png") == 16
    assert np.abs(load_image(tmp_path / "rgb16.png", 3, (32, 32)).astype(int) - rgb.transpose(2, 0, 1)).max() <= 1

    gray = _gray_source(cifar_tree)
    alpha = np.full_like(gray, 255)
    _write_png16(tmp_path / "la16.png", np.stack([gray, alpha], -1).astype(np.uint16) * 257)
    assert np.abs(load_image(tmp_path / "la16.png", 1, (32, 32))[0].astype(int) - gray).max() <= 1


def test_palette_and_cmyk_images(tmp_path, cifar_tree) -> None:
    src = Image.open(cifar_tree / "train" / "frog" / "0002.jpg").convert("RGB")
    palette = src.quantize(colors=64)
    palette.save(tmp_path / "frog_p.png")
    expected = np.asarray(palette.convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(load_image(tmp_path / "frog_p.png", 3, (32, 32)), expected)

    src.convert("CMYK").save(tmp_path / "frog_cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "frog_cmyk.jpg").mode == "CMYK"
    decoded = load_image(tmp_path / "frog_cmyk.jpg", 3, (32, 32)).astype(int)
    assert np.abs(decoded - np.asarray(src).transpose(2, 0, 1)).mean() < 6  # JPEG loss only, no inversion


def test_dangling_link_is_skipped_and_counted(tmp_path, cifar_tree) -> None:
    root = _make_folder(tmp_path / "imgs", cifar_tree)
    (root / "cat" / "moved.jpg").symlink_to(tmp_path / "no-longer-here.jpg")
    dm = _module(root, tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image file\(s\) .*cat/moved.jpg"):
        dm.setup("fit")
    assert dm.skipped_files == ["cat/moved.jpg"] and len(dm.decoded["train"].files) == 8
