"""Writers of box annotations: a :class:`DetectionSet` → COCO JSON, YOLO text or Pascal VOC XML.

The inverse of :mod:`visionsuite.data.detection_formats`: what a writer writes, the matching
reader reads back to the same boxes (COCO and VOC: 3 decimals of a pixel; YOLO: 6 decimals of
the image side), the same class names and the same category ids. Layout under the destination
folder ``dst``:

* COCO: ``dst/annotations.json``: ``images`` (id, file_name, width, height), ``categories`` (the
  set's own ids, e.g. COCO's 1..90, and names), ``annotations`` (id, image_id, category_id,
  bbox ``[x, y, w, h]``, area, iscrowd 0).
* YOLO: ``dst/labels/<image path>.txt`` per image, lines ``class cx cy w h`` normalised to the
  decoded image (6 decimals; an empty file for an image without boxes), and ``dst/data.yaml``.
* VOC: ``dst/Annotations/<stem>.xml`` per image (filename, size width/height/depth, one object
  per box: name, difficult, bndbox in VOC's 1-based inclusive pixels), and ``dst/names.yaml``.

The names files hold ``nc`` and ``names`` as Ultralytics' ``data.yaml`` does (what
:func:`~visionsuite.data.detection_formats.read_yolo_names` reads), plus ``category_ids`` when
the ids are not the class indices: YOLO and VOC files carry only indices or names, so this is
how COCO's ids survive a COCO → YOLO → COCO round trip (:func:`read_category_ids`).

``images``: ``"none"`` refers to the images where they are (paths relative to their own folder,
the ``image_dir`` to give a reader); ``"link"`` / ``"copy"`` puts a symlink / a copy at
``dst/images/<image path>`` and the annotations refer to that folder.

All files are planned before any is written, and nothing is written when one of them exists
already (unless ``overwrite``), when two images would share one annotation file, or when an
image would be replaced by a link to itself. Each file is then written atomically
(:mod:`visionsuite.core.atomic`): images first, the index file (JSON, ``data.yaml``) last.
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from visionsuite.core.atomic import atomic_path

from .detection_formats import DetectionSet
from .errors import DataWriteError, InvalidDatasetError
from .images import open_regular_file, oriented_size

IMAGE_MODES = ("none", "link", "copy")
IMAGES_DIR = "images"
COCO_FILE = "annotations.json"
YOLO_LABELS, YOLO_NAMES = "labels", "data.yaml"
VOC_ANNOTATIONS, VOC_NAMES = "Annotations", "names.yaml"


@dataclass
class Written:
    """What a writer wrote: one ``(what, path)`` per output, the folder the annotations' image
    paths are relative to (the ``image_dir`` to read them back with), and the file count."""

    outputs: list[tuple[str, Path]]
    image_dir: Path
    files: int


@dataclass
class _Plan:
    """Every file of one conversion, known before the first is written."""

    dst: Path
    images: str
    texts: dict[Path, str] = field(default_factory=dict)
    copies: dict[Path, Path] = field(default_factory=dict)  # dst/images/... → the source image
    outputs: list[tuple[str, Path]] = field(default_factory=list)

    def add_text(self, path: Path, text: str, image: Path, kind: str) -> None:
        if path in self.texts:
            raise InvalidDatasetError(
                f"two images would share the {kind} {str(path)!r} (one of them is {str(image)!r}):"
                " rename one, the format names one annotation file per image stem"
            )
        self.texts[path] = text


def _check_mode(images: str) -> None:
    if images not in IMAGE_MODES:
        raise ValueError(f"images must be one of {IMAGE_MODES}, not {images!r}")


def _relative_paths(found: DetectionSet, image_root: str | Path | None) -> tuple[Path, list[str]]:
    """The folder the images are written relative to, and each record's path below it (posix).

    ``image_root`` (the reader's image folder) when every image is below it, else the deepest
    folder holding them all: a written path never climbs out with ``..``.
    """
    if not found.records:
        raise InvalidDatasetError("nothing to write: the annotations list no images")
    paths = [Path(os.path.abspath(r.path)) for r in found.records]
    root = Path(image_root) if image_root is not None else None
    if root is None or not all(p.is_relative_to(os.path.abspath(root)) for p in paths):
        root = Path(os.path.commonpath([str(p.parent) for p in paths]))
    base = os.path.abspath(root)
    return root, [p.relative_to(base).as_posix() for p in paths]


def _place_images(plan: _Plan, found: DetectionSet, root: Path, rels: list[str]) -> Path:
    """Plan the links or copies of the images; return the folder the annotations refer to."""
    if plan.images == "none":
        return root
    image_dir = plan.dst / IMAGES_DIR
    for record, rel in zip(found.records, rels):
        plan.copies[image_dir / rel] = Path(record.path)
    verb = "symlinks" if plan.images == "link" else "copies"
    plan.outputs.insert(0, (f"{len(rels)} image {verb}", image_dir))
    return image_dir


def _image_header(path: Path) -> tuple[tuple[int, int], int]:
    """(H, W) as decoded (EXIF orientation applied) and the channel count, from the header only."""
    try:
        with open_regular_file(path) as fh, Image.open(fh) as im:
            return oriented_size(im), len(im.getbands())
    except (OSError, ValueError, SyntaxError) as err:
        raise InvalidDatasetError(f"cannot read image {str(path)!r}: {err}") from None


def _num(value: float) -> str:
    """A pixel coordinate with at most 3 decimals, no trailing zeros (``12``, ``12.5``)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _execute(plan: _Plan, overwrite: bool, image_dir: Path) -> Written:
    """Check every planned target, then write: images, annotation files, the index file last."""
    targets = [*plan.copies, *plan.texts]
    checked: set[Path] = set()
    for target in targets:
        for folder in [target.parent, *target.parent.parents]:
            if folder in checked or folder == folder.parent:
                break
            checked.add(folder)
            if os.path.lexists(folder) and not folder.is_dir():
                raise DataWriteError(f"{str(folder)!r} is a file, not a folder: nothing was written; choose another destination")
    for target, source in plan.copies.items():
        if target.exists() and not target.is_symlink() and os.path.samefile(target, source):
            raise DataWriteError(
                f"{str(target)!r} is the source image itself: nothing was written; use --images none or another destination"
            )
    if not overwrite:
        for target in targets:
            if os.path.lexists(target):
                raise DataWriteError(
                    f"{str(target)!r} exists already: nothing was written; pass --overwrite to replace"
                    " the files, or choose another destination"
                )
    done = 0
    try:
        for target, source in plan.copies.items():
            with atomic_path(target) as tmp:
                if plan.images == "link":
                    os.symlink(os.path.abspath(source), tmp)
                else:
                    shutil.copyfile(source, tmp)
            done += 1
        for target, text in plan.texts.items():
            with atomic_path(target) as tmp:
                tmp.write_text(text, encoding="utf-8")
            done += 1
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise DataWriteError(
            f"cannot write {str(err.filename or target)!r}: {reason}; {done} of {len(targets)} files were written before it"
        ) from err
    return Written(plan.outputs, image_dir, done)


# ----------------------------------------------------------------------------------- names file
def names_yaml(names: Sequence[str], category_ids: Sequence[int], images_here: bool = False) -> str:
    """A ``data.yaml``/``names.yaml``: ``nc``, ``names`` (index → name), ``category_ids`` when they are not 0..K-1."""
    import yaml

    data: dict = {"train": IMAGES_DIR, "val": IMAGES_DIR} if images_here else {}
    data.update(nc=len(names), names=dict(enumerate(str(n) for n in names)))
    text = "# class index -> name, written by visionsuite convert\n"
    text += yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    ids = [int(i) for i in category_ids]
    if ids != list(range(len(names))):
        text += "# the source dataset's own id of each class index (COCO category ids), for converting back\n"
        text += yaml.safe_dump({"category_ids": ids}, default_flow_style=None, width=1 << 30)
    return text


def read_category_ids(names_file: str | Path, num_classes: int) -> list[int] | None:
    """The ``category_ids`` list of a names file written by :func:`names_yaml` (``None``: it has none)."""
    import yaml

    names_file = Path(names_file)
    try:
        data = yaml.safe_load(names_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise InvalidDatasetError(f"{names_file}: not a readable YAML file ({err})") from None
    ids = data.get("category_ids") if isinstance(data, dict) else None
    if ids is None:
        return None
    if (not isinstance(ids, list) or len(ids) != num_classes or len(set(ids)) != len(ids)
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):  # fmt: skip
        raise InvalidDatasetError(f"{names_file}: 'category_ids' must be {num_classes} distinct integers, one per name")
    return ids


# ----------------------------------------------------------------------------------- writers
def _start_plan(found: DetectionSet, dst: str | Path, image_root: str | Path | None, images: str) -> tuple[_Plan, list[str], Path]:
    """What every writer starts with: the checked image mode, an empty plan for ``dst``, each
    image's path relative to the image folder, and the images placed (``link``/``copy``)."""
    _check_mode(images)
    plan = _Plan(Path(dst), images)
    root, rels = _relative_paths(found, image_root)
    return plan, rels, _place_images(plan, found, root, rels)


def write_coco(
    found: DetectionSet, dst: str | Path, image_root: str | Path | None = None, images: str = "none", overwrite: bool = False
) -> Written:
    """``dst/annotations.json``: the set in COCO's instances format, with the set's own category ids.

    Image ids are the records' (COCO sources keep theirs; YOLO and VOC ones are positions),
    annotation ids are 1..N. ``iscrowd`` is 0: crowd boxes are not carried by the readers' default.
    """
    plan, rels, image_dir = _start_plan(found, dst, image_root, images)
    entries, annotations = [], []
    for record, rel in zip(found.records, rels):
        h, w = record.size
        entries.append({"id": int(record.image_id), "file_name": rel, "width": int(w), "height": int(h)})
        for (x1, y1, x2, y2), label in zip(record.boxes.tolist(), record.labels.tolist()):
            bw, bh = round(x2 - x1, 3), round(y2 - y1, 3)
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(record.image_id), "category_id": int(found.category_ids[label]),
                "bbox": [round(x1, 3), round(y1, 3), bw, bh], "area": round(bw * bh, 3), "iscrowd": 0,
            })  # fmt: skip
    categories = [{"id": int(i), "name": str(n)} for i, n in zip(found.category_ids, found.names)]
    path = plan.dst / COCO_FILE
    plan.texts[path] = json.dumps({"images": entries, "annotations": annotations, "categories": categories}) + "\n"
    plan.outputs.append((f"COCO JSON: {len(entries)} images, {len(annotations)} boxes, {len(categories)} categories", path))
    return _execute(plan, overwrite, image_dir)


def write_yolo(
    found: DetectionSet, dst: str | Path, image_root: str | Path | None = None, images: str = "none", overwrite: bool = False
) -> Written:
    """``dst/labels/<image path>.txt`` per image and ``dst/data.yaml``.

    Coordinates are fractions of the *decoded* image (what the YOLO reader and Ultralytics scale
    by), so an image whose header disagrees with the size the annotations give is refused: its
    boxes would come back scaled wrong.
    """
    plan, rels, image_dir = _start_plan(found, dst, image_root, images)
    labels = plan.dst / YOLO_LABELS
    for record, rel in zip(found.records, rels):
        h, w = record.size
        decoded, _ = _image_header(Path(record.path))
        if decoded != (h, w):
            raise InvalidDatasetError(
                f"{record.path}: the annotations give its size as {w}x{h} (WxH) but it decodes as"
                f" {decoded[1]}x{decoded[0]}: YOLO coordinates are fractions of the decoded image, so its boxes would be wrong"
            )
        lines = []
        for (x1, y1, x2, y2), label in zip(record.boxes.tolist(), record.labels.tolist()):
            cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
            lines.append(f"{label} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
        plan.add_text((labels / rel).with_suffix(".txt"), "".join(lines), Path(record.path), "YOLO label file")
    plan.outputs.append((f"YOLO labels: {len(rels)} files", labels))
    names = plan.dst / YOLO_NAMES
    plan.texts[names] = names_yaml(found.names, found.category_ids, images_here=images != "none")
    plan.outputs.append((f"YOLO names: {found.num_classes} classes", names))
    return _execute(plan, overwrite, image_dir)


def write_voc(
    found: DetectionSet, dst: str | Path, image_root: str | Path | None = None, images: str = "none", overwrite: bool = False
) -> Written:
    """``dst/Annotations/<stem>.xml`` per image and ``dst/names.yaml``.

    ``<filename>`` is the image's path relative to the image folder (what the VOC reader joins
    to its ``image_dir``); ``<depth>`` comes from the image header. Boxes flagged in ``iscrowd``
    (VOC ``difficult`` when read from VOC) are written ``difficult 1``.
    """
    plan, rels, image_dir = _start_plan(found, dst, image_root, images)
    folder = plan.dst / VOC_ANNOTATIONS
    for record, rel in zip(found.records, rels):
        h, w = record.size
        _, depth = _image_header(Path(record.path))
        annotation = ET.Element("annotation")
        ET.SubElement(annotation, "filename").text = rel
        size = ET.SubElement(annotation, "size")
        for key, value in (("width", w), ("height", h), ("depth", depth)):
            ET.SubElement(size, key).text = str(int(value))
        ET.SubElement(annotation, "segmented").text = "0"
        flags = record.iscrowd.tolist()
        for (x1, y1, x2, y2), label, hard in zip(record.boxes.tolist(), record.labels.tolist(), flags):
            obj = ET.SubElement(annotation, "object")
            for key, text in (("name", found.names[label]), ("pose", "Unspecified"), ("truncated", "0")):
                ET.SubElement(obj, key).text = str(text)
            ET.SubElement(obj, "difficult").text = "1" if hard else "0"
            box = ET.SubElement(obj, "bndbox")  # VOC pixels are 1-based and inclusive: the reader's inverse
            for key, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
                ET.SubElement(box, key).text = _num(value)
        ET.indent(annotation)
        text = ET.tostring(annotation, encoding="unicode") + "\n"
        plan.add_text(folder / f"{Path(rel).stem}.xml", text, Path(record.path), "VOC annotation file")
    plan.outputs.append((f"VOC annotations: {len(rels)} files", folder))
    names = plan.dst / VOC_NAMES
    plan.texts[names] = names_yaml(found.names, found.category_ids, images_here=False)
    plan.outputs.append((f"class names: {found.num_classes}", names))
    return _execute(plan, overwrite, image_dir)


#: format name → writer, for ``visionsuite convert``.
WRITERS = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc}
