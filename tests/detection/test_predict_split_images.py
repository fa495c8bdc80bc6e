"""``predict`` without a ``predict_dir`` scores the data set's own split images: for a file-based
set (COCO here) each is drawn on the original photo at its own size, its boxes mapped back through
the letterbox (#30), as ``predict_dir`` images are."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from visionsuite.data import COCODetectionDataModule
from visionsuite.outputs.detection_pictures import display_zoom
from visionsuite.outputs.detection_writer import DetectionPredictionWriter


def test_a_split_image_is_drawn_on_its_original_photo(tmp_path: Path) -> None:
    images = tmp_path / "photos"
    images.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (64, 32), (40, 40, 40)).save(images / name)  # 64 wide, 32 high: letterboxed into 32x32
    coco = {"images": [{"id": 1, "file_name": "a.png", "height": 32, "width": 64},
                       {"id": 2, "file_name": "b.png", "height": 32, "width": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 20], "iscrowd": 0}],
            "categories": [{"id": 1, "name": "box"}]}  # fmt: skip
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    dm = COCODetectionDataModule(annotation_file=str(tmp_path / "instances.json"), image_dir=str(images),
                                 data_dir=str(tmp_path / "data"), image_size=[32, 32], val_size=1, batch_size=2)  # fmt: skip
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    path = batch["path"][0]
    assert not Path(path).is_file() and dm.source_file(path) == images / path  # named relative to the image folder
    # a box over the left half of the letterboxed 32x32 image (the photo fills rows 8..24)
    det = {"boxes": torch.tensor([[0.0, 8.0, 16.0, 24.0]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}
    prediction = {"paths": [path], "detections": [det], "images": torch.zeros(1, 3, 32, 32, dtype=torch.uint8)}
    trainer = SimpleNamespace(datamodule=dm, default_root_dir=str(tmp_path / "run"))
    writer = DetectionPredictionWriter()
    writer.write_on_batch_end(trainer, None, prediction, None, None, 0, 0)
    drawn = np.asarray(Image.open(tmp_path / "run" / "predictions" / Path(path).with_suffix(".png")))
    zoom = display_zoom(32, 64)  # a photo this small is enlarged (x8) so its labels are legible
    assert zoom == 8 and drawn.shape[:2] == (32 * zoom, 64 * zoom)  # the photo (times the zoom), not the 32x32 batch image
    changed = (drawn != 40).any(-1)
    assert changed[:, 31 * zoom : 33 * zoom].any(1).sum() >= 24 * zoom  # the box's right edge: x 32 of the photo, top to bottom
    assert not changed[16 * zoom :, 40 * zoom :].any()  # nothing right of it (below its label)
    assert writer._entries[0][1]["boxes"].tolist() == [[0.0, 0.0, 32.0, 32.0]]  # and the JSON gets photo pixels
