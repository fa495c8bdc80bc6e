"""Readers of box annotations: COCO JSON, YOLO text, Pascal VOC XML → one in-memory layout.

Each reader returns a :class:`DetectionSet`: per image the file path, its (H, W), boxes as
float32 ``[M, 4]`` xyxy **pixels** and int64 labels ``[M]`` in a contiguous ``0..K-1`` index,
plus the mapping back to the dataset's own category ids and names (COCO ids are 1..90 with
gaps; predictions must be written back in those ids). The data modules of the detection task
turn this into the ragged cache; nothing here decodes pixels (only image headers for sizes).

Bad input, as the detection issue asks:

* a box with ``x2 <= x1`` / ``y2 <= y1`` (after clipping) → dropped; a box reaching outside
  the image → clipped to it. Both are *counted* in :attr:`DetectionSet.counts` so the caller
  can log them; nothing is lost silently.
* an unknown category (id, class index or name) → :class:`InvalidDatasetError` naming the file
  and the id;
* a YOLO line with the wrong number of fields or a value outside [0, 1] →
  :class:`InvalidDatasetError` naming the file and the line number;
* a COCO image entry whose file is missing → :class:`InvalidDatasetError` naming it;
* input that cannot be right is refused in one line naming the file (and the id, object or
  line): a file that is not JSON / XML / UTF-8 text, a COCO file without ``images`` or
  ``categories``, duplicate COCO image or category ids, an annotation of an unknown image, a
  COCO ``bbox`` that is missing or not 4 finite numbers, a VOC file without ``<filename>`` or
  ``<size>``, a VOC object without ``<bndbox>`` or with a non-numeric coordinate;
* a set without a single box → refused (nothing to train on); images without boxes among
  images with boxes stay valid negatives.

Image sizes read from headers (YOLO) are the EXIF-oriented ones the decoder produces; the sizes
COCO and VOC files state must equal them.

``iscrowd`` (COCO) and ``difficult`` (VOC) mark boxes that evaluation should ignore rather than
count as misses. COCO crowd boxes are dropped by default (counted as ``crowd``), as the YOLO
export of COCO does; with ``keep_crowd=True`` they are kept and flagged in
:attr:`DetectionRecord.iscrowd`, the name torchmetrics' ``MeanAveragePrecision`` reads. VOC
``difficult`` boxes are kept by default and flagged the same way.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from .errors import DatasetNotFoundError, InvalidDatasetError
from .images import list_image_files, open_regular_file, oriented_size

#: the 20 Pascal VOC classes in their canonical order.
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

#: clipping a box by at most this much is not counted (YOLO's 6-digit coordinates overshoot by ~1e-3 px).
CLIP_TOLERANCE_PX = 0.5


@dataclass
class DetectionRecord:
    """One image: its file, (H, W), boxes float32 [M, 4] xyxy pixels, labels int64 [M] (0..K-1)."""

    path: Path
    size: tuple[int, int]
    boxes: Tensor
    labels: Tensor
    #: bool [M]: boxes evaluation ignores (COCO ``iscrowd``, VOC ``difficult``).
    iscrowd: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))
    #: the dataset's id of the image (COCO ``images[].id``; YOLO/VOC: its index in the set).
    image_id: int = 0

    def __post_init__(self) -> None:
        if self.iscrowd.numel() != self.labels.numel():
            self.iscrowd = torch.zeros(self.labels.numel(), dtype=torch.bool)


@dataclass
class DetectionSet:
    """Records plus the class mapping: contiguous index ``i`` ↔ ``category_ids[i]``, ``names[i]``."""

    records: list[DetectionRecord]
    category_ids: list[int]
    names: list[str]
    #: how many boxes were clipped / dropped / skipped, and why (``clipped``, ``degenerate``, ``crowd``).
    counts: Counter = field(default_factory=Counter)
    #: annotation files that name no image (YOLO label files without an image), reported, not used.
    orphans: list[Path] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.names)


def sanitize_boxes(boxes: Tensor, size: tuple[int, int], counts: Counter) -> Tensor:
    """Clip xyxy ``boxes`` to the (H, W) image; return the mask of boxes with positive area.

    Adds to ``counts['clipped']`` (boxes moved by more than :data:`CLIP_TOLERANCE_PX` by
    clipping: less is rounding of normalised coordinates, not a wrong box) and
    ``counts['degenerate']`` (boxes dropped: zero or negative width or height once clipped).
    """
    h, w = size
    clipped = boxes.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, w)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, h)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    moved = (clipped - boxes).abs().amax(dim=1) > CLIP_TOLERANCE_PX if len(boxes) else keep
    counts["clipped"] += int((moved & keep).sum())
    counts["degenerate"] += int((~keep).sum())
    boxes.copy_(clipped)
    return keep


def _record(
    image_id: int, path: Path, size: tuple[int, int], boxes: list, labels: list, crowd: list, counts: Counter
) -> DetectionRecord:
    box_t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    keep = sanitize_boxes(box_t, size, counts)
    return DetectionRecord(
        path=path,
        size=size,
        boxes=box_t[keep],
        labels=torch.tensor(labels, dtype=torch.int64).reshape(-1)[keep],
        iscrowd=torch.tensor(crowd, dtype=torch.bool).reshape(-1)[keep],
        image_id=image_id,
    )


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) as decoded, EXIF orientation applied (header only, no pixel decoding).

    Normalised YOLO boxes are scaled by it, and the decoder turns images with orientation 5-8
    (as Ultralytics' ``exif_size`` does), so the raw header size would put the boxes off.
    """
    try:
        with open_regular_file(path) as fh, Image.open(fh) as im:
            return oriented_size(im)
    except (OSError, ValueError, SyntaxError) as err:
        raise InvalidDatasetError(f"cannot read image {str(path)!r}: {err}") from None


def _check_labelled_size(label_file: Path, what: str, path: Path, labelled: tuple[int, int]) -> None:
    """Refuse a label file whose image size is not the image's as decoded (EXIF orientation
    applied, header only): its boxes would land off the objects. A size that is the decoded one
    turned by 90 degrees is an EXIF-rotated photo labelled in its stored frame. An unreadable image
    is left to the decoder, which skips and counts it."""
    try:
        decoded = _image_size(path)
    except InvalidDatasetError:
        return
    if decoded == labelled:
        return
    h, w = labelled
    if decoded == (w, h):
        raise InvalidDatasetError(
            f"{label_file}: {what} says {w}x{h} (width x height) but {str(path)!r} decodes to {decoded[1]}x{decoded[0]}"
            " once its EXIF orientation is applied: the boxes were drawn on the unrotated image; save the image"
            " upright without the orientation tag, or relabel it as shown"
        )
    raise InvalidDatasetError(
        f"{label_file}: {what} says {w}x{h} (width x height) but {str(path)!r} is {decoded[1]}x{decoded[0]}:"
        " its boxes would be off; the label file describes another version of the image"
    )


def _require_boxes(found: DetectionSet, source: str) -> DetectionSet:
    """Refuse a set without a single box: a detector has nothing to learn (negatives need positives)."""
    if any(len(r.boxes) for r in found.records):
        return found
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(found.counts.items()) if n)
    left = f" left (dropped: {dropped})" if dropped else ""
    raise InvalidDatasetError(f"no boxes{left} in {source}: nothing to train on")


# ----------------------------------------------------------------------------------- COCO JSON
def _load_coco_json(annotation_file: Path) -> tuple[list[dict], list[dict], list]:
    """``categories``, ``images``, ``annotations`` of a COCO file, or one line saying what is wrong."""
    try:
        data = json.loads(annotation_file.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidDatasetError(f"{annotation_file}: not a readable JSON file ({err})") from None
    if not isinstance(data, dict):
        raise InvalidDatasetError(f"{annotation_file}: not a COCO instances file (the top level is not a JSON object)")
    for key in ("images", "categories"):
        if key not in data:
            raise InvalidDatasetError(f"{annotation_file}: not a COCO instances file (no {key!r} key)")
    parts = data["categories"], data["images"], data.get("annotations", [])
    for key, part in zip(("categories", "images", "annotations"), parts):
        if not isinstance(part, list) or not all(isinstance(e, dict) for e in part):
            raise InvalidDatasetError(f"{annotation_file}: {key!r} must be a list of JSON objects")
    return parts


def _coco_field(annotation_file: Path, entry: dict, key: str, what: str, kind: type | tuple[type, ...] = int):
    """``entry[key]``, or one line naming the file and the entry when it is missing or of another type."""
    value = entry.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        got = "missing" if value is None else f"{value!r}"
        raise InvalidDatasetError(f"{annotation_file}: {what} has no valid {key!r} ({got})")
    return value


def _coco_box(annotation_file: Path, ann: dict, what: str) -> list[float]:
    """The ``bbox`` ``[x, y, w, h]`` of an annotation as 4 finite numbers, else one line saying why."""
    bbox = ann.get("bbox")
    if "bbox" not in ann:
        raise InvalidDatasetError(f"{annotation_file}: {what} has no 'bbox'")
    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):  # fmt: skip
        raise InvalidDatasetError(f"{annotation_file}: {what} has bbox {json.dumps(bbox)}; expected 4 finite numbers [x, y, w, h]")
    return [float(v) for v in bbox]


def read_coco(annotation_file: str | Path, image_dir: str | Path, keep_crowd: bool = False) -> DetectionSet:
    """Read a COCO ``instances_*.json``; image ``file_name`` entries are relative to ``image_dir``.

    Contiguous labels follow the sorted category ids. Each image's ``height``/``width`` must be
    its size as decoded (EXIF orientation applied; only the header is read). Refused, in one
    line naming the file: duplicate image or category ids, an annotation of an unknown image
    or category, a missing or malformed ``bbox``, a size that is not the image's (an EXIF-rotated
    photo labelled unrotated is named as such), and a file without a single box.
    """
    annotation_file, image_dir = Path(annotation_file), Path(image_dir)
    if not annotation_file.is_file():
        raise DatasetNotFoundError(f"COCO annotation file {str(annotation_file)!r} does not exist")
    raw_categories, images, annotations = _load_coco_json(annotation_file)
    seen: set[int] = set()
    for i, c in enumerate(raw_categories):
        cid = _coco_field(annotation_file, c, "id", f"category #{i}")
        _coco_field(annotation_file, c, "name", f"category id {cid}", str)
        if cid in seen:
            raise InvalidDatasetError(f"{annotation_file}: category id {cid} appears more than once; ids must be unique")
        seen.add(cid)
    categories = sorted(raw_categories, key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(categories)}
    per_image: dict[int, list[dict]] = {}
    files: dict[str, int] = {}
    for i, im in enumerate(images):
        iid = _coco_field(annotation_file, im, "id", f"image #{i}")
        what = f"image id {iid}"
        _coco_field(annotation_file, im, "file_name", what, str)
        for key in ("height", "width"):
            if not 1 <= _coco_field(annotation_file, im, key, what, (int, float)) < math.inf:
                raise InvalidDatasetError(f"{annotation_file}: {what} has {key} {im[key]}; expected a positive integer")
        if iid in per_image:
            raise InvalidDatasetError(f"{annotation_file}: image id {iid} appears more than once; ids must be unique")
        if im["file_name"] in files:  # one photo twice: each entry would train on half its boxes
            raise InvalidDatasetError(
                f"{annotation_file}: file_name {im['file_name']!r} is listed by image ids {files[im['file_name']]} and"
                f" {iid}; merge their annotations under one image"
            )
        files[im["file_name"]] = iid
        per_image[iid] = []
    if not annotations:
        raise InvalidDatasetError(f"no boxes in {annotation_file}: nothing to train on (its 'annotations' list is empty)")
    for i, ann in enumerate(annotations):
        what = f"annotation id {ann['id']}" if "id" in ann else f"annotation #{i} (no id)"
        category = _coco_field(annotation_file, ann, "category_id", what)
        image_id = _coco_field(annotation_file, ann, "image_id", what)
        if category not in index:
            raise InvalidDatasetError(f"{annotation_file}: {what} has unknown category id {category}")
        if image_id not in per_image:
            raise InvalidDatasetError(f"{annotation_file}: {what} names unknown image id {image_id}")
        ann = {**ann, "bbox": _coco_box(annotation_file, ann, what)}
        per_image[image_id].append(ann)
    counts: Counter = Counter()
    records = []
    for im in images:
        path = image_dir / im["file_name"]
        if not path.is_file():
            raise InvalidDatasetError(f"{annotation_file}: image file {str(path)!r} (image id {im['id']}) is missing")
        _check_labelled_size(annotation_file, f"image id {im['id']}", path, (int(im["height"]), int(im["width"])))
        boxes, labels, crowd = [], [], []
        for ann in per_image[im["id"]]:
            if ann.get("iscrowd", 0) and not keep_crowd:
                counts["crowd"] += 1
                continue
            x, y, w, h = ann["bbox"]
            boxes.append([x, y, x + w, y + h])
            labels.append(index[ann["category_id"]])
            crowd.append(bool(ann.get("iscrowd", 0)))
        records.append(_record(int(im["id"]), path, (int(im["height"]), int(im["width"])), boxes, labels, crowd, counts))
    found = DetectionSet(records, [c["id"] for c in categories], [c["name"] for c in categories], counts)
    return _require_boxes(found, str(annotation_file))


# ----------------------------------------------------------------------------------- YOLO text
def read_yolo_names(names_file: str | Path) -> list[str]:
    """Class names from a YOLO ``names.yaml`` / ``data.yaml`` (``names:`` as a list or an index map)."""
    import yaml

    names_file = Path(names_file)
    try:
        names = yaml.safe_load(names_file.read_text())["names"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise InvalidDatasetError(f"{names_file}: no readable 'names:' entry ({err})") from None
    if isinstance(names, dict):
        if sorted(int(k) for k in names) != list(range(len(names))):
            raise InvalidDatasetError(f"{names_file}: 'names' keys must be 0..{len(names) - 1}")
        return [str(names[k]) for k in sorted(names, key=int)]
    return [str(n) for n in names]


def _yolo_lines(label_file: Path, size: tuple[int, int], num_classes: int) -> tuple[list, list]:
    h, w = size
    boxes, labels = [], []
    try:
        text = label_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidDatasetError(f"{label_file}: not a readable YOLO label text file ({err})") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise InvalidDatasetError(f"{label_file}:{lineno}: expected 5 fields 'class cx cy w h', got {len(fields)}")
        try:
            cls, cx, cy, bw, bh = int(fields[0]), *(float(f) for f in fields[1:])
        except ValueError:
            raise InvalidDatasetError(
                f"{label_file}:{lineno}: expected an integer class and 4 numbers 'class cx cy w h', got {line.strip()!r}"
            ) from None
        if not 0 <= cls < num_classes:
            raise InvalidDatasetError(f"{label_file}:{lineno}: unknown class id {cls} (names has {num_classes})")
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, bw, bh)):
            raise InvalidDatasetError(f"{label_file}:{lineno}: values must be normalised to [0, 1]: {line.strip()!r}")
        boxes.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
        labels.append(cls)
    return boxes, labels


def read_yolo(image_dir: str | Path, label_dir: str | Path, names: Sequence[str] | str | Path) -> DetectionSet:
    """Read YOLO labels: ``label_dir/<stem>.txt`` per image of ``image_dir`` (same relative path).

    An image without a label file is a valid negative (no boxes). A label file without an
    image is listed in :attr:`DetectionSet.orphans`. ``names`` is the class list or the path of
    a ``names.yaml``; category ids are the class indices themselves.
    """
    image_dir, label_dir = Path(image_dir), Path(label_dir)
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DatasetNotFoundError(f"YOLO folder {str(folder)!r} does not exist")
    names = read_yolo_names(names) if isinstance(names, (str, Path)) else [str(n) for n in names]
    counts: Counter = Counter()
    records, used = [], set()
    for path in list_image_files(image_dir):
        label_file = (label_dir / path.relative_to(image_dir)).with_suffix(".txt")
        size = _image_size(path)
        boxes, labels = [], []
        if label_file.is_file():
            used.add(label_file)
            boxes, labels = _yolo_lines(label_file, size, len(names))
        records.append(_record(len(records), path, size, boxes, labels, [False] * len(labels), counts))
    orphans = sorted(p for p in label_dir.rglob("*.txt") if p not in used)
    if not records:
        raise InvalidDatasetError(f"YOLO image folder {str(image_dir)!r} holds no image files")
    return _require_boxes(DetectionSet(records, list(range(len(names))), names, counts, orphans), f"the labels of {label_dir}")


# ----------------------------------------------------------------------------------- Pascal VOC
def read_voc(
    annotation_files: Sequence[str | Path],
    image_dir: str | Path,
    classes: Sequence[str] = VOC_CLASSES,
    keep_difficult: bool = True,
) -> DetectionSet:
    """Read Pascal VOC XML files (one per image; ``<filename>`` is relative to ``image_dir``).

    VOC pixel coordinates are 1-based and inclusive, so ``xmin - 1, ymin - 1, xmax, ymax`` gives
    the 0-based xyxy box that covers the same pixels. ``difficult`` boxes are kept and flagged in
    ``iscrowd`` (evaluation ignores them), or dropped and counted with ``keep_difficult=False``.
    """
    image_dir = Path(image_dir)
    index = {name: i for i, name in enumerate(classes)}
    counts: Counter = Counter()
    records = []
    for xml_file in map(Path, annotation_files):
        try:
            root = ET.parse(xml_file).getroot()
        except ET.ParseError as err:
            raise InvalidDatasetError(f"{xml_file}: not valid XML ({err})") from None
        except OSError as err:
            raise InvalidDatasetError(f"{xml_file}: cannot read the VOC annotation ({err})") from None
        filename = (root.findtext("filename") or "").strip()
        if not filename:
            raise InvalidDatasetError(f"{xml_file}: no <filename>: the VOC annotation names no image")
        try:
            size = (int(float(root.findtext("size/height") or "")), int(float(root.findtext("size/width") or "")))
        except (ValueError, OverflowError):
            size = (0, 0)
        if min(size) < 1:
            raise InvalidDatasetError(f"{xml_file}: <size> needs positive integer <width> and <height>")
        path = image_dir / filename
        if not path.is_file():
            raise InvalidDatasetError(f"{xml_file}: image file {str(path)!r} is missing")
        _check_labelled_size(xml_file, "<size>", path, size)
        boxes, labels, difficult = [], [], []
        for number, obj in enumerate(root.iter("object"), start=1):
            name = (obj.findtext("name") or "").strip()
            if name not in index:
                raise InvalidDatasetError(f"{xml_file}: unknown class {name!r} (object {number})")
            x1, y1, x2, y2 = _voc_box(xml_file, obj, f"object {number} ({name!r})")
            hard = (obj.findtext("difficult") or "0").strip() == "1"
            if hard and not keep_difficult:
                counts["difficult"] += 1
                continue
            boxes.append([x1 - 1, y1 - 1, x2, y2])
            labels.append(index[name])
            difficult.append(hard)
        records.append(_record(len(records), path, size, boxes, labels, difficult, counts))
    found = DetectionSet(records, list(range(len(classes))), list(classes), counts)
    if not records:
        return found  # no files given: the caller names the empty folder
    where = str(annotation_files[0]) if len(records) == 1 else f"the {len(records)} VOC files of {Path(annotation_files[0]).parent}"
    return _require_boxes(found, where)


def _voc_box(xml_file: Path, obj: ET.Element, what: str) -> tuple[float, float, float, float]:
    """``xmin, ymin, xmax, ymax`` of a VOC ``<object>`` as finite numbers, or one line naming file and object."""
    bb = obj.find("bndbox")
    if bb is None:
        raise InvalidDatasetError(f"{xml_file}: {what} has no <bndbox>")
    values = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        text = (bb.findtext(key) or "").strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InvalidDatasetError(f"{xml_file}: {what} has <{key}> {text!r} in its <bndbox>; expected a number")
        values.append(value)
    return values[0], values[1], values[2], values[3]
