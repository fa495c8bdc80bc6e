"""Detection data modules on real data: COCO128 letterboxed into the cache and mapped back."""

from __future__ import annotations

from pathlib import Path

import torch

from visionsuite.data import COCODetectionDataModule, YOLODetectionDataModule
from visionsuite.data.geometry import boxes_to_source


def test_coco_module_letterboxes_keeps_negatives_and_maps_boxes_back(data_root: Path, mirror: Path) -> None:
    dm = COCODetectionDataModule(data_dir=str(data_root), image_size=128, batch_size=8)
    dm.setup("fit")
    assert dm.num_classes == 80 and dm.category_ids[:3] == [1, 2, 3] and dm.category_ids[-1] == 90
    split = dm.decoded["train"]
    assert len(split) == 128 and len(dm.train_set) + len(dm.val_set) == 128 and dm.test_set is dm.val_set
    counts = split.box_offsets.diff()
    assert (counts == 0).any()  # COCO128 has images without boxes: kept as negatives
    records = {r.path.name: r for r in dm.detection_set.records}
    checked = 0
    for i, name in enumerate(split.files):
        record = records[Path(name).name]
        lo, hi = int(split.box_offsets[i]), int(split.box_offsets[i + 1])
        if hi == lo or hi - lo != len(record.boxes):
            continue  # boxes dropped by downscaling are counted elsewhere
        placement = dm.source_placement(name)
        assert placement is not None and placement.source_size == tuple(split.sizes[i].tolist())
        back = boxes_to_source(split.boxes[lo:hi], placement)
        scale = 1 / min(placement.scale_x, placement.scale_y)  # one cache pixel in source pixels
        assert torch.allclose(back, record.boxes, atol=scale), name
        checked += 1
    assert checked > 100


def test_yolo_and_coco_modules_cache_the_same_boxes(data_root: Path, mirror: Path) -> None:
    coco = COCODetectionDataModule(data_dir=str(data_root), image_size=128)
    yolo = YOLODetectionDataModule(data_dir=str(data_root), image_size=128)
    coco.setup("fit"), yolo.setup("fit")
    a, b = coco.decoded["train"], yolo.decoded["train"]
    assert coco.class_names == yolo.class_names and sorted(a.files) == sorted(b.files)
    order = [b.files.index(f) for f in a.files]
    for i, j in list(zip(range(len(a)), order))[:32]:
        boxes_a = a.boxes[int(a.box_offsets[i]) : int(a.box_offsets[i + 1])]
        boxes_b = b.boxes[int(b.box_offsets[j]) : int(b.box_offsets[j + 1])]
        assert torch.allclose(boxes_a, boxes_b, atol=0.05)
