"""Pictures, W&B payloads and COCO-results JSON, on real COCO128 annotations and images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionsuite.data.detection_formats import read_coco
from visionsuite.outputs.coco_results import coco_results, write_coco_results
from visionsuite.outputs.detection_pictures import draw_detections, wandb_boxes


@pytest.fixture(scope="module")
def coco_set(coco128: Path):
    return read_coco(coco128 / "annotations" / "instances_train2017.json", coco128 / "images" / "train2017")


def _perfect(coco_set, n: int):
    """Ground truth as predictions with decreasing scores (AP must come out 1)."""
    recs = coco_set.records[:n]
    dets = [{"boxes": r.boxes, "labels": r.labels, "scores": torch.linspace(1.0, 0.5, len(r.labels))} for r in recs]
    return recs, dets


def test_coco_results_round_trip_through_load_res(coco128: Path, coco_set, tmp_path: Path) -> None:
    from faster_coco_eval import COCO, COCOeval_faster

    recs, dets = _perfect(coco_set, 16)
    path = write_coco_results(tmp_path / "out" / "results.json", dets, [r.image_id for r in recs], coco_set.category_ids)
    gt = COCO(str(coco128 / "annotations" / "instances_train2017.json"))
    res = gt.loadRes(str(path))
    assert len(res.getAnnIds()) == sum(len(r.labels) for r in recs)
    # dataset ids, not contiguous indices: the first image (id 9) holds bowls (COCO id 51, index 45)
    first = res.loadAnns(res.getAnnIds(imgIds=[9]))
    assert {a["category_id"] for a in first} == {a["category_id"] for a in gt.loadAnns(gt.getAnnIds(imgIds=[9]))}
    ev = COCOeval_faster(gt, res, iouType="bbox")
    ev.params.imgIds = [r.image_id for r in recs]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[1] == pytest.approx(1.0)  # perfect boxes: AP 1


def test_coco_results_fields() -> None:
    det = {"boxes": torch.tensor([[10.0, 20.0, 40.0, 60.0]]), "labels": torch.tensor([2]), "scores": torch.tensor([0.75])}
    assert coco_results([det], [42], [1, 3, 7]) == [{"image_id": 42, "category_id": 7, "bbox": [10.0, 20.0, 30.0, 40.0], "score": 0.75}]


def test_draw_detections_marks_the_box_edges(coco_set) -> None:
    rec = coco_set.records[0]
    image = torch.from_numpy(np.array(Image.open(rec.path).convert("RGB"))).permute(2, 0, 1).contiguous()
    drawn = draw_detections(image, rec.boxes, rec.labels, coco_set.names, torch.full((len(rec.labels),), 0.9), width=2)
    assert drawn.dtype == torch.uint8 and drawn.shape == image.shape
    x1, y1, x2, y2 = rec.boxes[0].round().long().tolist()
    changed = (drawn != image).any(dim=0)
    assert changed[y1 + 20 : y2 - 20, x1].float().mean() > 0.5  # the left edge is drawn
    gray = draw_detections(image[:1], rec.boxes[:1], rec.labels[:1], coco_set.names)
    assert gray.shape == (3, *image.shape[1:])
    with pytest.raises(ValueError, match="uint8"):
        draw_detections(image.float(), rec.boxes, rec.labels, coco_set.names)


def test_wandb_payload_structure_is_accepted_by_wandb(coco_set) -> None:
    import wandb

    rec = coco_set.records[0]
    pred = {"boxes": rec.boxes[:2], "labels": rec.labels[:2], "scores": torch.tensor([0.9, 0.4])}
    payload = wandb_boxes(coco_set.names, prediction=pred, target={"boxes": rec.boxes, "labels": rec.labels})
    assert set(payload) == {"predictions", "ground_truth"}
    p0 = payload["predictions"]["box_data"][0]
    x1, y1, x2, y2 = rec.boxes[0].tolist()
    assert p0["position"] == {"minX": x1, "minY": y1, "maxX": x2, "maxY": y2} and p0["domain"] == "pixel"
    assert p0["class_id"] == int(rec.labels[0]) and p0["box_caption"] == f"{coco_set.names[rec.labels[0]]} 0.90"
    assert p0["scores"] == {"score": pytest.approx(0.9)}
    assert "scores" not in payload["ground_truth"]["box_data"][0]
    assert len(payload["ground_truth"]["box_data"]) == len(rec.labels)
    assert payload["predictions"]["class_labels"][0] == "person"
    json.dumps(payload)  # plain data: serialisable as is
    wandb.Image(np.zeros((*rec.size, 3), dtype=np.uint8), boxes=payload)  # wandb validates the structure
