"""DetectionTask end to end through the CLI, in-process, on real Fashion-MNIST scenes and COCO128."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from task_tester import TaskTester

from visionsuite.cli.app import main
from visionsuite.data.cache import load_split
from visionsuite.data.scenes import tight_extents
from visionsuite.errors import ConfigError
from visionsuite.outputs.detection_pictures import display_zoom
from visionsuite.tasks import DetectionTask

CONFIGS = Path(__file__).parents[2] / "configs" / "detection"
FCOS = str(CONFIGS / "fcos_fmnist_scenes.yaml")
#: a few hundred small scenes: 64x64 canvases with one or two native 28 px items.
SMALL_SCENES = [
    "--data.init_args.num_train_scenes", "448", "--data.init_args.num_test_scenes", "64",
    "--data.init_args.val_size", "64", "--data.init_args.canvas_size", "64", "--model.init_args.image_size", "64",
    "--data.init_args.items_per_image", "[1, 2]", "--data.init_args.batch_size", "16",
    "--model.init_args.backbone", "mobilenet_v3_small", "--model.init_args.backbone_options", "{}",
    "--trainer.num_sanity_val_steps", "0",
]  # fmt: skip


def _dirs(root: Path) -> list[str]:
    return ["--trainer.default_root_dir", str(root), "--trainer.logger.init_args.save_dir", str(root)]


class TestDetectionContract(TaskTester):
    """One real FCOS fit (+ test of the best checkpoint) on a few hundred small scenes."""

    config = FCOS
    overrides = (*SMALL_SCENES, "--trainer.max_epochs", "4")
    metric = "test/map"
    images = ("val_boxes_0_step*.png", "test_boxes_0.png")
    predictions = ("predictions_coco.json", "predictions/test/0.png")  # the test split named by index
    mismatch = ("backbone", "resnet18")


@pytest.fixture
def fcos_run(request: pytest.FixtureRequest, mirror: Path) -> Path:
    return TestDetectionContract.fit_once(request)["run"]


def test_fcos_learns_the_scenes_and_writes_its_outputs(fcos_run: Path) -> None:
    metrics = json.loads((fcos_run / "metrics.json").read_text())
    # chance (an untrained FCOS) measures ~0.001; 4 short epochs reach ~0.14 under load
    assert metrics["val/map_50"] > 0.08 and metrics["test/map_50"] > 0.08, metrics
    assert {"val/map", "test/map", "test/map_75", "test/ap/Trouser"} <= set(metrics)
    terms = [metrics[f"train/{k}"] for k in ("classification", "bbox_regression", "bbox_ctrness")]  # FCOS's own
    assert metrics["train/loss"] == pytest.approx(sum(terms), rel=1e-5)
    table = (fcos_run / "per_class_ap.md").read_text()
    assert "| Trouser |" in table and f"| **all (mAP)** | {metrics['test/map']:.4f} |" in table
    overlays = sorted((fcos_run / "images").glob("*boxes_*.png"))
    assert any(p.name.startswith("val_boxes_0_step") for p in overlays) and (fcos_run / "images" / "test_boxes_0.png") in overlays
    with Image.open(fcos_run / "images" / "test_boxes_0.png") as im:  # a titled figure: prediction | truth, enlarged x4
        assert im.size[0] > 2 * 4 * 64 and im.size[1] > 4 * 64 and im.format == "PNG"


def test_predict_writes_coco_results_in_original_pixels(fcos_run: Path, data_root: Path, tmp_path: Path) -> None:
    """A non-square image, letterboxed (x2 and padded) for the model: its item comes back where it is."""
    from faster_coco_eval import COCO

    from visionsuite.data import FashionMNISTDataModule

    items = FashionMNISTDataModule(data_dir=str(data_root))
    items.prepare_data()
    test = load_split(items.cache_path("test"))
    trouser = test.images[(test.labels == 1).nonzero()[0, 0], 0]  # [28, 28] uint8
    small = torch.nn.functional.interpolate(trouser[None, None].float(), size=(14, 14), mode="bilinear", antialias=True)
    small = small.round().clamp(0, 255).to(torch.uint8)[0, 0]
    canvas = torch.zeros(20, 32, dtype=torch.uint8)  # H 20, W 32: letterboxed to 40x64 (x2) + 12 px bands
    canvas[3:17, 10:24] = small
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(canvas.numpy()).save(folder / "wide.png")
    expected = tight_extents(small[None], 10)[0] + torch.tensor([10.0, 3.0, 10.0, 3.0])
    out = tmp_path / "predict"
    args = ["predict", "--config", str(fcos_run / "config.yaml"), "--ckpt_path", str(fcos_run / "checkpoints" / "last.ckpt"),
            "--data.init_args.predict_dir", str(folder), *_dirs(out)]  # fmt: skip
    assert main(args) == 0
    (results_file,) = out.glob("*/predictions_coco.json")
    results = json.loads(results_file.read_text())
    best = max(results, key=lambda r: r["score"])
    x, y, w, h = best["bbox"]
    assert best["image_id"] == 0 and 0 <= best["category_id"] < 10, best
    assert torch.allclose(torch.tensor([x, y, x + w, y + h]), expected, atol=2.0), (best, expected)
    # the picture: the user's image (not the 40x64 letterbox), named after the file, enlarged by an
    # integer zoom as every image under MIN_SIDE is (20 px: x13, so labels are legible), with the
    # confident boxes drawn at their original-pixel place times the zoom (an edge pixel takes the class colour)
    drawn = np.asarray(Image.open(results_file.parent / "predictions" / "wide.png").convert("RGB")).astype(int)
    zoom = display_zoom(20, 32)
    assert zoom == 13 and drawn.shape == (20 * zoom, 32 * zoom, 3)
    confident = [r for r in results if r["score"] >= 0.3]
    for r in confident:
        bx, by = round(r["bbox"][0] * zoom), round((r["bbox"][1] + r["bbox"][3] / 2) * zoom)
        assert drawn[min(by, 20 * zoom - 1), min(bx, 32 * zoom - 1)].std() > 0, "a grey pixel: no coloured box edge there"
    enlarged = canvas.repeat_interleave(zoom, 0).repeat_interleave(zoom, 1).numpy()
    assert np.array_equal(drawn[..., 0], enlarged) == (not confident)
    gt = {"images": [{"id": 0, "file_name": "wide.png", "height": 20, "width": 32}],
          "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [10, 3, 14, 14], "area": 196, "iscrowd": 0}],
          "categories": [{"id": i, "name": str(i)} for i in range(10)]}  # fmt: skip
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    loaded = COCO(str(tmp_path / "gt.json")).loadRes(str(results_file))
    assert len(loaded.getAnnIds()) == len(results)


def test_targets_are_built_once_per_batch(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = DetectionTask.build_targets

    def spy(self, batch):
        calls.append(len(batch["image"]))
        return original(self, batch)

    monkeypatch.setattr(DetectionTask, "build_targets", spy)
    args = ["fit", "--config", FCOS, "--data.init_args.data_dir", str(data_root), *_dirs(tmp_path), *SMALL_SCENES,
            "--trainer.fast_dev_run", "true", "--test_after_fit", "false"]  # fmt: skip
    assert main(args) == 0
    assert calls == [16, 16]  # one training batch, one validation batch: once each


def test_task_builds_the_fcos_towers_it_is_given() -> None:
    task = DetectionTask(head="fcos", backbone="mobilenet_v3_small", in_chans=1, image_size=64, head_convs=2)
    tower = task.detector.model.head.classification_head.conv
    assert sum(isinstance(m, torch.nn.Conv2d) for m in tower) == 2


def test_fcos_regression_bias_sets_the_initial_box_sides_and_is_fcos_only() -> None:
    """``regression_bias`` replaces torchvision's zero bias of FCOS's box-regression conv (the
    COCO128 config needs it: from zero the regression died); other heads refuse it."""
    def bias(**options: float | None) -> torch.Tensor:
        task = DetectionTask(head="fcos", backbone="mobilenet_v3_small", in_chans=1, image_size=64, **options)
        return task.detector.model.head.regression_head.bbox_reg.bias.detach()

    assert torch.equal(bias(regression_bias=1.0), torch.ones(4)) and torch.equal(bias(), torch.zeros(4))
    with pytest.raises(ConfigError, match="regression_bias is an option of fcos only, not retinanet"):
        DetectionTask(head="retinanet", backbone="mobilenet_v3_small", in_chans=1, image_size=64, regression_bias=1.0)


def test_class_count_that_counts_the_background_is_refused_in_one_line(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Faster R-CNN adds the background itself: num_classes is the data's 10, not torchvision's 11."""
    config = str(CONFIGS / "fasterrcnn_fmnist_scenes.yaml")
    args = ["fit", "--config", config, "--data.init_args.data_dir", str(data_root), *_dirs(tmp_path), *SMALL_SCENES,
            "--model.init_args.num_classes", "11", "--trainer.fast_dev_run", "true"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("model.num_classes=11 but the data has 10 classes; set model.init_args.num_classes: 10"), err


def test_train_window_is_refused_for_detection_in_one_line(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The detectors resize to model.image_size themselves (and SSD's anchors scale with the batch)."""
    args = ["fit", "--config", FCOS, "--data.init_args.data_dir", str(data_root), *_dirs(tmp_path), *SMALL_SCENES,
            "--data.init_args.train_window", "[32, 32]", "--trainer.fast_dev_run", "true"]  # fmt: skip
    assert main(args) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("data.train_window is not supported for detection: "
                                                                     "train on whole image_size images")
