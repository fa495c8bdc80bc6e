"""``visionsuite convert``: box labels from one format to another (COCO JSON, YOLO text, Pascal VOC XML).

Reading is :mod:`visionsuite.data.detection_formats` (the checks training applies: a bad line or
object is refused in one line naming the file, bad boxes are clipped or dropped and counted),
writing is :mod:`visionsuite.data.detection_writers` (nothing is written when a destination file
exists, unless ``--overwrite``). Class names are carried and category ids mapped: COCO's own ids
go into the YOLO/VOC names file as ``category_ids`` and come back from it. No Lightning is
imported, so the command starts at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from visionsuite.core.tool_parser import ToolParser
from visionsuite.data.detection_formats import (
    VOC_CLASSES,
    DetectionSet,
    read_coco,
    read_voc,
    read_yolo,
    read_yolo_names,
)
from visionsuite.data.detection_writers import (
    COCO_FILE,
    IMAGE_MODES,
    IMAGES_DIR,
    VOC_ANNOTATIONS,
    WRITERS,
    YOLO_LABELS,
    YOLO_NAMES,
    read_category_ids,
)
from visionsuite.data.errors import DatasetNotFoundError, InvalidDatasetError
from visionsuite.errors import ConfigError

FORMATS = ("coco", "yolo", "voc")

EPILOG = """\
SRC, by --from:
  coco  the COCO JSON file (or a folder holding annotations.json). Images: --image_dir, the
        folder its file_name entries are relative to; default images/ beside the JSON if it
        exists, else the JSON's own folder.
  yolo  a dataset root holding labels/ and images/ (matching relative paths, as in COCO128),
        or a labels folder itself, whose images are --image_dir, default the same path with its
        last 'labels' part replaced by 'images' (as Ultralytics pairs them). Names: --names,
        default data.yaml or names.yaml of the root (the folder holding labels/).
  voc   a folder of *.xml files, or a VOC root holding Annotations/. Images: --image_dir, the
        folder the <filename> entries are relative to; default JPEGImages/ or images/ of the
        root (the folder holding the *.xml folder). Classes: --names, default names.yaml of
        either folder, else the 20 Pascal VOC classes.
--names FILE: a names.yaml / data.yaml ('names:' list or index map, optional 'category_ids:'),
  or a .txt file with one class name per line, in index order.

DST, a folder, by --to:
  coco  DST/annotations.json
  yolo  DST/labels/<image path>.txt (empty for an image without boxes) and DST/data.yaml
  voc   DST/Annotations/<stem>.xml and DST/names.yaml
  --images none (default) refers to the images where they are: read the output back with
  --image_dir set to the folder it prints; link|copy puts symlinks|copies in DST/images/.
  Nothing is written when one of the files exists already, unless --overwrite.

Counted, not fatal (the last line says how many): COCO iscrowd boxes (dropped, as the YOLO
export of COCO does), boxes without area once clipped to the image (dropped), boxes reaching
outside the image (clipped), images without boxes (kept: valid negatives), YOLO label files
without an image (not used). Refused in one line naming the file and line or object (exit 2):
a YOLO class id outside the names or a value outside [0, 1], a VOC class not in the list, an
annotation whose image file is missing, malformed JSON/XML/lines, a set without any box.
"""

#: why boxes were dropped, by the readers' count keys (``clipped`` is reported apart: those are kept).
SKIP_REASONS = {
    "crowd": "COCO iscrowd boxes",
    "degenerate": "boxes without area inside the image",
    "difficult": "VOC difficult boxes",
}


@dataclass
class Source:
    """What was read: the set, the folder its images are in, and a description for the first line."""

    found: DetectionSet
    image_dir: Path
    what: str


def build_parser() -> argparse.ArgumentParser:
    parser = ToolParser(
        prog="visionsuite convert",
        description="Convert detection labels between COCO JSON, YOLO text and Pascal VOC XML.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="source_format", required=True, choices=FORMATS, help="format of SRC")
    parser.add_argument("--to", dest="target_format", required=True, choices=FORMATS, help="format to write in DST")
    parser.add_argument("src", metavar="SRC", help="the labels to read (see below, per format)")
    parser.add_argument("dst", metavar="DST", help="the folder to write into (created if needed)")
    parser.add_argument("--images", choices=IMAGE_MODES, default="none",
                        help="none: refer to the images where they are (default); link: symlink them into DST/images/;"
                        " copy: copy them there")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace files that exist in DST")
    parser.add_argument("--names", metavar="FILE", help="class names of a YOLO or VOC source (default: see below)")
    parser.add_argument("--image_dir", metavar="DIR", help="the source's image folder (default: see below)")
    return parser


def read_names(names_file: Path) -> tuple[list[str], list[int] | None]:
    """Class names (and ``category_ids``, when the file has them) from a names YAML or a one-per-line .txt."""
    if names_file.suffix.lower() == ".txt":
        try:
            names = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidDatasetError(f"{names_file}: not a readable text file of class names ({err})") from None
        if len(set(names)) != len(names):
            raise InvalidDatasetError(f"{names_file}: a class name appears twice; names must be unique")
        return names, None
    if not names_file.is_file():
        raise DatasetNotFoundError(f"names file {str(names_file)!r} does not exist")
    names = read_yolo_names(names_file)
    return names, read_category_ids(names_file, len(names))


def _first(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


def _missing_image_hint(err: InvalidDatasetError, defaulted: bool) -> InvalidDatasetError:
    if defaulted and "is missing" in str(err):
        return InvalidDatasetError(f"{err}; pass --image_dir, the folder the annotations' image paths are relative to")
    return err


def _read_coco(src: Path, image_dir: str | None, names: str | None) -> Source:
    if names is not None:
        raise ConfigError("--names is for --from yolo or voc: a COCO file names its own categories")
    json_file = src / COCO_FILE if src.is_dir() else src
    images = Path(image_dir) if image_dir else _first(json_file.parent / IMAGES_DIR) or json_file.parent
    try:
        found = read_coco(json_file, images)
    except InvalidDatasetError as err:
        raise _missing_image_hint(err, image_dir is None) from None
    return Source(found, images, f"{json_file} (images in {images})")


def _read_yolo(src: Path, image_dir: str | None, names: str | None) -> Source:
    if (src / YOLO_LABELS).is_dir():
        root, label_dir, default_images = src, src / YOLO_LABELS, src / IMAGES_DIR
    else:
        parts = src.parts
        i = max((k for k, part in enumerate(parts) if part == YOLO_LABELS), default=None)
        label_dir = src
        root = Path(*parts[:i]) if i is not None else src.parent
        default_images = Path(*parts[:i], IMAGES_DIR, *parts[i + 1 :]) if i is not None else None
    images = Path(image_dir) if image_dir else default_images
    if images is None:
        raise ConfigError(f"SRC {str(src)!r} holds no labels/ folder and has no 'labels' part: pass --image_dir")
    names_file = Path(names) if names else _first(root / YOLO_NAMES, root / "names.yaml")
    if names_file is None:
        raise ConfigError(f"no {YOLO_NAMES} or names.yaml in {str(root)!r}: pass --names FILE with the class names")
    class_names, ids = read_names(names_file)
    found = read_yolo(images, label_dir, class_names)
    if ids is not None:
        found.category_ids = ids
    return Source(found, images, f"{label_dir} (images in {images}, names from {names_file})")


def _read_voc(src: Path, image_dir: str | None, names: str | None) -> Source:
    root, folder = (src, src / VOC_ANNOTATIONS) if (src / VOC_ANNOTATIONS).is_dir() else (src.parent, src)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"VOC annotation folder {str(folder)!r} does not exist")
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise DatasetNotFoundError(f"no VOC *.xml files in {str(folder)!r}")
    images = Path(image_dir) if image_dir else _first(root / "JPEGImages", root / IMAGES_DIR)
    if images is None:
        raise ConfigError(f"no JPEGImages/ or images/ in {str(root)!r}: pass --image_dir, the folder of the images")
    names_file = Path(names) if names else _first(folder / "names.yaml", root / "names.yaml")
    class_names, ids = read_names(names_file) if names_file else (list(VOC_CLASSES), None)
    where = f"names from {names_file}" if names_file else "the 20 Pascal VOC classes"
    try:
        found = read_voc(files, images, class_names)
    except InvalidDatasetError as err:
        if names is None and "unknown class" in str(err):
            raise InvalidDatasetError(
                f"{err}; the classes are {where}: pass --names FILE (one class per line, or a names.yaml)"
            ) from None
        raise _missing_image_hint(err, image_dir is None) from None
    if ids is not None:
        found.category_ids = ids
    return Source(found, images, f"{folder} ({len(files)} files, images in {images}, {where})")


READERS: dict[str, Callable[[Path, str | None, str | None], Source]] = {
    "coco": _read_coco,
    "yolo": _read_yolo,
    "voc": _read_voc,
}


def summary(found: DetectionSet, target_format: str) -> str:
    """The closing line: images, boxes, negatives, and every box or file left out, with why."""
    boxes = sum(len(r.boxes) for r in found.records)
    negatives = sum(1 for r in found.records if len(r.boxes) == 0)
    parts = [f"converted {len(found.records)} images, {boxes} boxes ({negatives} images without boxes, kept as valid negatives)"]
    skipped = [f"{n} {SKIP_REASONS.get(why, why)}" for why, n in sorted(found.counts.items()) if n and why != "clipped"]
    parts.append("skipped: " + (", ".join(skipped) if skipped else "none"))
    parts.append(f"clipped to the image: {found.counts.get('clipped', 0)} boxes")
    if found.orphans:
        shown = ", ".join(p.name for p in found.orphans[:3]) + (", …" if len(found.orphans) > 3 else "")
        parts.append(f"{len(found.orphans)} label files without an image, not used ({shown})")
    flagged = sum(int(r.iscrowd.sum()) for r in found.records)
    if flagged and target_format != "voc":
        parts.append(f"{flagged} VOC difficult boxes written as ordinary boxes ({target_format} has no 'difficult')")
    return "; ".join(parts)


def main(args: list[str]) -> int:
    opts = build_parser().parse_args(args)
    source = READERS[opts.source_format](Path(opts.src), opts.image_dir, opts.names)
    found = source.found
    print(f"read {source.what}: {len(found.records)} images, {found.num_classes} classes")
    written = WRITERS[opts.target_format](
        found, opts.dst, image_root=source.image_dir, images=opts.images, overwrite=opts.overwrite
    )
    for what, path in written.outputs:
        print(f"wrote {path} ({what})")
    if opts.images == "none":
        print(f"images left in place: read the output back with --image_dir {written.image_dir}")
    print(summary(found, opts.target_format))
    return 0
