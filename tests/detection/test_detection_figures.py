"""What a detection test leaves to look at: the detection confusion matrix (hand-built boxes), the
precision-recall curves at IoU 0.5 (real Fashion-MNIST scene boxes), both figures written and
sent to W&B by a real test run of the task, and the boxes pictures (titled columns, labels kept
inside the picture, tiny images enlarged)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from wandb_records import recording_wandb

from visionsuite.data.detection import FashionMNISTScenesDataModule
from visionsuite.models.detection.confusion import (
    DetectionConfusionMatrix,
    PrecisionTableMAP,
    class_curves,
    precision_at_50,
)
from visionsuite.models.detection.metrics import detection_metrics
from visionsuite.outputs.detection_figures import (
    detection_confusion_figure,
    pr_curves_figure,
)
from visionsuite.outputs.detection_pictures import (
    MIN_SIDE,
    draw_detections,
    label_boxes,
)
from visionsuite.outputs.fonts import label_font
from visionsuite.outputs.images import deliver
from visionsuite.tasks import DetectionTask

#: the scenes of tests/detection/test_task.py (their cache is shared): 64x64, one or two items.
SCENES = {"num_train_scenes": 448, "num_test_scenes": 64, "val_size": 64, "canvas_size": 64, "items_per_image": (1, 2)}


def _pred(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.long)}  # fmt: skip


def _truth(boxes: list[list[float]], labels: list[int]) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def _hand_built() -> tuple[list[dict], list[dict]]:
    preds = [
        # image 0: a hit, a class confusion (truth 1 seen as 2), a false positive, and a box of the
        # third object scoring below the threshold (ignored: the object is missed)
        _pred(
            [[0, 0, 10, 10], [20, 20, 30, 31], [60, 60, 70, 70], [40, 40, 50, 50]], [0.9, 0.8, 0.7, 0.2], [0, 2, 1, 2]
        ),
        # image 1: the better-scoring box overlaps less (IoU 0.6) than the other (0.95): matched by IoU,
        # so the class-0 box is the hit and the class-1 one a false positive (by score it would be the reverse)
        _pred([[0, 0, 20, 12], [0, 0, 20, 19]], [0.9, 0.5], [1, 0]),
        _pred([[5, 5, 15, 15]], [0.6], [2]),  # image 2: no objects, one false positive
        _pred([], [], []),  # image 3: one object, no detection
    ]
    truth = [
        _truth([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0, 1, 2]),
        _truth([[0, 0, 20, 20]], [0]),
        _truth([], []),
        _truth([[0, 0, 8, 8]], [1]),
    ]
    return preds, truth


#: rows true 0, 1, 2, background (false positives); columns predicted 0, 1, 2, background (missed).
HAND_MATRIX = [
    [2, 0, 0, 0],
    [0, 0, 1, 1],
    [0, 0, 0, 1],
    [0, 2, 1, 0],
]


def test_confusion_matrix_of_hand_built_boxes_is_the_hand_computed_one() -> None:
    preds, truth = _hand_built()
    metric = DetectionConfusionMatrix(3, score_thresh=0.3)
    metric.update(preds, truth)
    assert metric.compute().tolist() == HAND_MATRIX
    # sum-reduced state: two halves merged (as DDP's ranks are) give the whole
    first, second = DetectionConfusionMatrix(3, score_thresh=0.3), DetectionConfusionMatrix(3, score_thresh=0.3)
    first.update(preds[:2], truth[:2])
    second.update(preds[2:], truth[2:])
    first.merge_state(second)
    assert first.compute().tolist() == HAND_MATRIX
    twice = DetectionConfusionMatrix(3, score_thresh=0.3)
    twice.update(preds, truth)
    twice.merge_state(metric)  # the same counts twice: summed, never averaged nor maxed
    assert twice.compute().tolist() == [[2 * n for n in row] for row in HAND_MATRIX]


def test_confusion_matrix_refuses_labels_beyond_its_classes() -> None:
    preds, truth = _hand_built()
    with pytest.raises(ValueError, match="0..1"):
        DetectionConfusionMatrix(2).update(preds, truth)


def _scene_boxes(data_root: Path) -> list[dict[str, torch.Tensor]]:
    dm = FashionMNISTScenesDataModule(data_dir=str(data_root), batch_size=16, **SCENES)
    dm.setup("test")
    return [{"boxes": b, "labels": lab} for batch in dm.test_dataloader()
            for b, lab in zip(batch["bbox_xyxy"], batch["bbox_label"], strict=True)]  # fmt: skip


def _noisy_detections(truth: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """Seeded detections of the true boxes: moved a little or a lot, some with a wrong class, plus
    a random box per image; scores loosely follow quality, so each class gets a real curve."""
    g = torch.Generator().manual_seed(0)
    preds = []
    for t in truth:
        n = len(t["boxes"])
        shift = torch.randn(n, 4, generator=g) * torch.where(torch.rand(n, 1, generator=g) < 0.7, 1.5, 8.0)
        labels = torch.where(torch.rand(n, generator=g) < 0.8, t["labels"], torch.randint(0, 10, (n,), generator=g))
        corner = torch.rand(1, 2, generator=g) * 36
        stray = torch.cat([corner, corner + 28], dim=1)
        boxes = torch.cat([t["boxes"] + shift, stray]).clamp(0, 64)
        scores = torch.cat(
            [0.5 + 0.5 * torch.rand(n, generator=g) - shift.abs().mean(1) / 20, torch.rand(1, generator=g) * 0.6]
        )
        preds.append({"boxes": boxes, "scores": scores.clamp(0.01, 1),
                      "labels": torch.cat([labels, torch.randint(0, 10, (1,), generator=g)])})  # fmt: skip
    return preds


def test_pr_curve_area_is_the_ap50_the_metric_reports_per_class(data_root: Path, mirror: Path) -> None:
    truth = _scene_boxes(data_root)
    preds = _noisy_detections(truth)
    plain = detection_metrics()
    table = PrecisionTableMAP.like(plain)
    plain.update(preds, truth), table.update(preds, truth)
    expected, out = plain.compute(), table.compute()
    assert "ious" not in out and out["precision"].shape[:3] == (10, 101, 10)
    for key in ("map", "map_50", "map_75", "map_per_class", "classes"):  # the same evaluation, plus the table
        assert torch.equal(out[key], expected[key]), key
    curves = class_curves(precision_at_50(out["precision"]), out["classes"])
    assert sorted(curves) == sorted(set(torch.cat([t["labels"] for t in truth]).tolist()))
    aps = [ap for _, ap in curves.values()]
    assert 0.2 < min(aps) and max(aps) < 0.99, aps  # real curves, neither empty nor perfect
    assert sum(aps) / len(aps) == pytest.approx(float(expected["map_50"]), abs=1e-6)
    for cls, (precision, ap) in curves.items():  # each class alone, evaluated afresh
        alone = detection_metrics(class_metrics=False)
        alone.update([{k: v[p["labels"] == cls] for k, v in p.items()} for p in preds],
                     [{k: v[t["labels"] == cls] for k, v in t.items()} for t in truth])  # fmt: skip
        assert ap == pytest.approx(float(alone.compute()["map_50"]), abs=1e-6), cls
        assert len(precision) == 101 and bool((precision[1:] <= precision[:-1] + 1e-9).all())  # COCO's envelope


def test_pr_figure_shows_the_best_supported_classes_and_confusion_figure_its_used_classes() -> None:
    names = [f"c{i}" for i in range(12)]
    curves = {c: (torch.full((101,), c / 20), c / 20) for c in range(12)}
    support = {c: 100 - 7 * c for c in range(12)}  # c0 has the most boxes, c11 the fewest
    legend = [t.get_text() for t in pr_curves_figure(curves, names, support).axes[0].get_legend().get_texts()]
    assert legend[:10] == [f"c{c}  AP@.5 {c / 20:.3f} ({100 - 7 * c} boxes)" for c in range(10)]
    assert legend[10] == f"all 12 classes  mAP@.5 {sum(c / 20 for c in range(12)) / 12:.3f}" and len(legend) == 11
    matrix = torch.zeros(5, 5, dtype=torch.long)  # the hand-built counts with an unused class 2 between
    index = torch.tensor([0, 1, 3, 4])
    matrix[index[:, None], index] = torch.tensor(HAND_MATRIX)
    ax = detection_confusion_figure(matrix, names[:4], 0.3).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c0", "c1", "c3", "background"]  # c2: no count, left out
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c0", "c1", "c3", "background"]
    assert sorted(int(t.get_text()) for t in ax.texts if t.get_text() != "0") == [1, 1, 1, 1, 2, 2]


def test_pr_curves_differ_by_line_style_and_marker_not_colour_only() -> None:
    """Readable in greyscale print: every class curve has its own (line style, marker), the legend shows both."""
    names = [f"c{i}" for i in range(12)]
    curves = {c: (torch.linspace(1, c / 20, 101), 0.5) for c in range(12)}
    ax = pr_curves_figure(curves, names, {c: 100 - c for c in range(12)}).axes[0]
    lines = ax.get_lines()[:10]  # the ten best-supported classes; the eleventh line is the mean
    markers = [line.get_marker() for line in lines]
    assert len(set(markers)) == 10 and "None" not in markers and None not in markers
    assert len({line.get_linestyle() for line in lines}) >= 4
    assert len({(line.get_linestyle(), line.get_marker()) for line in lines}) == 10
    handles = ax.get_legend().legend_handles[:10]
    assert [h.get_marker() for h in handles] == markers
    assert [h.get_linestyle() for h in handles] == [line.get_linestyle() for line in lines]


def test_labels_stay_inside_a_tiny_image_which_is_enlarged_not_its_font_shrunk() -> None:
    """A 64x64 scene with a box at the right edge: the picture is enlarged x4 (short side 256) and the
    label "Pullover 0.93" is moved left (and down, off the top) to stay inside it."""
    names = ["T-shirt/top", "Trouser", "Pullover"]
    image = torch.full((1, 64, 64), 90, dtype=torch.uint8)
    boxes = torch.tensor([[52.0, 1.0, 63.0, 30.0], [52.0, 1.0, 63.0, 20.0], [0.0, 58.0, 10.0, 63.0]])
    labels, scores = torch.tensor([2, 2, 1]), torch.tensor([0.93, 0.71, 0.5])
    drawn = draw_detections(image, boxes, labels, names, scores)
    assert drawn.shape == (3, 256, 256) and MIN_SIDE == 256
    font = label_font(max(10, round(256 / 35)))  # the size draw_detections uses on a 256 px canvas
    captions = ["Pullover 0.93", "Pullover 0.71", "Trouser 0.50"]
    rects = label_boxes((boxes * 4).tolist(), captions, (256, 256), font)
    for (x1, y1, x2, y2), caption in zip(rects, captions, strict=True):
        assert 0 <= x1 < x2 <= 255 and 0 <= y1 < y2 <= 255, (caption, (x1, y1, x2, y2))
        assert x2 - x1 > 50, caption  # the whole text, not a clipped stub
    assert rects[0][0] < 52 * 4  # shifted left of its box, which starts 44 px from the right edge
    (a, b, c) = rects
    assert not (a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3])  # the same corner: no overlap
    assert c[3] <= 255 and c[1] < 58 * 4  # at the bottom edge: moved up into the picture


def test_normal_photos_are_drawn_at_their_own_size() -> None:
    image = torch.zeros(3, 300, 400, dtype=torch.uint8)
    drawn = draw_detections(image, torch.tensor([[10.0, 10.0, 100.0, 100.0]]), torch.tensor([0]), ["cat"], torch.tensor([0.9]))
    assert drawn.shape == (3, 300, 400)
    tiny = draw_detections(image[:, :20, :32], torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), ["cat"])
    assert tiny.shape == (3, 260, 416)  # x13, boxes or none


@pytest.fixture(scope="module")
def tested_task(data_root: Path, mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[DetectionTask, Path]:
    """A tiny FCOS, untrained, put through a real ``Trainer.test`` on the 64 test scenes: its quality
    is not the point (the hand-built and curve tests check the numbers), the files and their
    bookkeeping are; it still scores 100 boxes per image above the threshold, so both figures have data."""
    root = tmp_path_factory.mktemp("figures")
    torch.manual_seed(0)
    dm = FashionMNISTScenesDataModule(data_dir=str(data_root), batch_size=16, **SCENES)
    task = DetectionTask(head="fcos", backbone="mobilenet_v3_small", num_classes=10, in_chans=1, image_size=(64, 64),
                         fpn_channels=64, head_convs=1, num_sample_images=1)  # fmt: skip
    trainer = Trainer(logger=CSVLogger(str(root), name="run"), default_root_dir=str(root), enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.test(task, datamodule=dm, verbose=False)
    return task, Path(trainer.log_dir)


def test_a_test_run_writes_and_logs_the_pr_curves_and_the_confusion_matrix(tested_task, data_root: Path) -> None:
    task, log_dir = tested_task
    for name in ("test_pr_curves.png", "test_confusion_matrix.png"):
        with Image.open(log_dir / "images" / name) as im:
            assert im.format == "PNG" and min(im.size) > 200, name
    results = task.stage_results["test"]
    assert "test/precision" not in results and results["test/precision_50"].shape[0] == 101  # kept: IoU .5 only
    matrix = results["test/confusion_matrix"]
    assert int(matrix[:, :10].sum()) == 64 * 100  # every detection above score_thresh counted once
    labels = torch.cat([t["labels"] for t in _scene_boxes(data_root)])
    assert matrix[:10].sum(1).tolist() == torch.bincount(labels, minlength=10).tolist()  # every true box once
    curves = class_curves(results["test/precision_50"], results["test/classes"])
    assert sum(ap for _, ap in curves.values()) / len(curves) == pytest.approx(float(results["test/map_50"]), abs=1e-6)
    wandb = recording_wandb()
    trainer = type("T", (), {"loggers": [wandb], "global_step": 0})()
    deliver(trainer, task.figures("test"), "test", log_dir / "resent")  # the one delivery path of every picture
    assert {"test/pr_curves", "test/confusion_matrix", "test/boxes_0", "test/boxes_0_interactive"} <= set(wandb.images)
    assert Path(wandb.images["test/pr_curves"][0]).name == "test_pr_curves.png"
    assert Path(wandb.images["test/boxes_0"][0]).name == "test_boxes_0.png"  # the drawn figure, as the file shows


def test_the_boxes_picture_is_a_titled_figure_and_w_and_b_keeps_its_boxes(tested_task) -> None:
    """prediction | ground truth under their titles, each panel the 64 px scene enlarged x4, with a legend
    of the classes drawn; W&B's interactive copy is the scene itself with every box and score."""
    task, _ = tested_task
    picture = task.figures("test")["test/boxes_0"]
    floor = max(task.hparams.score_thresh, 0.3)
    panels = [ax for ax in picture.image.axes if ax.images]
    assert [ax.get_title() for ax in panels] == [f"prediction (score ≥ {floor:g})", "ground truth"]
    assert [ax.images[0].get_array().shape[:2] for ax in panels] == [(256, 256), (256, 256)]
    legend = [t.get_text() for t in picture.image.legends[0].get_texts()]
    assert legend and set(legend) <= set(task.class_names())
    assert "boxes predicted" in picture.image.get_suptitle()
    assert tuple(picture.overlay_image.shape[-2:]) == (64, 64)
    boxes = picture.overlays["boxes"]
    assert set(boxes) == {"predictions", "ground_truth"} and len(boxes["predictions"]["box_data"]) == 100
