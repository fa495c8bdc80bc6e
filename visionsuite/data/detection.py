"""Detection data modules: Fashion-MNIST scenes, COCO JSON, YOLO text and Pascal VOC XML.

All yield batches with ``bbox_xyxy``/``bbox_label`` (:mod:`visionsuite.data.batch`). Files of any
size are brought to ``image_size`` by the shared geometry (letterbox by default) when the cache
is built; images without boxes are kept (valid negatives); the joint on-device augmentation
(``hflip``, ``scale_range``, ``crop_padding``) moves boxes with the pixels and drops those left
without area. For prediction the modules also say where each image came from
(:meth:`DetectionDataModule.source_placement`, :meth:`~DetectionDataModule.image_id`,
``category_ids``), so detections can be written in the original image's pixels and ids.
"""

from __future__ import annotations

import hashlib
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch

from visionsuite.errors import DataWarning

from .cache import DecodedSplit, load_split
from .datasets import TensorImageDataset
from .dense import DenseTargetDataModule, Sample
from .detection_formats import DetectionSet, read_coco, read_voc, read_yolo
from .errors import DatasetNotFoundError, InvalidDatasetError
from .geometry import Placement, fit_sample, plan
from .images import load_image, skipped_message
from .mosaic import MosaicAffineOptions
from .sources import mirror_path


class _PredictFolderInSourcePixels:
    """``predict_dir`` images fitted exactly as the training images were (``resize_mode``), each
    one's original size kept, so detections can be mapped back into it."""

    predict_dir: Path | None
    image_size: tuple[int, int]
    in_chans: int
    resize_mode: Any

    @property
    def _predict_sizes(self) -> dict[str, tuple[int, int]]:
        """Original (H, W) of each ``predict_dir`` file, filled when the predict set is built."""
        return self.__dict__.setdefault("_predict_source_sizes", {})

    def source_placement(self, path: str) -> Placement | None:
        """How the predict image ``path`` was fitted into ``image_size`` (``None``: unknown, left as is)."""
        size = self._predict_sizes.get(path)
        return None if size is None else plan(size, self.image_size, self.resize_mode)[1]

    def image_id(self, path: str) -> int:
        """A predict image's position in ``predict_dir`` (0 where unknown)."""
        return list(self._predict_sizes).index(path) if path in self._predict_sizes else 0

    def _predict_folder_set(self) -> TensorImageDataset:
        """``predict_dir`` fitted exactly as the training images were (``resize_mode``), sizes kept."""
        folder, files = self._predict_files()
        images, paths, bad = [], [], []
        for file in files:
            try:
                image = torch.from_numpy(load_image(file, self.in_chans, None))
            except (OSError, ValueError):
                bad.append(file.relative_to(folder).as_posix())
                continue
            images.append(fit_sample(image, self.image_size, self.resize_mode).image)
            paths.append(str(file))
            self._predict_sizes[str(file)] = (int(image.shape[-2]), int(image.shape[-1]))
        if bad:
            warnings.warn(skipped_message(bad, f"predict_dir {folder}"), stacklevel=3, category=DataWarning)
        if not images:
            raise InvalidDatasetError(f"predict_dir {str(folder)!r} holds no readable image files")
        return TensorImageDataset(torch.stack(images), paths=paths)


class DetectionDataModule(_PredictFolderInSourcePixels, MosaicAffineOptions, DenseTargetDataModule):
    """Box data read by one of :mod:`~visionsuite.data.detection_formats`' readers (subclasses
    implement :meth:`read`). There is one stored split; validation and test are held out of it
    (``val_size``, ``test_size``, seeded)."""

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)
    IMAGE_SIZE = (320, 320)
    IN_CHANS = 3

    def __init__(self, val_size: int | float = 0.2, test_size: int | float = 0, **kwargs: Any) -> None:
        super().__init__(val_size=val_size, test_size=test_size, **kwargs)

    def read(self) -> DetectionSet:
        """The annotations (fetching the data first if needed)."""
        raise NotImplementedError

    def _build_sets(self) -> None:
        """With ``test_size`` 0 (small sets such as COCO128), test evaluates the validation images."""
        super()._build_sets()
        if self.test_size == 0:
            self.test_set = self.val_set

    def source_key(self) -> str:
        """What identifies the annotations (their paths): part of the cache folder's name."""
        raise NotImplementedError

    @cached_property
    def detection_set(self) -> DetectionSet:
        found = self.read()
        if any(found.counts.values()):
            counted = ", ".join(f"{n} {why}" for why, n in sorted(found.counts.items()) if n)
            warnings.warn(f"{type(self).__name__}: boxes clipped or dropped while reading: {counted}", stacklevel=2, category=DataWarning)
        return found

    @property
    def class_names(self) -> list[str]:
        return list(self.detection_set.names)

    @property
    def category_ids(self) -> list[int]:
        """The dataset's own id of each class index (COCO: 1..90 with gaps)."""
        return list(self.detection_set.category_ids)

    @property
    def cache_dir(self) -> Path:
        digest = hashlib.sha1(f"{type(self).__name__}:{self.source_key()}".encode()).hexdigest()[:8]
        base = super().cache_dir
        return base.with_name(f"{base.name}-{digest}")

    def cache_splits(self) -> tuple[str, ...]:
        return ("train",)

    def samples(self, split: str) -> tuple[Path, list[Sample]]:
        records = self.detection_set.records
        base = Path(_common_root([r.path for r in records]))
        return base, [Sample(r.path, boxes=r.boxes, box_labels=r.labels) for r in records]

    # -- where predictions belong -----------------------------------------------------------
    @cached_property
    def _image_root(self) -> Path:
        """The folder the split images are named relative to (the deepest one holding them all)."""
        return Path(_common_root([r.path for r in self.detection_set.records]))

    @cached_property
    def _ids_by_file(self) -> dict[str, int]:
        base = self._image_root
        return {r.path.relative_to(base).as_posix(): r.image_id for r in self.detection_set.records}

    def source_file(self, path: str) -> Path | None:
        """The original image file of a predict batch's name: a ``predict_dir`` file as it is, a
        split image (named relative to the annotations' image folder) under that folder."""
        if Path(path).is_file():
            return Path(path)
        if path in self._ids_by_file:
            found = self._image_root / path
            return found if found.is_file() else None
        return None

    def source_placement(self, path: str) -> Placement | None:
        """How the image ``path`` (a predict batch's name) was fitted into ``image_size``."""
        size = self._predict_sizes.get(path)
        if size is None and self.decoded is not None and "train" in self.decoded:
            split = self.decoded["train"]
            if path in split.files and split.sizes is not None:
                size = tuple(split.sizes[split.files.index(path)].tolist())
        if size is None:
            return None
        return plan(size, self.image_size, self.resize_mode)[1]

    def image_id(self, path: str) -> int:
        """The dataset's image id of ``path`` (COCO: ``images[].id``), else its position in the predict set."""
        if path in self._ids_by_file:
            return self._ids_by_file[path]
        return super().image_id(path)

def _common_root(paths: list[Path]) -> str:
    """The deepest folder holding every path (file names in the cache are relative to it)."""
    import os

    if not paths:
        raise InvalidDatasetError("the annotations list no images")
    return os.path.commonpath([str(p.parent) for p in paths])


class _COCO128Source:
    """The mirror's ``coco128/coco128.tar.gz`` (one split of 128 images, COCO JSON + YOLO text),
    extracted once into ``data_dir/coco128/``."""

    data_dir: Path

    def coco128_root(self) -> Path:
        root = self.data_dir / "coco128" / "coco128"
        if (root / "names.yaml").is_file():
            return root
        archive = mirror_path("coco128", "coco128.tar.gz")
        if archive is None:
            raise DatasetNotFoundError("COCO128 not found: give the annotation paths, or provide the dataset mirror")
        from .archive import safe_extract

        safe_extract(archive, self.data_dir / "coco128")
        return root


class COCODetectionDataModule(_COCO128Source, DetectionDataModule):
    """COCO ``instances_*.json`` + an image folder; default: the mirror's COCO128 (seeded 80/20 split)."""

    dataset_name = "coco_detection"

    def __init__(
        self, annotation_file: str | None = None, image_dir: str | None = None, keep_crowd: bool = False, **kwargs: Any
    ) -> None:
        """
        Args:
            annotation_file: the COCO JSON; default COCO128's ``instances_train2017.json``.
            image_dir: folder the JSON's ``file_name`` entries are relative to.
            keep_crowd: keep ``iscrowd`` boxes (else they are dropped and counted).
            **kwargs: every option of :class:`DetectionDataModule`.
        """
        super().__init__(**kwargs)
        self.annotation_file, self.image_dir, self.keep_crowd = annotation_file, image_dir, keep_crowd

    def source_key(self) -> str:
        return f"{self.annotation_file}|{self.image_dir}|{self.keep_crowd}"

    def read(self) -> DetectionSet:
        if self.annotation_file is None:
            root = self.coco128_root()
            return read_coco(root / "annotations" / "instances_train2017.json", root / "images" / "train2017", self.keep_crowd)
        return read_coco(self.annotation_file, self.image_dir or Path(self.annotation_file).parent, self.keep_crowd)


class YOLODetectionDataModule(_COCO128Source, DetectionDataModule):
    """YOLO text labels (``class cx cy w h`` normalised) + ``names.yaml``; default: COCO128's."""

    dataset_name = "yolo_detection"

    def __init__(
        self, image_dir: str | None = None, label_dir: str | None = None, names: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        """
        Args:
            image_dir: the images; ``label_dir``: one ``<stem>.txt`` per image (same relative path).
            names: a ``names.yaml``/``data.yaml`` path or the class list.
            **kwargs: every option of :class:`DetectionDataModule`.
        """
        super().__init__(**kwargs)
        self.image_dir, self.label_dir, self.names = image_dir, label_dir, names

    def source_key(self) -> str:
        return f"{self.image_dir}|{self.label_dir}|{self.names}"

    def read(self) -> DetectionSet:
        if self.image_dir is None:
            root = self.coco128_root()
            return read_yolo(root / "images" / "train2017", root / "labels" / "train2017", root / "names.yaml")
        if self.label_dir is None or self.names is None:
            raise InvalidDatasetError("YOLODetectionDataModule needs label_dir and names with image_dir")
        return read_yolo(self.image_dir, self.label_dir, self.names)


class VOCDetectionDataModule(DetectionDataModule):
    """Pascal VOC XML annotations (one file per image) + an image folder."""

    dataset_name = "voc_detection"

    def __init__(self, annotation_dir: str, image_dir: str, classes: list[str] | None = None, **kwargs: Any) -> None:
        """
        Args:
            annotation_dir: folder of ``*.xml`` files; ``image_dir``: what their ``<filename>`` is relative to.
            classes: class names in index order (default: the 20 VOC classes).
            **kwargs: every option of :class:`DetectionDataModule`.
        """
        super().__init__(**kwargs)
        self.annotation_dir, self.image_dir, self.classes = annotation_dir, image_dir, classes

    def source_key(self) -> str:
        return f"{self.annotation_dir}|{self.image_dir}|{self.classes}"

    def read(self) -> DetectionSet:
        files = sorted(Path(self.annotation_dir).glob("*.xml"))
        if not files:
            raise DatasetNotFoundError(f"no VOC *.xml files in {self.annotation_dir!r}")
        if self.classes is None:
            return read_voc(files, self.image_dir)
        return read_voc(files, self.image_dir, self.classes)


class FashionMNISTScenesDataModule(_PredictFolderInSourcePixels, MosaicAffineOptions, DenseTargetDataModule):
    """Fashion-MNIST items composited onto larger black canvases (:mod:`visionsuite.data.scenes`).

    Training scenes use items of the training split (validation scenes are held out of them),
    test scenes items of the test split. The scenes are built once per setting and cached.
    """

    dataset_name = "fashion_mnist_scenes"
    CLASSES = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip
    #: pixel statistics of the default scenes (96x96, 1-4 items of 28 px): mostly black canvas.
    MEAN = (0.06,)
    STD = (0.2,)
    IMAGE_SIZE = (96, 96)
    IN_CHANS = 1
    category_ids: ClassVar[list[int]] = list(range(10))

    def __init__(
        self,
        num_train_scenes: int = 8000,
        num_test_scenes: int = 1000,
        canvas_size: int | tuple[int, int] = 96,
        items_per_image: tuple[int, int] = (1, 4),
        scale_range_px: tuple[int, int] = (28, 28),
        non_overlapping: bool = True,
        scene_seed: int = 0,
        val_size: int | float = 1000,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            num_train_scenes: scenes made of training items (validation is held out of them).
            num_test_scenes: scenes made of test items.
            canvas_size: scene (H, W) (an int: square).
            items_per_image: inclusive range of items per scene.
            scale_range_px: inclusive range of an item's pasted side in pixels (28: native).
            non_overlapping: items never overlap (else blended by a pixel-wise maximum).
            scene_seed: seed of the scene generator (same arguments → same scenes, byte for byte).
            val_size: validation scenes held out of the training scenes.
            **kwargs: every option of :class:`DenseTargetDataModule` (``hflip``, ``scale_range``, …).
        """
        size = (canvas_size, canvas_size) if isinstance(canvas_size, int) else tuple(canvas_size)
        super().__init__(image_size=size, val_size=val_size, **kwargs)
        self.num_train_scenes, self.num_test_scenes = num_train_scenes, num_test_scenes
        self.items_per_image, self.scale_range_px = tuple(items_per_image), tuple(scale_range_px)
        self.non_overlapping, self.scene_seed = non_overlapping, scene_seed

    @property
    def cache_dir(self) -> Path:
        (h, w), (a, b), (s, t) = self.image_size, self.items_per_image, self.scale_range_px
        overlap = "sep" if self.non_overlapping else "overlap"
        name = f"cache-{h}x{w}-n{self.num_train_scenes}-{self.num_test_scenes}-items{a}-{b}-px{s}-{t}-{overlap}-seed{self.scene_seed}"
        return self.dataset_dir / name

    def _decode(self, splits: list[str]) -> dict[str, DecodedSplit]:
        from visionsuite.data.scenes import make_scenes

        from .mnist import FashionMNISTDataModule

        items = FashionMNISTDataModule(data_dir=str(self.data_dir))
        items._build_caches()
        out = {}
        for split in splits:
            source = load_split(items.cache_path(split))
            count = self.num_train_scenes if split == "train" else self.num_test_scenes
            seed = self.scene_seed + (0 if split == "train" else 1)
            scenes = make_scenes(
                source.images, source.labels, count, canvas_size=self.image_size, items_per_image=self.items_per_image,
                scale_range=self.scale_range_px, non_overlapping=self.non_overlapping, seed=seed,
            )  # fmt: skip
            if scenes.dropped:
                warnings.warn(f"{split}: {scenes.dropped} item(s) found no free place in their scene", stacklevel=2, category=DataWarning)
            out[split] = DecodedSplit(
                images=scenes.images, classes=list(self.CLASSES), boxes=scenes.boxes, box_labels=scenes.labels,
                box_offsets=scenes.offsets, sizes=torch.tensor([list(self.image_size)] * count, dtype=torch.int64),
            )  # fmt: skip
        return out

    def image_id(self, path: str) -> int:
        """A test scene's index (predict names are ``test/<index>``); a ``predict_dir`` file's position."""
        tail = path.rsplit("/", 1)[-1]
        return int(tail) if path.startswith("test/") and tail.isdigit() else super().image_id(path)
