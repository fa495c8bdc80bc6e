"""Detection heads on Fashion-MNIST scenes at an equal CPU time budget, and the task's overhead.

Table 1: each head (DetectionTask's detector: library backbone + FPN + torchvision head) trained
for ``--budget`` seconds on the issue's reference scenes (96x96, 1-4 non-overlapping native 28 px
items, 8,000 training scenes from the training items, 1,000 test scenes from the test items),
AdamW 2e-3 with 3% warm-up and cosine decay over the budget (the schedule follows elapsed time),
batch 32; then mAP@.5 / mAP@[.5:.95] on the test scenes (torchmetrics, faster-coco-eval backend),
training and inference images/s, parameters, and the mAP computation time.

Table 2: seconds per training iteration of each head in ``--overhead-heads`` inside the task
(Lightning ``Trainer.fit``, on-device augmentation off) against torchvision's own detector of the
same configuration (its own ``GeneralizedRCNNTransform`` at the same size) in a plain loop: paired
rounds that alternate which runs first.

    OMP_NUM_THREADS=1 python benchmarks/bench_detection.py --budget 240 --out benchmarks/results/detection.md
    OMP_NUM_THREADS=2 python benchmarks/bench_detection.py --budget 0 --rounds 4 --steps 20 \
        --overhead-heads fcos retinanet ssdlite fasterrcnn
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from step_clock import StepClock
from torchmetrics.detection import MeanAveragePrecision

from visionsuite.data import FashionMNISTScenesDataModule
from visionsuite.models.detection.detector import LABEL_OFFSET
from visionsuite.models.detection.metrics import MAP_BACKEND, detection_metrics
from visionsuite.tasks import DetectionTask
from visionsuite.tasks.optim import budget_cosine_factor

#: the reference's body: a from-scratch 4-stage ResNet-18 at 32-64-128-256 channels.
SMALL_RESNET = {"base_width": 32}
#: Faster R-CNN's proposal and RoI counts for 96-px scenes (torchvision's are for 800-px images),
#: as in ``configs/detection/fasterrcnn_fmnist_scenes.yaml``.
SMALL_IMAGE_RCNN = {"rpn_pre_nms_top_n_train": 600, "rpn_post_nms_top_n_train": 300, "rpn_pre_nms_top_n_test": 300,
                    "rpn_post_nms_top_n_test": 100, "box_batch_size_per_image": 64}  # fmt: skip
HEADS = {  # variant: (head, backbone, backbone options, backbone weights, FPN extra levels)
    "fcos": ("fcos", "resnet18", SMALL_RESNET, None, "p6p7"),
    "fcos-lite0": ("fcos", "efficientnet_lite0", {}, "imagenet", "p6p7"),  # ImageNet weights, summed to 1 channel
    "yolo-lite0": ("yolo", "efficientnet_lite0", {}, "imagenet", "none"),  # the YOLOv8-style head (reg_max 16, 2-conv branches)
    "retinanet": ("retinanet", "resnet18", SMALL_RESNET, None, "p6p7"),
    "ssdlite": ("ssdlite", "mobilenet_v3_small", {}, None, "p6p7"),
    "fasterrcnn": ("fasterrcnn", "resnet18", SMALL_RESNET, None, "maxpool"),
}


def make_task(variant: str, channels_last: bool = False, score_thresh: float = 0.05, head_convs: int = 4) -> DetectionTask:
    head, backbone, options, weights, extra = HEADS[variant]
    head_options = SMALL_IMAGE_RCNN if head == "fasterrcnn" else None
    return DetectionTask(head=head, backbone=backbone, backbone_options=options, weights=weights, num_classes=10,
                         in_chans=1, image_size=96, out_strides=(8, 16, 32), fpn_channels=128, extra_blocks=extra,
                         head_options=head_options, channels_last=channels_last, score_thresh=score_thresh,
                         head_convs=head_convs if head == "fcos" else 4)  # fmt: skip


def batches(dm: FashionMNISTScenesDataModule, loader, train: bool = False):
    """The loader's batches through the data module's on-device transform (flips when ``train``)."""
    for batch in loader:
        yield dm.transform_batch(batch, train=train)


def train_for(task: DetectionTask, dm: FashionMNISTScenesDataModule, budget: float) -> tuple[int, float]:
    """Train ``task.detector`` for ``budget`` seconds; return (images seen, seconds)."""
    model = task.detector.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    seen, start = 0, time.perf_counter()
    while True:
        for batch in batches(dm, dm.train_dataloader(), train=True):
            frac = (time.perf_counter() - start) / budget
            if frac >= 1:
                return seen, time.perf_counter() - start
            lr = 2e-3 * budget_cosine_factor(frac, warmup_pct=0.03)
            for group in opt.param_groups:
                group["lr"] = lr
            targets = task.build_targets(batch)
            losses = model(batch["image"], [t["boxes"] for t in targets], [t["labels"] for t in targets])
            opt.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            opt.step()
            seen += len(batch["image"])


def at_50(class_metrics: bool = True) -> MeanAveragePrecision:
    """AP at IoU 0.5 only (and per class with ``class_metrics``)."""
    return MeanAveragePrecision(box_format="xyxy", iou_thresholds=[0.5], class_metrics=class_metrics, backend=MAP_BACKEND)


def one_class(dets: list[dict]) -> list[dict]:
    return [{**d, "labels": torch.zeros_like(d["labels"])} for d in dets]


@torch.no_grad()
def evaluate(task: DetectionTask, dm: FashionMNISTScenesDataModule, flip: bool = False, per_class: bool = False) -> dict[str, float]:
    """Test mAP of the task's detector (with ``flip``: merged with its mirror-image detections).

    ``per_class``: also AP@.5 per class, and the class-agnostic mAP@.5 (every label one class:
    how well objects are found, whatever their class), printed."""
    task.detector.eval()
    metric = detection_metrics()
    per_class_50, agnostic_50 = (at_50(), at_50(False)) if per_class else (None, None)
    infer = n = 0.0
    map_time = 0.0
    for batch in batches(dm, dm.test_dataloader()):
        t0 = time.perf_counter()
        dets = task.detect(batch["image"], flip=flip)
        infer += time.perf_counter() - t0
        n += len(batch["image"])
        t0 = time.perf_counter()
        targets = task.build_targets(batch)
        metric.update(dets, targets)
        map_time += time.perf_counter() - t0
        if per_class_50 is not None:
            per_class_50.update(dets, targets)
            agnostic_50.update(one_class(dets), one_class(targets))
    t0 = time.perf_counter()
    result = metric.compute()
    map_time += time.perf_counter() - t0
    if per_class_50 is not None:
        names = dm.class_names
        aps = per_class_50.compute()["map_per_class"].tolist()
        print("AP@.5 per class" + (" (flip)" if flip else "") + ": " + ", ".join(f"{name} {ap:.3f}" for name, ap in zip(names, aps)))
        print(f"class-agnostic mAP@.5: {float(agnostic_50.compute()['map_50']):.3f}", flush=True)
    return {"map_50": float(result["map_50"]), "map": float(result["map"]), "infer_ips": n / infer, "map_s": map_time}


def head_table(dm: FashionMNISTScenesDataModule, budget: float, heads: list[str], channels_last: bool = False,
               flip: bool = False, weights_dir: Path | None = None, load: bool = False,
               score_thresh: float = 0.05, per_class: bool = False, head_convs: int = 4, seed: int = 0) -> list[dict]:  # fmt: skip
    """Train (or, with ``load``, reload from ``weights_dir``) and test each head; with
    ``weights_dir`` and not ``load``, the trained weights are saved there (``<head>.pt``).
    ``seed`` seeds each head's initialisation and the loader's shuffling; the scenes stay the same."""
    rows = []
    for head in heads:
        torch.manual_seed(seed)
        task = make_task(head, channels_last, score_thresh, head_convs)
        path = weights_dir / f"{head}.pt" if weights_dir else None
        if load and path:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            task.detector.load_state_dict(saved["state_dict"])
            seen, secs = saved["seen"], saved["seconds"]
        else:
            seen, secs = train_for(task, dm, budget)
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"state_dict": task.detector.state_dict(), "seen": seen, "seconds": secs}, path)
        res = evaluate(task, dm, per_class=per_class)
        if flip:  # the same weights, test-time flip: a second row
            res_flip = evaluate(task, dm, flip=True, per_class=per_class)
        params = sum(p.numel() for p in task.detector.parameters())
        _, backbone, options, weights, _ = HEADS[head]
        name = backbone + ("-w32" if options else "") + (f" ({weights})" if weights else "") + (", channels-last" if channels_last else "")
        name += f", score_thresh {score_thresh:g}" if score_thresh != 0.05 else ""
        name += f", {head_convs}-conv towers" if head_convs != 4 and HEADS[head][0] == "fcos" else ""
        rows.append({"head": head, "backbone": name, "train_ips": seen / secs, "params": params, **res})
        print(rows[-1], flush=True)
        if flip:
            rows.append({**rows[-1], "backbone": name + ", test-time flip", **res_flip})
            print(rows[-1], flush=True)
    return rows


def torchvision_detector(variant: str) -> torch.nn.Module:
    """torchvision's own detector of ``variant``'s configuration, for the plain loop.

    The same torchvision module (``FCOS``, ``RetinaNet``, ``SSD`` or ``FasterRCNN``, with the
    variant's body, FPN, head, anchors and proposal counts) with the ``GeneralizedRCNNTransform``
    that torchvision's constructor builds from ``min_size``/``max_size`` 96 (SSD: ``fixed_size``
    96x96, ``size_divisible`` 1, as ``SSD.__init__`` does) and mean 0 / std 1, in place of the
    task's pass-through: so the plain loop resizes and normalises as torchvision does."""
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    model = make_task(variant).detector.model
    if isinstance(model, SSD):
        model.transform = GeneralizedRCNNTransform(96, 96, [0.0], [1.0], size_divisible=1, fixed_size=(96, 96))
    else:
        model.transform = GeneralizedRCNNTransform(96, 96, [0.0], [1.0])
    return model.train()


def overhead(dm: FashionMNISTScenesDataModule, rounds: int, steps: int, variant: str = "fcos") -> tuple[float, float, list[float]]:
    """Median s/iteration of ``variant`` in the task (Lightning fit) and of torchvision's own
    detector of the same configuration (plain loop, :func:`torchvision_detector`); rounds
    alternate which of the two runs first."""
    import lightning as L

    dm.augment = False
    offset = LABEL_OFFSET[HEADS[variant][0]]  # torchvision's own model: background is class 0 where it has one
    task_times, plain_times = [], []
    tmp = tempfile.mkdtemp(prefix="bench-detection-")  # the task's checkpoint and metrics files go here
    for r in range(rounds):
        torch.manual_seed(r)
        plain = torchvision_detector(variant)
        plain_opt = torch.optim.AdamW(plain.parameters(), lr=1e-4)

        def run_task() -> float:
            task = make_task(variant)
            task.hparams.optimizer, task.hparams.lr = "adamw", 1e-4
            clock = StepClock()
            trainer = L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                                limit_val_batches=0, callbacks=[clock], default_root_dir=tmp)  # fmt: skip
            trainer.fit(task, datamodule=dm)
            return statistics.median(clock.durations(skip=1))

        def run_plain() -> float:
            times = []
            for i, batch in enumerate(batches(dm, dm.train_dataloader())):
                if i > steps:
                    break
                t0 = time.perf_counter()
                targets = [{"boxes": b, "labels": lab + offset} for b, lab in zip(batch["bbox_xyxy"], batch["bbox_label"])]
                losses = plain(list(batch["image"]), targets)
                plain_opt.zero_grad(set_to_none=True)
                sum(losses.values()).backward()
                plain_opt.step()
                times.append(time.perf_counter() - t0)
            return statistics.median(times[1:])

        if r % 2 == 0:
            task_times.append(run_task())
            plain_times.append(run_plain())
        else:
            plain_times.append(run_plain())
            task_times.append(run_task())
        print(f"{variant} round {r} ({'task' if r % 2 == 0 else 'plain'} first): task {task_times[-1]:.3f} s, "
              f"plain {plain_times[-1]:.3f} s", flush=True)  # fmt: skip
    ratios = [p / t for p, t in zip(plain_times, task_times)]
    return statistics.median(task_times), statistics.median(plain_times), ratios


def flops(heads: list[str], head_convs: int) -> None:
    """Inference GFLOP per 96x96 image of each head's backbone + FPN and of its head
    (``torch.utils.flop_counter``; counts convolutions and matmuls, not NMS or decoding)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(8, 1, 96, 96)
    for head in heads:
        model = make_task(head, head_convs=head_convs).detector.model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as body:
            feats = model.backbone(x)
        parts = [f"backbone + FPN {body.get_total_flops() / 8e9:.3f}"]
        if hasattr(model, "head"):
            with torch.no_grad(), FlopCounterMode(display=False) as towers:
                model.head(list(feats.values()))
            parts.append(f"head {towers.get_total_flops() / 8e9:.3f}")
        print(f"{head} (head_convs {head_convs}): GFLOP per image: {', '.join(parts)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=240.0, help="training seconds per head")
    parser.add_argument("--heads", nargs="+", default=list(HEADS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--test_scenes", type=int, default=None, help="evaluate on the first N test scenes only")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--val_scenes", type=int, default=1, help="held out of the 8,000 training scenes (unused here)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--channels-last", action="store_true", help="heads table: the task's channels_last weights")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="heads table: save each trained head's weights here (<head>.pt)")
    parser.add_argument("--load", action="store_true", help="heads table: test the weights saved in --weights-dir, no training")
    parser.add_argument("--test-time-flip", action="store_true",
                        help="heads table: also test each head with the task's test_time_flip (a second row)")
    parser.add_argument("--per-class", action="store_true",
                        help="heads table: also print AP@.5 per class and the class-agnostic mAP@.5")
    parser.add_argument("--score-thresh", type=float, default=0.05,
                        help="heads table: the task's score_thresh at test (0.05, its default; 0.001 as YOLO's val)")
    parser.add_argument("--seed", type=int, default=0, help="heads table: seed of the initialisation and shuffling (the scenes are fixed)")
    parser.add_argument("--head-convs", type=int, default=4,
                        help="heads table: FCOS tower depth (the task's head_convs; torchvision's 4)")
    parser.add_argument("--overhead-heads", nargs="+", default=["fcos"], choices=list(HEADS),
                        help="overhead table: the heads timed in the task against torchvision's own model")
    parser.add_argument("--flops", action="store_true", help="print each head's GFLOP per image and exit")
    parser.add_argument("--ultralytics", type=Path, default=None, metavar="WORK_DIR",
                        help="heads table: also train Ultralytics' YOLOv8n for --budget (scenes written under WORK_DIR; "
                             "needs `pip install ultralytics`) and score it the same way (benchmarks/ultralytics_yolo.py)")
    args = parser.parse_args()
    if args.flops:
        return flops(args.heads, args.head_convs)
    dm = FashionMNISTScenesDataModule(
        data_dir=args.data_dir, batch_size=32, eval_batch_size=64, hflip=True, test_subset=args.test_scenes,
        val_size=args.val_scenes,
    )
    dm.setup("fit")
    load = os.getloadavg()[0]
    rows = head_table(dm, args.budget, args.heads, args.channels_last, args.test_time_flip, args.weights_dir, args.load,
                      args.score_thresh, args.per_class, args.head_convs, args.seed) if args.budget > 0 else []  # fmt: skip
    if args.ultralytics and args.budget > 0:
        from ultralytics_yolo import ultralytics_row

        dm.setup("test")
        rows.append(ultralytics_row(dm, args.budget, args.ultralytics, args.seed))
    timed = {head: overhead(dm, args.rounds, args.steps, head) for head in args.overhead_heads} if args.rounds > 0 else {}
    load_end = os.getloadavg()[0]
    lines = [
        f"Measured with the machine shared (1-min load {load:.1f} at start, {load_end:.1f} at end, on 2 cores; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}).",
        "",
        f"Heads, {args.budget:.0f} s of training each (batch 32, AdamW 2e-3, warm-up + cosine over the budget), "
        f"test on {len(dm.test_set)} test scenes; mAP by torchmetrics on {MAP_BACKEND}:",
        "",
        "| head | backbone | params | mAP@.5 | mAP@[.5:.95] | train img/s | infer img/s | mAP update+compute s |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {r['head']} | {r['backbone']} | {r['params'] / 1e6:.2f} M | {r['map_50']:.3f} | {r['map']:.3f} | "
          f"{r['train_ips']:.1f} | {r['infer_ips']:.1f} | {r['map_s']:.2f} |" for r in rows),
    ]  # fmt: skip
    if timed:
        lines += ["", f"s/iteration, batch 32, 96x96, task (Lightning) against torchvision's own model (plain loop); "
                  f"{args.rounds} rounds of {args.steps} steps alternating which runs first, medians:", "",
                  "| head | task s/it | torchvision s/it | ratio plain/task per round | median ratio |", "|---|---|---|---|---|"]
        for head, (task_s, plain_s, ratios) in timed.items():
            lines.append(f"| {head} | {task_s:.3f} | {plain_s:.3f} | {', '.join(f'{r:.3f}' for r in ratios)} | "
                         f"{statistics.median(ratios):.3f} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
