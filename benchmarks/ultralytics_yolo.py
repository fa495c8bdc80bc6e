"""Ultralytics' YOLOv8n from scratch on the benchmark's Fashion-MNIST scenes, scored by the suite.

The detector users already like, trained the way a user of it would: ``YOLO("yolov8n.yaml")``
(built from its yaml, so no weights are downloaded), Ultralytics' own trainer with its defaults
(optimiser ``auto``, chosen for the epochs the budget allows: see ``PLANNED_EPOCHS``; mosaic +
random affine + HSV + flip augmentation, ``close_mosaic``, EMA of weights), its ``time`` budget (it re-plans the epochs and the learning-rate schedule to end on
the budget, as the suite's benchmark loop does), ``imgsz`` 96 and batch 32 as the suite's heads.
Images are held in RAM (``cache="ram"``), as the suite holds its uint8 cache, and Ultralytics trains
on as many threads as the suite (``torch.get_num_threads()``; its own default on a CPU is one fewer
than the cores).

The scenes go to disk through the suite's own writer (:func:`visionsuite.data.detection_writers.write_yolo`):
PNG images under ``images/train`` and ``images/test``, YOLO label files under ``labels/``, which
Ultralytics reads. Scoring is the suite's: the EMA weights Ultralytics trained (held in memory,
so no checkpoint is unpickled here), Ultralytics' own validation post-processing (NMS at
``conf`` 0.001, IoU 0.7, multi-label: its defaults for validation) on the same 1,000 test scenes,
then :func:`visionsuite.models.detection.metrics.detection_metrics` (COCO mAP), exactly as the
suite's heads are scored. Ultralytics' own validation of the same weights (its ``val`` split is
the test scenes, validated once, at the end: ``val=False``) is reported beside it as a cross-check
of the two mAP implementations. Ultralytics' final validation re-reads its ``best.pt`` with its own
loader; that is Ultralytics' code reading the file it has just written, not the suite's.

Needs ``pip install ultralytics`` (measured with 8.4.190); the suite does not depend on it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from visionsuite.data import FashionMNISTScenesDataModule
from visionsuite.data.detection_formats import DetectionRecord, DetectionSet
from visionsuite.data.detection_writers import write_yolo
from visionsuite.models.detection.metrics import detection_metrics

#: Ultralytics' validation defaults (``cfg/default.yaml``: ``conf`` for val, ``iou``); 100 detections
#: per image, as the suite's heads keep and as COCO's mAP counts.
CONF, IOU, MAX_DET = 0.001, 0.7, 100
#: the suite's heads' batch in the benchmark.
BATCH = 32
#: the epochs a 15-minute budget allows (~7 at ~64 img/s on this 2-core CPU); ``time`` re-plans
#: them after the first epoch, but ``optimizer="auto"`` chooses from them before it: MuSGD for
#: more than 10,000 optimiser steps (Ultralytics' default ``epochs=100`` here), AdamW below.
#: MuSGD trains at ~3.5 img/s on this CPU (its Newton-Schulz step; SGD runs at ~64 img/s, measured
#: 2026-12-07), so a budget run gets what ``auto`` picks for a run of its real length.
PLANNED_EPOCHS = 10


def _records(dataset: Any, split: str, root: Path) -> list[DetectionRecord]:
    """Each scene of ``dataset`` written as ``root/images/<split>/<index>.png`` (8-bit grey)."""
    folder = root / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(len(dataset)):
        sample = dataset[i]
        image = sample["image"]
        path = folder / f"{i:05d}.png"
        Image.fromarray(image[0].numpy()).save(path)
        records.append(DetectionRecord(path=path, size=tuple(image.shape[-2:]), boxes=sample["bbox_xyxy"],
                                       labels=sample["bbox_label"], image_id=i))  # fmt: skip
    return records


def write_scenes(dm: FashionMNISTScenesDataModule, root: Path) -> Path:
    """The data module's training and test scenes in YOLO layout under ``root``; returns the
    Ultralytics dataset file (``train``: the training scenes, ``val``: the test scenes)."""
    records = _records(dm.train_set, "train", root) + _records(dm.test_set, "test", root)
    names = list(dm.class_names)
    write_yolo(DetectionSet(records=records, category_ids=list(range(len(names))), names=names), root, image_root=root / "images")
    lines = [f"path: {root}", "train: images/train", "val: images/test", "names:"] + [f"  {i}: {n!r}" for i, n in enumerate(names)]
    dataset = root / "scenes.yaml"
    dataset.write_text("\n".join(lines) + "\n")
    return dataset


class _KeepEMA:
    """An Ultralytics callback that keeps the trainer's EMA model when training ends."""

    def __init__(self) -> None:
        self.model: torch.nn.Module | None = None
        self.seconds = 0.0
        self.epochs = 0
        self.batches = 0
        self.optimizer = ""

    def count_batch(self, trainer: Any) -> None:
        self.batches += 1

    def __call__(self, trainer: Any) -> None:
        self.model = trainer.ema.ema
        self.optimizer = f"{type(trainer.optimizer).__name__}(lr0={trainer.optimizer.param_groups[0]['initial_lr']:g})"
        self.seconds = time.time() - trainer.train_time_start
        self.epochs = trainer.epoch + 1


def train_yolov8n(dataset: Path, budget_s: float, project: Path, seed: int = 0) -> tuple[_KeepEMA, dict[str, float]]:
    """Train YOLOv8n from scratch for ``budget_s`` seconds; return the kept EMA model and
    Ultralytics' own final validation (on the test scenes)."""
    from ultralytics import YOLO
    from ultralytics.utils import torch_utils

    # On a CPU Ultralytics trains on os.cpu_count() - 1 threads (1 of this machine's 2) and no
    # loader workers; it gets the threads the suite's heads get, so both have the same CPU.
    torch_utils.NUM_THREADS = torch.get_num_threads()
    model = YOLO("yolov8n.yaml")
    kept = _KeepEMA()
    model.add_callback("on_train_end", kept)
    model.add_callback("on_train_batch_end", kept.count_batch)
    model.train(data=str(dataset), imgsz=96, batch=BATCH, epochs=PLANNED_EPOCHS, time=budget_s / 3600, device="cpu", cache="ram",
                val=False, plots=False, pretrained=False, amp=False, seed=seed, project=str(project), name="yolov8n",
                exist_ok=True, verbose=False)  # fmt: skip
    box = model.trainer.metrics
    own = {"map_50": float(box.get("metrics/mAP50(B)", float("nan"))), "map": float(box.get("metrics/mAP50-95(B)", float("nan")))}
    return kept, own


@torch.no_grad()
def evaluate_yolov8n(model: torch.nn.Module, dm: FashionMNISTScenesDataModule) -> dict[str, float]:
    """COCO mAP of ``model`` on the data module's test scenes, by the suite's metric.

    The images go in as Ultralytics' loader gives them at ``imgsz`` 96 (no letterbox on a 96x96
    scene): three equal channels, scaled to 0..1."""
    from ultralytics.utils import nms

    model = model.float().eval()
    metric = detection_metrics()
    infer = n = 0.0
    for batch in dm.test_dataloader():
        images = batch["image"].float().div(255).expand(-1, 3, -1, -1).contiguous()
        t0 = time.perf_counter()
        preds = model(images)
        outs = nms.non_max_suppression(preds, CONF, IOU, multi_label=True, max_det=MAX_DET)
        infer += time.perf_counter() - t0
        n += len(images)
        dets = [{"boxes": o[:, :4], "scores": o[:, 4], "labels": o[:, 5].long()} for o in outs]
        targets = [{"boxes": b, "labels": lab} for b, lab in zip(batch["bbox_xyxy"], batch["bbox_label"], strict=True)]
        metric.update(dets, targets)
    result = metric.compute()
    return {"map_50": float(result["map_50"]), "map": float(result["map"]), "infer_ips": n / infer}


def ultralytics_row(dm: FashionMNISTScenesDataModule, budget_s: float, work: Path, seed: int = 0) -> dict[str, Any]:
    """Write the scenes, train YOLOv8n for ``budget_s``, score it: one row of the heads table."""
    import ultralytics

    _check_batch(dm)
    dataset = write_scenes(dm, work / "scenes")
    kept, own = train_yolov8n(dataset, budget_s, work / "runs", seed)
    assert kept.model is not None, "Ultralytics ended without calling on_train_end"
    res = evaluate_yolov8n(kept.model, dm)
    params = sum(p.numel() for p in kept.model.parameters())
    row = {"head": "ultralytics-yolov8n", "backbone": f"YOLOv8n from yolov8n.yaml (ultralytics {ultralytics.__version__}, defaults)",
           "train_ips": kept.batches * BATCH / max(kept.seconds, 1e-9), "params": params, "map_s": float("nan"), **res,
           "ultralytics_own": own, "epochs": kept.epochs, "optimizer": kept.optimizer, "seconds": kept.seconds, "threads": torch.get_num_threads()}  # fmt: skip
    print(row, flush=True)
    return row


def _check_batch(dm: FashionMNISTScenesDataModule) -> None:
    """The raw test batch is what :func:`evaluate_yolov8n` expects: uint8 images, one channel."""
    batch = next(iter(dm.test_dataloader()))
    if batch["image"].dtype != torch.uint8 or batch["image"].shape[1] != 1:
        raise SystemExit(f"expected uint8 one-channel test images, got {batch['image'].dtype} {tuple(batch['image'].shape)}")
