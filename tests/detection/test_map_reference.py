"""The suite's mAP against pycocotools' own ``COCOeval``, on COCO128's real boxes.

The ground truth reaches the two sides by two roads: pycocotools reads the mirror's JSON itself;
the suite reads it with :func:`read_coco` (crowd boxes kept and flagged) and evaluates with
:func:`detection_metrics`. The predictions are the same list for both: jittered copies of the true
boxes (some with the wrong class), and false positives scattered over each photograph, with
random scores. COCO's protocol (101-point interpolation, crowd regions neither hits nor misses,
100 detections per image, its float64 IoU and recall thresholds) is what both must apply: with
torchmetrics' float32 thresholds the suite read 0.3072 mAP@.5 here against pycocotools' 0.3074.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from visionsuite.data.detection_formats import read_coco
from visionsuite.models.detection.metrics import detection_metrics


def _detections(annotations: dict, seed: int = 0) -> list[dict]:
    """COCO result entries (``image_id, category_id, bbox [x, y, w, h], score``)."""
    rng = np.random.default_rng(seed)
    categories = [c["id"] for c in annotations["categories"]]
    sizes = {im["id"]: (im["width"], im["height"]) for im in annotations["images"]}
    out = []
    for ann in annotations["annotations"]:
        x, y, w, h = ann["bbox"]
        for _ in range(int(rng.integers(1, 3))):
            dx, dy = rng.normal(0, 0.15 * w), rng.normal(0, 0.15 * h)
            sw, sh = np.exp(rng.normal(0, 0.2, size=2))
            category = ann["category_id"] if rng.random() > 0.2 else int(rng.choice(categories))
            out.append({"image_id": ann["image_id"], "category_id": category, "bbox": [x + dx, y + dy, w * sw, h * sh],
                        "score": float(rng.random())})  # fmt: skip
    for image_id, (width, height) in sizes.items():
        for _ in range(3):
            w, h = rng.uniform(10, width / 2), rng.uniform(10, height / 2)
            out.append({"image_id": image_id, "category_id": int(rng.choice(categories)),
                        "bbox": [rng.uniform(0, width - w), rng.uniform(0, height - h), w, h], "score": float(rng.random())})  # fmt: skip
    for d in out:  # inside the photograph, as a detector's boxes are
        width, height = sizes[d["image_id"]]
        x0, y0 = max(0.0, d["bbox"][0]), max(0.0, d["bbox"][1])
        x1, y1 = min(float(width), d["bbox"][0] + d["bbox"][2]), min(float(height), d["bbox"][1] + d["bbox"][3])
        d["bbox"] = [x0, y0, max(x1 - x0, 1.0), max(y1 - y0, 1.0)]
    return out


def _pycocotools(annotation_file: Path, detections: list[dict]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """COCOeval's 12 summary numbers and its per-category AP (area all, 100 detections)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotation_file))
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"][:, :, :, 0, 2]  # [IoU, recall, category], area all, 100 dets
    per_class = np.array([p[p > -1].mean() if (p > -1).any() else -1.0 for p in np.moveaxis(precision, 2, 0)])
    return evaluation.stats, per_class, list(evaluation.params.catIds)


def _suite(annotation_file: Path, image_dir: Path, detections: list[dict]) -> dict[str, torch.Tensor]:
    data = read_coco(annotation_file, image_dir, keep_crowd=True)
    index = {cid: k for k, cid in enumerate(data.category_ids)}
    by_image: dict[int, list[dict]] = {}
    for d in detections:
        by_image.setdefault(d["image_id"], []).append(d)
    metric = detection_metrics()
    for record in data.records:
        found = by_image.get(record.image_id, [])
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in found)], dtype=torch.float32)
        metric.update(
            [{"boxes": boxes.reshape(-1, 4), "scores": torch.tensor([d["score"] for d in found]),
              "labels": torch.tensor([index[d["category_id"]] for d in found], dtype=torch.long)}],
            [{"boxes": record.boxes, "labels": record.labels, "iscrowd": record.iscrowd}],
        )  # fmt: skip
    result = metric.compute()
    result["category_ids"] = torch.tensor([data.category_ids[int(k)] for k in result["classes"].reshape(-1)])
    return result


def test_map_equals_pycocotools_on_coco128(coco128: Path) -> None:
    annotation_file = coco128 / "annotations" / "instances_train2017.json"
    annotations = json.loads(annotation_file.read_text())
    assert any(a.get("iscrowd") for a in annotations["annotations"])  # the crowd rule is exercised
    detections = _detections(annotations)
    stats, per_class, category_ids = _pycocotools(annotation_file, detections)
    ours = _suite(annotation_file, coco128 / "images" / "train2017", detections)

    assert 0.05 < stats[0] < 0.95  # neither trivial nor perfect: the comparison can tell numbers apart
    assert float(ours["map"]) == pytest.approx(stats[0], abs=1e-6)
    assert float(ours["map_50"]) == pytest.approx(stats[1], abs=1e-6)
    assert float(ours["map_75"]) == pytest.approx(stats[2], abs=1e-6)
    reference = dict(zip(category_ids, per_class.tolist(), strict=True))
    compared = 0
    for cid, ap in zip(ours["category_ids"].tolist(), ours["map_per_class"].reshape(-1).tolist(), strict=True):
        if ap >= 0:  # a category with ground truth
            assert ap == pytest.approx(reference[cid], abs=1e-6), f"category {cid}"
            compared += 1
    assert compared >= 50  # COCO128 has ground truth in most of the 80 categories
