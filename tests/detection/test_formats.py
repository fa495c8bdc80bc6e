"""COCO / YOLO / VOC readers on the real COCO128 files, and their bad-input errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from visionsuite.data.detection_formats import read_coco, read_voc, read_yolo, read_yolo_names
from visionsuite.data.errors import InvalidDatasetError


@pytest.fixture(scope="module")
def coco_set(coco128: Path):
    return read_coco(coco128 / "annotations" / "instances_train2017.json", coco128 / "images" / "train2017")


@pytest.fixture(scope="module")
def yolo_set(coco128: Path):
    return read_yolo(coco128 / "images" / "train2017", coco128 / "labels" / "train2017", coco128 / "names.yaml")


def test_coco_and_yolo_give_the_same_boxes_and_classes(coco_set, yolo_set) -> None:
    assert coco_set.category_ids[:3] == [1, 2, 3] and coco_set.category_ids[-1] == 90  # ids have gaps
    assert len(coco_set.category_ids) == 80 == len(yolo_set.names)
    assert coco_set.counts["crowd"] == 10  # the YOLO export drops COCO's crowd boxes too
    by_path = {r.path.name: r for r in yolo_set.records}
    assert sorted(by_path) == sorted(r.path.name for r in coco_set.records)
    for rec in coco_set.records:
        yrec = by_path[rec.path.name]
        assert yrec.size == rec.size
        assert len(yrec.labels) == len(rec.labels), rec.path.name
        if len(rec.labels) == 0:
            continue
        # pair each COCO box with its nearest YOLO box (file orders differ); the pairing must be 1:1
        dist = (rec.boxes[:, None, :] - yrec.boxes[None, :, :]).abs().amax(dim=2)
        err, match = dist.min(dim=1)
        assert sorted(match.tolist()) == list(range(len(rec.labels))), rec.path.name
        assert err.max() <= 1e-3, rec.path.name  # YOLO's 6 decimals, de-normalised
        assert [coco_set.names[i] for i in rec.labels] == [yolo_set.names[i] for i in yrec.labels[match]]


def test_yolo_negatives_and_orphan_label_files(yolo_set) -> None:
    negatives = sorted(r.path.stem for r in yolo_set.records if len(r.labels) == 0)
    assert negatives == ["000000000250", "000000000508"]
    assert sorted(p.stem for p in yolo_set.orphans) == ["000000000656", "000000000659"]
    assert yolo_set.counts["clipped"] == 0  # sub-pixel rounding past the edges is not a wrong box
    assert all(r.boxes.dtype == torch.float32 and r.labels.dtype == torch.int64 for r in yolo_set.records)


def test_yolo_names_yaml(coco128: Path) -> None:
    names = read_yolo_names(coco128 / "names.yaml")
    assert names[0] == "person" and names[79] == "toothbrush" and len(names) == 80


def _yolo_copy(coco128: Path, tmp_path: Path, text: str) -> tuple[Path, Path]:
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    shutil.copy(coco128 / "images" / "train2017" / "000000000009.jpg", images)
    (labels / "000000000009.txt").write_text(text)
    return images, labels


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("45 0.5 0.5 0.2", "000000000009.txt:2: expected 5 fields"),
        ("45 0.5 0.5 0.2 0.2 0.9", "000000000009.txt:2: expected 5 fields"),
        ("45 0.5 1.5 0.2 0.2", "000000000009.txt:2: values must be normalised"),
        ("80 0.5 0.5 0.2 0.2", "000000000009.txt:2: unknown class id 80"),
    ],
)
def test_yolo_bad_lines_name_file_and_line(coco128: Path, tmp_path: Path, line: str, message: str) -> None:
    images, labels = _yolo_copy(coco128, tmp_path, f"45 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(InvalidDatasetError, match=message.replace(".", r"\.")):
        read_yolo(images, labels, coco128 / "names.yaml")


def test_yolo_boxes_outside_are_clipped_and_counted(coco128: Path, tmp_path: Path) -> None:
    # the centre+size of the 2nd line reaches past the right edge: clipped to 640
    images, labels = _yolo_copy(coco128, tmp_path, "45 0.5 0.5 0.2 0.2\n45 0.95 0.5 0.2 0.2\n45 0.5 0.5 0 0.2\n")
    ds = read_yolo(images, labels, coco128 / "names.yaml")
    (rec,) = ds.records
    assert ds.counts["clipped"] == 1 and ds.counts["degenerate"] == 1
    assert rec.boxes.tolist()[1] == pytest.approx([0.85 * 640, 0.4 * 480, 640.0, 0.6 * 480])
    assert len(rec.labels) == 2


def _coco_copy(coco128: Path, tmp_path: Path, edit) -> Path:
    data = json.loads((coco128 / "annotations" / "instances_train2017.json").read_text())
    edit(data)
    out = tmp_path / "instances.json"
    out.write_text(json.dumps(data))
    return out


def test_coco_unknown_category_names_file_and_id(coco128: Path, tmp_path: Path) -> None:
    def edit(d):
        d["annotations"][5]["category_id"] = 12  # 12 is one of COCO's unused ids

    path = _coco_copy(coco128, tmp_path, edit)
    with pytest.raises(InvalidDatasetError, match=r"instances\.json: .*unknown category id 12"):
        read_coco(path, coco128 / "images" / "train2017")


def test_coco_missing_image_is_named(coco128: Path, tmp_path: Path) -> None:
    def edit(d):
        d["images"][3]["file_name"] = "nowhere.jpg"

    path = _coco_copy(coco128, tmp_path, edit)
    with pytest.raises(InvalidDatasetError, match=r"nowhere\.jpg.* is missing"):
        read_coco(path, coco128 / "images" / "train2017")


def test_coco_degenerate_and_outside_boxes_are_counted(coco128: Path, tmp_path: Path, coco_set) -> None:
    def edit(d):
        anns = [a for a in d["annotations"] if a["image_id"] == 9]  # image 9: 640x480, 8 boxes
        anns[0]["bbox"] = [600.0, 10.0, 100.0, 20.0]  # reaches x = 700 > 640: clipped
        anns[1]["bbox"] = [10.0, 10.0, 0.0, 20.0]  # zero width: dropped
        anns[2]["bbox"] = [700.0, 10.0, 5.0, 5.0]  # wholly outside: dropped

    ds = read_coco(_coco_copy(coco128, tmp_path, edit), coco128 / "images" / "train2017")
    assert ds.counts["clipped"] == coco_set.counts["clipped"] + 1
    assert ds.counts["degenerate"] == coco_set.counts["degenerate"] + 2
    rec = next(r for r in ds.records if r.path.name == "000000000009.jpg")
    ref = next(r for r in coco_set.records if r.path.name == "000000000009.jpg")
    assert len(rec.labels) == len(ref.labels) - 2
    assert rec.boxes[0].tolist() == [600.0, 10.0, 640.0, 30.0]


def test_coco_keep_crowd_flags_them(coco128: Path) -> None:
    ds = read_coco(coco128 / "annotations" / "instances_train2017.json", coco128 / "images" / "train2017", keep_crowd=True)
    assert ds.counts["crowd"] == 0
    assert sum(int(r.iscrowd.sum()) for r in ds.records) == 10


def _voc_xml(name: str, size: tuple[int, int], objects: list[tuple[str, list[float], int]]) -> str:
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    return f"<annotation><filename>{name}</filename><size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>{objs}</annotation>"


def test_voc_reader_matches_coco_boxes(coco128: Path, coco_set, tmp_path: Path) -> None:
    rec = next(r for r in coco_set.records if r.path.name == "000000000009.jpg")
    objects = [
        (coco_set.names[c], [b[0] + 1, b[1] + 1, b[2], b[3]], int(i == 0))  # VOC is 1-based
        for i, (b, c) in enumerate(zip(rec.boxes.tolist(), rec.labels.tolist()))
    ]
    xml = tmp_path / "000000000009.xml"
    xml.write_text(_voc_xml(rec.path.name, rec.size, objects))
    ds = read_voc([xml], coco128 / "images" / "train2017", classes=coco_set.names)
    (got,) = ds.records
    assert got.size == rec.size
    assert torch.allclose(got.boxes, rec.boxes, atol=1e-3) and torch.equal(got.labels, rec.labels)
    assert got.iscrowd.tolist() == [True] + [False] * (len(rec.labels) - 1)
    dropped = read_voc([xml], coco128 / "images" / "train2017", classes=coco_set.names, keep_difficult=False)
    assert dropped.counts["difficult"] == 1 and len(dropped.records[0].labels) == len(rec.labels) - 1
    xml.write_text(_voc_xml(rec.path.name, rec.size, [("unicorn", [1, 1, 5, 5], 0)]))
    with pytest.raises(InvalidDatasetError, match=r"000000000009\.xml: unknown class 'unicorn'"):
        read_voc([xml], coco128 / "images" / "train2017", classes=coco_set.names)
