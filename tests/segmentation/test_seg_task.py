"""SegmentationTask end to end through the CLI on real CamVid frames: fit, metrics, tables, overlays,
predict at the original size; and the metric loop's treatment of void pixels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from task_tester import TaskTester

from visionsuite.cli.app import main
from visionsuite.data import CamVidDataModule
from visionsuite.errors import ConfigError
from visionsuite.tasks import SegmentationTask

TINY = str(Path(__file__).parents[1] / "configs" / "segmentation_tiny.yaml")


class TestSegmentationContract(TaskTester):
    config = TINY
    data_dir_fixture = "tiny_camvid_root"
    metric = "test/miou"
    images = ("val_overlays_step*.png", "test_overlays.png")
    predictions = ("predictions/0001TP_008550.png", "predictions/0001TP_008550_overlay.png")
    mismatch = ("model", "unet")


@pytest.fixture
def tiny_root(tiny_camvid_root: Path) -> Path:
    return tiny_camvid_root


@pytest.fixture
def run(request: pytest.FixtureRequest) -> Path:
    """One real fit + test of the best checkpoint, the contract's, shared by the tests below."""
    return TestSegmentationContract.fit_once(request)["run"]


def test_fit_overfits_the_frames_and_reports_paper_metrics(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val/miou"] > 0.6, metrics  # chance-level mIoU on 11 classes is < 0.1
    assert metrics["test/global_accuracy"] > 0.9, metrics
    assert {"test/class_accuracy", "test/miou"} <= metrics.keys()
    assert list((run / "checkpoints").glob("best-*.ckpt")), "best checkpoint chosen on val/miou"


def test_per_class_iou_table_lists_every_class(run: Path) -> None:
    text = (run / "per_class_iou.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| class")]
    assert [r.split("|")[1].strip() for r in rows] == list(CamVidDataModule.CLASSES)
    miou = json.loads((run / "metrics.json").read_text())["test/miou"]
    assert f"- miou: {100 * miou:.1f}%" in text


def test_overlays_written_after_validation_and_test(run: Path) -> None:
    images = run / "images"
    val = sorted(images.glob("val_overlays_step*.png"))
    assert len(val) == 2  # validation every 20 of the 40 epochs
    test = Image.open(images / "test_overlays.png")
    # two images (num_overlay_images) of 64x96, each as image | truth | prediction, enlarged to a
    # readable cell (figures.MIN_CELL inches at figures.DPI) with titles and a class legend
    assert test.size[0] > 3 * 160 * 0.9 and test.size[1] > 2 * 107


def test_median_frequency_weights_in_the_checkpoint(run: Path) -> None:
    state = torch.load(next((run / "checkpoints").glob("best-*.ckpt")), weights_only=True)["state_dict"]
    weights = state["class_weight"]
    assert weights.shape == (11,) and not torch.allclose(weights, torch.ones(11))
    assert torch.equal(state["criterion.weight"], weights), "the loss uses the computed weights"


def test_predict_writes_palette_masks_at_the_original_size(run: Path, tiny_root: Path, tmp_path: Path) -> None:
    """Masks decode (palette → colour, values → class) to the model's own prediction mapped back
    to each file's size; one input is resized to a different aspect to exercise the letterbox."""
    folder = tmp_path / "in"
    folder.mkdir()
    sources = sorted((tiny_root / "camvid" / "CamVid" / "test").glob("*.jpg"))[:2]
    shutil.copy(sources[0], folder / "a.jpg")
    Image.open(sources[1]).resize((300, 300)).save(folder / "b.png")
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    out = tmp_path / "pred"
    args = [
        "predict", "--config", TINY, "--data.init_args.data_dir", str(tiny_root), "--ckpt_path", str(ckpt),
        "--data.init_args.predict_dir", str(folder), "--trainer.default_root_dir", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    (pred_dir,) = list(out.glob("*/predictions"))
    task = SegmentationTask.load_from_checkpoint(ckpt, weights_only=True).eval()
    palette = np.array(CamVidDataModule.PALETTE, dtype=np.uint8)
    for name, size in (("a", (360, 480)), ("b", (300, 300))):
        mask_img = Image.open(pred_dir / f"{name}.png")
        assert mask_img.mode == "P" and (mask_img.height, mask_img.width) == size
        classes = np.array(mask_img)
        colours = np.array(mask_img.convert("RGB"))
        np.testing.assert_array_equal(colours, palette[classes])  # the palette is CamVid's
        # the same prediction computed here: fit (letterbox) → model → restore → argmax
        raw = np.array(Image.open(folder / f"{name}.{'jpg' if name == 'a' else 'png'}").convert("RGB"))
        from visionsuite.data.geometry import fit_sample

        fitted = fit_sample(torch.from_numpy(raw).permute(2, 0, 1), (64, 96), "letterbox").image
        with torch.no_grad():
            logits = task((fitted[None].float() / 255 - 0.5) / 0.5)
        # undo the letterbox by hand (not with the code under test): cut the padding, resize back
        scale = min(64 / size[0], 96 / size[1])
        rh, rw = round(size[0] * scale), round(size[1] * scale)
        top, left = (64 - rh) // 2, (96 - rw) // 2
        inner = logits[..., top : top + rh, left : left + rw]
        expected = torch.nn.functional.interpolate(inner, size=size, mode="bilinear", align_corners=False)
        expected = expected[0].argmax(0).numpy()
        assert (classes == expected).mean() > 0.999
        assert (pred_dir / f"{name}_overlay.png").is_file()


def test_void_pixels_are_never_counted(tiny_root: Path) -> None:
    """Every void pixel predicted 'wrong' (and the void target set to a class the prediction
    lacks elsewhere) still gives 100% on every metric: the task's metrics skip void pixels."""
    task = SegmentationTask(model="unet", num_classes=11, ignore_index=11, model_options={"depth": 2, "base_width": 4})
    target = torch.randint(0, 11, (2, 16, 16))
    target[:, :4] = 11  # void rows
    preds = torch.where(target == 11, torch.zeros_like(target), target)  # void predicted as class 0
    preds[:, :4] = (preds[:, :4] + 1) % 11
    metrics = task.val_metrics
    metrics.update(preds, target)
    result = metrics.compute()
    for key in ("val/global_accuracy", "val/class_accuracy", "val/miou"):
        assert result[key] == pytest.approx(1.0), (key, result)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_and_predict_exported_write_the_same_masks_as_predict(
    fmt: str, run: Path, tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exported file matches PyTorch on the test frames, and its Lightning-free predict writes
    the masks ``visionsuite predict`` writes (original size, same palette)."""
    folder = tmp_path / "in"
    folder.mkdir()
    sources = sorted((tiny_root / "camvid" / "CamVid" / "test").glob("*.jpg"))[:2]
    shutil.copy(sources[0], folder / "a.jpg")
    Image.open(sources[1]).resize((300, 300)).save(folder / "b.png")
    ckpt = str(next((run / "checkpoints").glob("best-*.ckpt")))
    model = tmp_path / ("seg.onnx" if fmt == "onnx" else "seg.pt")
    export = ["export", "--config", TINY, "--ckpt_path", ckpt, "--format", fmt, "--output", str(model), "--data_dir", str(tiny_root)]
    assert main(export) == 0
    assert "same class for 100.0%" in capsys.readouterr().out
    assert main(["predict-exported", str(model), str(folder), "--output", str(tmp_path / "exported")]) == 0
    predict = ["predict", "--config", TINY, "--data.init_args.data_dir", str(tiny_root), "--ckpt_path", ckpt,
               "--data.init_args.predict_dir", str(folder), "--trainer.default_root_dir", str(tmp_path / "p")]  # fmt: skip
    assert main(predict) == 0
    (lightning_dir,) = list((tmp_path / "p").glob("*/predictions"))
    for name, size in (("a", (360, 480)), ("b", (300, 300))):
        ours, theirs = Image.open(tmp_path / "exported" / f"{name}.png"), Image.open(lightning_dir / f"{name}.png")
        assert ours.mode == "P" and ours.getpalette() == theirs.getpalette()
        a, b = np.array(ours), np.array(theirs)
        assert a.shape == size and (a == b).mean() > 0.999


def test_test_time_flip_averages_each_image_and_its_mirror_at_test_and_predict_only() -> None:
    """With ``test_time_flip`` the test and predict scores are the log of the mean softmax of the
    image and of its mirror (mirrored back); validation keeps the single pass."""
    torch.manual_seed(0)
    task = SegmentationTask(model="unet", num_classes=11, ignore_index=11, test_time_flip=True,
                            model_options={"depth": 2, "base_width": 4}).eval()  # fmt: skip
    task.model = torch.nn.Conv2d(3, 11, 3, padding=1)  # random and not mirror-symmetric, unlike a fresh U-Net's near-constant output
    image = torch.randn(2, 3, 16, 24)
    batch = {"image": image, "mask": torch.randint(0, 11, (2, 16, 24)), "path": ["a", "b"]}
    with torch.no_grad():
        plain = task.model(image)
        mirrored = task.model(image.flip(-1)).flip(-1)
        expected = ((plain.softmax(1) + mirrored.softmax(1)) / 2).log()
        test_out = task.shared_step(batch, "test")
        val_out = task.shared_step(batch, "val")
        predicted = task.predict_step(batch, 0)["logits"]
    assert not torch.equal(expected.argmax(1), plain.argmax(1))  # the case tells the two apart
    torch.testing.assert_close(predicted, expected)
    assert torch.equal(test_out.preds, expected.argmax(1))
    assert torch.equal(val_out.preds, plain.argmax(1))
    torch.testing.assert_close(test_out.loss, torch.nn.functional.cross_entropy(expected, batch["mask"], ignore_index=11))


@pytest.mark.parametrize(
    ("model", "options"),
    [("unet", {"depth": 2, "base_width": 4}), ("smp:Unet", {"encoder": "tu-tf_efficientnet_lite0", "encoder_weights": None})],
)
def test_encoder_lr_mult_gives_the_encoder_its_rate_and_zero_keeps_its_weights(model: str, options: dict) -> None:
    """Discriminative fine-tuning: the encoder's groups carry lr x encoder_lr_mult, every other
    parameter lr; at 0, an AdamW step moves the decoder and head but no encoder weight."""
    task = SegmentationTask(model=model, num_classes=3, ignore_index=3, model_options=options, optimizer="adamw",
                            lr=0.01, weight_decay=0.01, no_decay_norm_and_bias=True, encoder_lr_mult=0.0)  # fmt: skip
    groups = task.optimizer_params()
    encoder = {id(p) for p in task.model.encoder.parameters()}
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in task.parameters())
    for group in groups:
        inside = {id(p) in encoder for p in group["params"]}
        assert inside in ({True}, {False}) and group["lr"] == (0.0 if inside == {True} else 0.01)
    optimizer = task.make_optimizer(groups)
    before = {name: p.detach().clone() for name, p in task.named_parameters()}
    gen = torch.Generator().manual_seed(0)
    image, mask = torch.randn(2, 3, 32, 32, generator=gen), torch.randint(0, 3, (2, 32, 32), generator=gen)
    task.criterion(task(image), mask).backward()
    optimizer.step()
    moved = {name for name, p in task.named_parameters() if not torch.equal(p, before[name])}
    assert moved and not any(name.startswith(("model.encoder.", "model.model.encoder.")) for name in moved), moved


def test_encoder_lr_mult_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="encoder_lr_mult must be a finite number >= 0, got -1"):
        SegmentationTask(model="unet", num_classes=3, encoder_lr_mult=-1)
