"""Labels that cannot be right are refused in one line naming the file, never trained on.

EXIF orientation of segmentation pairs (images are decoded turned, so the size check and the
masks must be read turned too), and bad COCO JSON / VOC XML / YOLO text. Every file is tiny and
built in ``tmp_path``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionsuite.data import SegmentationFolderDataModule
from visionsuite.data.dense import Sample, decode_samples
from visionsuite.data.detection_formats import read_coco, read_voc, read_yolo
from visionsuite.data.errors import InvalidDatasetError

ORIENTATION = 0x0112
#: an oriented (as shown) image of H x W, with a marker at rows/cols below.
H, W = 40, 30
ROWS, COLS = slice(3, 9), slice(20, 26)


def _one_line(err: pytest.ExceptionInfo[BaseException], *names: object) -> str:
    """The error's message: one line that names every one of ``names``."""
    message = str(err.value)
    assert "\n" not in message and message.strip() == message
    for name in names:
        assert str(name) in message, (name, message)
    return message


def _save_with_orientation(img: Image.Image, path: Path, orientation: int) -> None:
    exif = img.getexif()
    exif[ORIENTATION] = orientation
    img.save(path, exif=exif)


# ------------------------------------------------------------------------ EXIF, segmentation
def _shown_pair() -> tuple[Image.Image, Image.Image]:
    """The pair as a viewer shows it: a red square on grey, and class 1 on the same pixels."""
    image = np.full((H, W, 3), 90, dtype=np.uint8)
    image[ROWS, COLS] = (255, 0, 0)
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[ROWS, COLS] = 1
    return Image.fromarray(image), Image.fromarray(mask, mode="L")


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    return images, masks


def _module(tmp_path: Path, images: Path, masks: Path) -> SegmentationFolderDataModule:
    return SegmentationFolderDataModule(
        images=str(images), masks=str(masks), class_names=2, data_dir=str(tmp_path / "data"),
        image_size=[H, W], resize_mode="stretch", val_size=0, batch_size=1, normalize=False, hflip=False,
    )  # fmt: skip


def _assert_marker_on_mask(dm: SegmentationFolderDataModule) -> None:
    dm.setup("fit")
    split = dm.decoded["train"]
    image, mask = split.images[0], split.masks[0]
    assert image.shape == (3, H, W) and mask.shape == (H, W)
    red = (image[0] > 200) & (image[1] < 60)
    assert int(red.sum()) == 36 and torch.equal(red, mask == 1)


def test_exif_turned_image_with_a_mask_drawn_as_shown_loads_aligned(tmp_path: Path) -> None:
    # raw pixels stored turned back, plus orientation 6 (rotate 90): the decoder turns them upright
    images, masks = _folders(tmp_path)
    image, mask = _shown_pair()
    _save_with_orientation(image.transpose(Image.Transpose.ROTATE_90), images / "a.png", 6)
    mask.save(masks / "a.png")
    _assert_marker_on_mask(_module(tmp_path, images, masks))


def test_exif_flag_on_both_image_and_mask_loads_aligned(tmp_path: Path) -> None:
    # both files store the same raw frame with orientation 6: the mask must be turned like the image
    images, masks = _folders(tmp_path)
    image, mask = _shown_pair()
    _save_with_orientation(image.transpose(Image.Transpose.ROTATE_90), images / "a.png", 6)
    _save_with_orientation(mask.transpose(Image.Transpose.ROTATE_90), masks / "a.png", 6)
    _assert_marker_on_mask(_module(tmp_path, images, masks))


def test_pair_misaligned_once_oriented_is_refused_naming_both(tmp_path: Path) -> None:
    # same raw size, but only the image is turned: 30x40 image, 40x30 mask
    images, masks = _folders(tmp_path)
    image, mask = _shown_pair()
    _save_with_orientation(image.transpose(Image.Transpose.ROTATE_90), images / "a.png", 6)
    mask.transpose(Image.Transpose.ROTATE_90).save(masks / "a.png")
    with pytest.raises(InvalidDatasetError) as err:
        _module(tmp_path, images, masks).setup("fit")
    _one_line(err, images / "a.png", masks / "a.png", "30x40", "40x30", "EXIF orientation 6")


def test_decoding_refuses_a_pair_out_of_register(tmp_path: Path) -> None:
    """The last guard before the cache: decoded image and mask of different sizes never get stored."""
    image, mask = _shown_pair()
    image.save(tmp_path / "a.png")
    mask.resize((W + 1, H)).save(tmp_path / "m.png")
    with pytest.raises(InvalidDatasetError) as err:
        decode_samples([Sample(tmp_path / "a.png", tmp_path / "m.png")], tmp_path, 3, (H, W), "stretch", 255, ["a", "b"])
    _one_line(err, tmp_path / "a.png", tmp_path / "m.png", f"{W}x{H}", f"{W + 1}x{H}")


def test_skipped_images_are_reported_under_the_users_folder(tmp_path: Path) -> None:
    images, masks = _folders(tmp_path)
    image, mask = _shown_pair()
    for name in ("a", "b"):
        image.save(images / f"{name}.png")
        mask.save(masks / f"{name}.png")
    (images / "b.png").write_bytes((images / "b.png").read_bytes()[:60])  # truncated: undecodable
    dm = _module(tmp_path, images, masks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    (message,) = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert f"under {images}: b.png" in message and str(tmp_path / "data") not in message


# ------------------------------------------------------------------------------ COCO JSON
def _coco(tmp_path: Path, edit=None, text: str | None = None) -> Path:
    """Two 20x10 images (id 1 with two boxes, id 2 a negative) and ``edit`` applied to the JSON."""
    for name in ("a.png", "b.png"):
        Image.new("RGB", (20, 10)).save(tmp_path / name)
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 20},
                   {"id": 2, "file_name": "b.png", "height": 10, "width": 20}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 0},
                        {"id": 8, "image_id": 1, "category_id": 3, "bbox": [2, 2, 6, 6], "iscrowd": 0}],
        "categories": [{"id": 3, "name": "cat"}],
    }  # fmt: skip
    if edit is not None:
        edit(data)
    path = tmp_path / "instances.json"
    path.write_text(text if text is not None else json.dumps(data))
    return path


def test_coco_valid_set_keeps_negatives(tmp_path: Path) -> None:
    found = read_coco(_coco(tmp_path), tmp_path)
    assert [len(r.boxes) for r in found.records] == [2, 0]


def _bbox(value):
    def edit(d):
        if value is KeyError:
            del d["annotations"][1]["bbox"]
        else:
            d["annotations"][1]["bbox"] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d["images"].append({"id": 1, "file_name": "b.png", "height": 10, "width": 20}),
         "image id 1 appears more than once"),
        (lambda d: d["images"].append({"id": 5, "file_name": "a.png", "height": 10, "width": 20}),
         "file_name 'a.png' is listed by image ids 1 and 5"),
        (lambda d: d["annotations"][1].update(image_id=99), "annotation id 8 names unknown image id 99"),
        (_bbox(KeyError), "annotation id 8 has no 'bbox'"),
        (_bbox(["1", "2", "3", "4"]), 'annotation id 8 has bbox ["1", "2", "3", "4"]'),
        (_bbox([1, 2, 3]), "annotation id 8 has bbox [1, 2, 3]"),
        (_bbox(None), "annotation id 8 has bbox null"),
        (_bbox([1, 2, math.nan, 4]), "annotation id 8 has bbox [1, 2, NaN, 4]"),
        (_bbox([1, 2, True, 4]), "annotation id 8 has bbox [1, 2, true, 4]"),
        (lambda d: d["annotations"][1].pop("category_id"), "annotation id 8 has no valid 'category_id'"),
        (lambda d: d["annotations"][1].pop("id") and d["annotations"][1].pop("image_id"),
         "annotation #1 (no id) has no valid 'image_id'"),
        (lambda d: d["images"][1].pop("height"), "image id 2 has no valid 'height'"),
        (lambda d: d.update(annotations=[]), "nothing to train on (its 'annotations' list is empty)"),
        (lambda d: d.pop("annotations"), "nothing to train on (its 'annotations' list is empty)"),
        (lambda d: d.pop("images"), "no 'images' key"),
        (lambda d: d.pop("categories"), "no 'categories' key"),
        (lambda d: d["categories"].append({"id": 3, "name": "dog"}), "category id 3 appears more than once"),
    ],
)  # fmt: skip
def test_coco_bad_input_is_one_line_naming_file_and_id(tmp_path: Path, edit, says: str) -> None:
    path = _coco(tmp_path, edit)
    with pytest.raises(InvalidDatasetError) as err:
        read_coco(path, tmp_path)
    _one_line(err, path, says)


def test_coco_all_boxes_dropped_is_nothing_to_train_on(tmp_path: Path) -> None:
    path = _coco(tmp_path, lambda d: [a.update(iscrowd=1) for a in d["annotations"]])
    with pytest.raises(InvalidDatasetError) as err:
        read_coco(path, tmp_path)
    _one_line(err, path, "no boxes left (dropped: 2 crowd)", "nothing to train on")
    assert sum(len(r.boxes) for r in read_coco(path, tmp_path, keep_crowd=True).records) == 2


def test_coco_skipped_images_are_reported_under_the_image_folder(tmp_path: Path) -> None:
    from visionsuite.data import COCODetectionDataModule

    images = tmp_path / "photos"
    images.mkdir()
    path = _coco(images, lambda d: d["images"].append({"id": 3, "file_name": "c.png", "height": 10, "width": 20}))
    (images / "c.png").write_bytes(b"not a png")
    dm = COCODetectionDataModule(annotation_file=str(path), image_dir=str(images), data_dir=str(tmp_path / "data"),
                                 image_size=[16, 16], val_size=1, batch_size=1)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    (message,) = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert f"under {images}: c.png" in message and str(tmp_path / "data") not in message


@pytest.mark.parametrize(("text", "says"), [("{not json", "not a readable JSON file"), ("[1, 2]", "not a JSON object"),
                                            ('{"images": {}, "categories": []}', "'images' must be a list")])  # fmt: skip
def test_coco_file_that_is_not_coco_json_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = _coco(tmp_path, text=text)
    with pytest.raises(InvalidDatasetError) as err:
        read_coco(path, tmp_path)
    _one_line(err, path, says)


# ------------------------------------------------------------------------------- VOC XML
def test_coco_size_that_is_not_the_decoded_image_is_refused(tmp_path: Path) -> None:
    """Boxes are in the frame of the image as decoded (EXIF orientation applied): a stated size
    that is the raw, unrotated one (an orientation-6 photo) or another size is named, not trained."""
    path = _coco(tmp_path)
    _save_with_orientation(Image.new("RGB", (20, 10)), tmp_path / "a.png", 6)  # stored 20x10, shown 10x20
    with pytest.raises(InvalidDatasetError) as err:
        read_coco(path, tmp_path)
    assert "EXIF orientation" in _one_line(err, path, "image id 1", "a.png", "says 20x10", "decodes to 10x20")
    Image.new("RGB", (40, 20)).save(tmp_path / "a.png")
    with pytest.raises(InvalidDatasetError) as err:
        read_coco(path, tmp_path)
    assert "boxes would be off" in _one_line(err, path, "a.png", "is 40x20")


def test_voc_size_of_an_exif_rotated_photo_is_refused(tmp_path: Path) -> None:
    path = _voc(tmp_path, f"<filename>a.png</filename>{SIZE}{GOOD}")
    _save_with_orientation(Image.new("RGB", (20, 10)), tmp_path / "a.png", 8)
    with pytest.raises(InvalidDatasetError) as err:
        read_voc([path], tmp_path, classes=["cat"])
    assert "EXIF orientation" in _one_line(err, path, "<size> says 20x10")


def _voc(tmp_path: Path, body: str, name: str = "a.xml") -> Path:
    Image.new("RGB", (20, 10)).save(tmp_path / "a.png")
    path = tmp_path / name
    path.write_text(f"<annotation>{body}</annotation>")
    return path


SIZE = "<size><width>20</width><height>10</height><depth>3</depth></size>"
GOOD = "<object><name>cat</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>6</xmax><ymax>6</ymax></bndbox></object>"


def test_voc_valid_file_reads_and_negatives_stay(tmp_path: Path) -> None:
    good = _voc(tmp_path, f"<filename>a.png</filename>{SIZE}{GOOD}")
    empty = _voc(tmp_path, f"<filename>a.png</filename>{SIZE}", name="b.xml")
    found = read_voc([good, empty], tmp_path, classes=["cat"])
    assert [r.boxes.tolist() for r in found.records] == [[[1.0, 1.0, 6.0, 6.0]], []]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (f"{SIZE}{GOOD}", "no <filename>"),
        (f"<filename>a.png</filename>{GOOD}", "<size> needs positive integer"),
        (f"<filename>a.png</filename>{SIZE}{GOOD}<object><name>cat</name></object>", "object 2 ('cat') has no <bndbox>"),
        (f"<filename>a.png</filename>{SIZE}{GOOD.replace('<xmin>2', '<xmin>two')}", "object 1 ('cat') has <xmin> 'two'"),
        (f"<filename>a.png</filename>{SIZE}{GOOD.replace('<ymax>6', '<ymax>nan')}", "object 1 ('cat') has <ymax> 'nan'"),
        (f"<filename>a.png</filename>{SIZE}<object><name>cat</nam></object>", "not valid XML"),
        (f"<filename>a.png</filename>{SIZE}", "no boxes in"),
    ],
)
def test_voc_bad_input_is_one_line_naming_file_and_object(tmp_path: Path, body: str, says: str) -> None:
    path = _voc(tmp_path, body)
    with pytest.raises(InvalidDatasetError) as err:
        read_voc([path], tmp_path, classes=["cat"])
    _one_line(err, path, says)


# ------------------------------------------------------------------------------ YOLO text
def _yolo(tmp_path: Path, text: str | bytes, orientation: int = 1) -> tuple[Path, Path]:
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    _save_with_orientation(Image.new("RGB", (40, 20)), images / "a.png", orientation)  # raw 40 wide, 20 high
    Image.new("RGB", (40, 20)).save(images / "b.png")  # no label file: a negative
    label = labels / "a.txt"
    label.write_bytes(text if isinstance(text, bytes) else text.encode())
    return images, labels


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0 0.5 0.5 0.2 0.2\n0 0.5 x 0.2 0.2\n", "a.txt:2: expected an integer class and 4 numbers"),
        ("0 0.5 0.5 0.2 0.2\n0.5 0.5 0.5 0.2 0.2\n", "a.txt:2: expected an integer class and 4 numbers"),
        ("0 0.5 0.5 0.2\n", "a.txt:1: expected 5 fields"),
        ("0 0.5 0.5 nan 0.2\n", "a.txt:1: values must be normalised"),
        (b"0 0.5 0.5 0.2 0.2\n\xff\xfe\n", "a.txt: not a readable YOLO label text file"),
        ("\n", "no boxes in the labels of"),
    ],
)
def test_yolo_bad_input_is_one_line_naming_file_and_line(tmp_path: Path, text: str | bytes, says: str) -> None:
    images, labels = _yolo(tmp_path, text)
    with pytest.raises(InvalidDatasetError) as err:
        read_yolo(images, labels, ["cat"])
    _one_line(err, says, labels)


def test_yolo_boxes_scale_by_the_oriented_size(tmp_path: Path) -> None:
    # orientation 6: decoded 20 wide, 40 high; the box is normalised in that frame (Ultralytics' exif_size)
    images, labels = _yolo(tmp_path, "0 0.5 0.25 0.5 0.5\n", orientation=6)
    found = read_yolo(images, labels, ["cat"])
    assert found.records[0].size == (40, 20) and found.records[1].size == (20, 40)
    assert found.records[0].boxes.tolist() == [[5.0, 0.0, 15.0, 20.0]]
