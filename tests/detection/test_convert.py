"""``visionsuite convert`` and the label writers: round trips on COCO128, refusals, image links."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from visionsuite.cli.app import main
from visionsuite.data.detection_formats import (
    DetectionSet,
    read_coco,
    read_voc,
    read_yolo,
)
from visionsuite.data.detection_writers import write_coco
from visionsuite.data.errors import DataWriteError

FIRST = ("000000000009", "000000000025", "000000000030")  # COCO128 images with boxes


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["convert", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _assert_same(a: DetectionSet, b: DetectionSet, atol: float) -> float:
    """Same classes, ids, images, sizes and labels; boxes within ``atol`` px. Returns the largest box error."""
    assert a.names == b.names and a.category_ids == b.category_ids
    by_name = {r.path.name: r for r in b.records}
    assert sorted(by_name) == sorted(r.path.name for r in a.records)
    worst = 0.0
    for rec in a.records:
        other = by_name[rec.path.name]
        assert other.size == rec.size and other.labels.tolist() == rec.labels.tolist(), rec.path.name
        if len(rec.boxes):
            worst = max(worst, float((other.boxes - rec.boxes).abs().max()))
    assert worst <= atol
    return worst


@pytest.fixture(scope="module")
def coco_paths(coco128: Path) -> tuple[Path, Path]:
    return coco128 / "annotations" / "instances_train2017.json", coco128 / "images" / "train2017"


@pytest.fixture(scope="module")
def coco_set(coco_paths: tuple[Path, Path]) -> DetectionSet:
    return read_coco(*coco_paths)


def test_coco_to_yolo_to_coco_keeps_boxes_classes_and_ids(coco_paths, coco_set, coco128: Path, tmp_path: Path, capsys) -> None:
    json_file, images = coco_paths
    status, out, err = _cli(["--from", "coco", "--to", "yolo", json_file, tmp_path / "yolo", "--image-dir", images], capsys)
    assert status == 0 and err == ""
    assert "converted 128 images, 929 boxes (2 images without boxes" in out and "skipped: 10 COCO iscrowd boxes" in out
    assert len(list((tmp_path / "yolo" / "labels").glob("*.txt"))) == 128  # negatives get an empty file
    # the same lines as the mirror's own YOLO export of these boxes (Ultralytics), to its 6 decimals
    for stem in FIRST:
        ours = [line.split() for line in (tmp_path / "yolo" / "labels" / f"{stem}.txt").read_text().splitlines()]
        theirs = [line.split() for line in (coco128 / "labels" / "train2017" / f"{stem}.txt").read_text().splitlines()]
        assert [r[0] for r in ours] == [r[0] for r in theirs]
        assert torch.allclose(torch.tensor([[float(v) for v in r[1:]] for r in ours]),
                              torch.tensor([[float(v) for v in r[1:]] for r in theirs]), atol=1.5e-6)  # fmt: skip
    status, out, err = _cli(
        ["--from", "yolo", "--to", "coco", tmp_path / "yolo", tmp_path / "coco", "--image-dir", images], capsys
    )
    assert status == 0 and err == "" and f"--image_dir {images}" in out
    back = read_coco(tmp_path / "coco" / "annotations.json", images)
    assert back.category_ids[-1] == 90  # COCO's ids came back through data.yaml, not the YOLO indices 0..79
    _assert_same(coco_set, back, atol=2e-3)  # YOLO's 6 decimals of 640 px, then 3 decimals of a pixel


def test_coco_to_voc_to_coco_keeps_boxes_classes_and_ids(coco_paths, coco_set, tmp_path: Path, capsys) -> None:
    json_file, images = coco_paths
    status, out, _ = _cli(["--from", "coco", "--to", "voc", json_file, tmp_path / "voc", "--image-dir", images], capsys)
    assert status == 0 and "wrote " + str(tmp_path / "voc" / "Annotations") in out
    xml = (tmp_path / "voc" / "Annotations" / "000000000009.xml").read_text()
    for field in ("<filename>000000000009.jpg</filename>", "<width>640</width>", "<height>480</height>", "<depth>3</depth>",
                  "<name>bowl</name>", "<difficult>0</difficult>", "<xmin>2.08</xmin>"):  # fmt: skip
        assert field in xml, field  # COCO x 1.08 is VOC's 1-based xmin 2.08
    status, _, err = _cli(["--from", "voc", "--to", "coco", tmp_path / "voc", tmp_path / "coco", "--image-dir", images], capsys)
    assert status == 0 and err == ""
    back = read_coco(tmp_path / "coco" / "annotations.json", images)
    assert _assert_same(coco_set, back, atol=1e-3) <= 1e-3


def _voc_xml(filename: str, size: tuple[int, int], objects: list[tuple[str, int, tuple[float, float, float, float]]]) -> str:
    objs = "".join(
        f"<object><name>{name}</name><difficult>{hard}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, hard, (x1, y1, x2, y2) in objects
    )
    return f"<annotation><filename>{filename}</filename><size><width>{size[1]}</width><height>{size[0]}</height>" \
           f"<depth>3</depth></size>{objs}</annotation>"  # fmt: skip


def test_voc_to_coco_to_voc_counts_every_box_left_out(coco_paths, tmp_path: Path, capsys) -> None:
    _, images = coco_paths
    root = tmp_path / "VOC2007"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem in FIRST:
        shutil.copy(images / f"{stem}.jpg", root / "JPEGImages")
    a, b, c = (f"{s}.jpg" for s in FIRST)
    (root / "Annotations" / "a.xml").write_text(_voc_xml(a, (480, 640), [
        ("dog", 0, (10, 20, 200, 300)), ("person", 1, (300.5, 40, 400, 470)), ("cat", 0, (500, 100, 700, 200)),
    ]))  # fmt: skip
    (root / "Annotations" / "b.xml").write_text(
        _voc_xml(b, (426, 640), [("car", 0, (50, 60, 40, 80)), ("bus", 0, (1, 1, 640, 426))])
    )
    (root / "Annotations" / "c.xml").write_text(_voc_xml(c, (428, 640), []))
    original = read_voc(sorted((root / "Annotations").glob("*.xml")), root / "JPEGImages")
    status, out, err = _cli(["--from", "voc", "--to", "coco", root, tmp_path / "coco", "--images", "copy"], capsys)
    assert status == 0 and err == ""
    assert "converted 3 images, 4 boxes (1 images without boxes, kept as valid negatives)" in out
    assert "skipped: 1 boxes without area inside the image" in out  # b's car: xmax < xmin
    assert "clipped to the image: 1 boxes" in out  # a's cat reaches x 700 in a 640-px image
    assert "1 VOC difficult boxes written as ordinary boxes" in out
    copied = tmp_path / "coco" / "images" / a
    assert not copied.is_symlink() and copied.read_bytes() == (images / a).read_bytes()
    status, _, err = _cli(["--from", "coco", "--to", "voc", tmp_path / "coco", tmp_path / "voc"], capsys)  # images/ found beside
    assert status == 0 and err == ""
    written = sorted((tmp_path / "voc" / "Annotations").glob("*.xml"))
    assert [p.stem for p in written] == list(FIRST)
    back = read_voc(written, tmp_path / "coco" / "images")
    _assert_same(original, back, atol=1e-3)
    assert back.records[0].boxes[1].tolist() == pytest.approx([299.5, 39.0, 400.0, 470.0])  # 1-based VOC, fractions kept
    assert not any(r.iscrowd.any() for r in back.records)  # difficult did not survive COCO, as the summary said
    status, _, err = _cli(["--from", "voc", "--to", "voc", root, tmp_path / "voc2"], capsys)  # VOC to VOC keeps it
    assert status == 0 and err == ""
    kept = read_voc(sorted((tmp_path / "voc2" / "Annotations").glob("*.xml")), root / "JPEGImages")
    assert (
        [r.iscrowd.tolist() for r in kept.records]
        == [r.iscrowd.tolist() for r in original.records]
        == [[False, True, False], [False], []]
    )


def test_existing_destination_file_is_refused_and_nothing_written(coco_paths, tmp_path: Path, capsys) -> None:
    json_file, images = coco_paths
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "data.yaml").write_text("old\n")
    args = ["--from", "coco", "--to", "yolo", json_file, dst, "--image-dir", images]
    status, _, err = _cli(args, capsys)
    assert status == 2 and err.count("\n") == 1
    assert f"'{dst / 'data.yaml'}' exists already: nothing was written" in err
    assert [p.name for p in dst.rglob("*")] == ["data.yaml"] and (dst / "data.yaml").read_text() == "old\n"
    with pytest.raises(DataWriteError, match="annotations.json' exists already"):
        (dst / "annotations.json").write_text("{}")
        write_coco(read_coco(json_file, images), dst)
    status, _, err = _cli([*args, "--overwrite"], capsys)
    assert status == 0 and err == "" and "names:" in (dst / "data.yaml").read_text()


@pytest.fixture()
def small_yolo(coco128: Path, tmp_path: Path) -> Path:
    """A YOLO root (images/, labels/, names.yaml) of three COCO128 images."""
    root = tmp_path / "yolo"
    for part, suffix in (("images", ".jpg"), ("labels", ".txt")):
        (root / part).mkdir(parents=True)
        for stem in FIRST:
            shutil.copy(coco128 / part / "train2017" / f"{stem}{suffix}", root / part)
    shutil.copy(coco128 / "names.yaml", root)
    return root


def test_images_link_makes_working_symlinks(coco_paths, coco_set, tmp_path: Path, capsys) -> None:
    json_file, images = coco_paths
    status, out, _ = _cli(
        ["--from", "coco", "--to", "yolo", json_file, tmp_path / "out", "--image-dir", images, "--images", "link"], capsys
    )
    assert status == 0 and "128 image symlinks" in out
    link = tmp_path / "out" / "images" / "000000000009.jpg"
    assert link.is_symlink() and link.resolve() == (images / "000000000009.jpg").resolve()
    with Image.open(link) as im:
        assert im.size == (640, 480)
    # the output is a self-contained YOLO root: read through the links, it is the source set again
    back = read_yolo(tmp_path / "out" / "images", tmp_path / "out" / "labels", tmp_path / "out" / "data.yaml")
    back.category_ids = coco_set.category_ids  # read_yolo gives indices; convert maps data.yaml's ids back
    _assert_same(coco_set, back, atol=2e-3)


def test_linking_an_image_onto_itself_is_refused(small_yolo: Path, capsys) -> None:
    args = ["--from", "yolo", "--to", "coco", small_yolo, small_yolo, "--images", "link", "--overwrite"]
    status, _, err = _cli(args, capsys)
    assert status == 2 and "is the source image itself: nothing was written" in err
    assert not any(p.is_symlink() for p in (small_yolo / "images").iterdir())
    assert not (small_yolo / "annotations.json").exists()


def _bad_yolo_class(root: Path) -> list:
    (root / "labels" / "000000000009.txt").write_text("45 0.5 0.5 0.2 0.2\n80 0.5 0.5 0.2 0.2\n")
    return ["--from", "yolo", root]


def _bad_yolo_outside(root: Path) -> list:
    (root / "labels" / "000000000025.txt").write_text("23 1.2 0.5 0.2 0.2\n")
    return ["--from", "yolo", root]


def _bad_voc_class(root: Path) -> list:
    (root / "names.yaml").unlink()  # no names file: the 20 VOC classes
    (root / "Annotations").mkdir()
    (root / "Annotations" / "x.xml").write_text(_voc_xml("000000000009.jpg", (480, 640), [("unicorn", 0, (1, 1, 9, 9))]))
    return ["--from", "voc", root, "--image-dir", root / "images"]


def _bad_coco_image(root: Path) -> list:
    entries = [{"id": 1, "file_name": "000000000009.jpg", "width": 640, "height": 480},
               {"id": 2, "file_name": "gone.jpg", "width": 640, "height": 480}]  # fmt: skip
    ann = [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]}]
    (root / "x.json").write_text(json.dumps({"images": entries, "annotations": ann, "categories": [{"id": 1, "name": "a"}]}))
    return ["--from", "coco", root / "x.json", "--image-dir", root / "images"]


def _same_stem(root: Path) -> list:
    Image.open(root / "images" / "000000000009.jpg").save(root / "images" / "000000000009.png")
    return ["--from", "yolo", root]


@pytest.mark.parametrize(
    ("make", "to", "message"),
    [
        (_bad_yolo_class, "coco", "labels/000000000009.txt:2: unknown class id 80 (names has 80)"),
        (_bad_yolo_outside, "voc", "labels/000000000025.txt:1: values must be normalised to [0, 1]"),
        (
            _bad_voc_class,
            "yolo",
            "x.xml: unknown class 'unicorn' (object 1); the classes are the 20 Pascal VOC classes: pass --names",
        ),
        (_bad_coco_image, "yolo", "gone.jpg' (image id 2) is missing"),
        (_same_stem, "yolo", "two images would share the YOLO label file"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(small_yolo: Path, tmp_path: Path, capsys, make, to, message) -> None:
    args = make(small_yolo)
    status, _, err = _cli([*args, "--to", to, tmp_path / "dst"], capsys)
    assert status == 2 and err.count("\n") == 1 and err.startswith("visionsuite: error: ")
    assert message in err
    assert not (tmp_path / "dst").exists()


def test_help_says_what_src_is_and_the_command_is_listed(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["convert", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "usage: visionsuite convert" in out
    assert all(f"  {fmt}  " in out for fmt in ("coco", "yolo", "voc")) and "labels/ and images/" in out
    assert main(["--help"]) == 0 and "visionsuite convert --from coco" in capsys.readouterr().out


def test_convert_does_not_import_lightning(small_yolo: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from visionsuite.cli.app import main; "
        f"assert main(['convert', '--from', 'yolo', '--to', 'voc', {str(small_yolo)!r}, {str(tmp_path / 'dst')!r}]) == 0; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')); "
        "assert not loaded, loaded"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "dst" / "Annotations").glob("*.xml"))) == 3
