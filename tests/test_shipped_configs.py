"""Every shipped config (``configs/<family>/*.yaml``; ``configs/logger/`` holds logger fragments, not
experiments) parses and runs ``fit`` with ``fast_dev_run`` – one train, val and test batch – on real data,
through the command, and its run reports the family's headline metric.

One shrink for all: ``fast_dev_run`` on the CPU, batches of two, and where a config sets them an
``eval_batch_size`` of two and a smaller ``train_window``; beyond that, per data set only what makes its
data small (:data:`DATA`): the configs' models, losses and data options run, not their sizes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from visionsuite.cli.app import main

CONFIGS = Path(__file__).parents[1] / "configs"
SHIPPED = sorted(p for p in CONFIGS.glob("*/*.yaml") if p.parent.name != "logger")

SHRINK = ["--trainer.fast_dev_run", "true", "--trainer.accelerator", "cpu", "--test_after_fit", "true",
          "--data.init_args.batch_size", "2"]  # fmt: skip
#: per data module: (the fixture that is its data_dir, what makes its data small)
DATA: dict[str, tuple[str, list[str]]] = {
    "FashionMNISTDataModule": ("data_root", []),
    "CIFAR10DataModule": ("data_root", []),
    "CamVidDataModule": ("tiny_camvid_root", ["--data.init_args.image_size", "[48, 64]"]),  # three real frames
    "FashionMNISTScenesDataModule": ("data_root", [
        "--data.init_args.num_train_scenes", "16", "--data.init_args.num_test_scenes", "4", "--data.init_args.val_size", "4",
        "--data.init_args.canvas_size", "64", "--model.init_args.image_size", "64"]),
    "COCODetectionDataModule": ("data_root", ["--data.init_args.image_size", "128", "--model.init_args.image_size", "128"]),
}  # fmt: skip
#: per task: its headline metric (``test/…``; the fit validated too: ``val/…`` of the same name). A GAN's
#: FID/KID need a classifier checkpoint the configs leave to the user: its discriminator loss.
HEADLINE = {"ClassificationTask": "acc", "SegmentationTask": "miou", "DetectionTask": "map", "AutoencoderTask": "mse",
            "VAETask": "neg_elbo", "GANTask": "d_loss"}  # fmt: skip


def _short(class_path: str) -> str:
    return class_path.rsplit(".", 1)[-1]


def test_every_family_has_its_configs() -> None:
    """The table covers every shipped config, and the configs the README promises are there."""
    names = {p.stem for p in SHIPPED}
    for base in ("camvid_segnet", "camvid_unet", "camvid_smp_unet_lite0"):
        assert {base, f"{base}_cpu"} <= names
    assert {p.parent.name for p in SHIPPED} == {"classification", "detection", "generative", "segmentation", "transfer"}
    for path in SHIPPED:
        config = yaml.safe_load(path.read_text())
        assert _short(config["data"]["class_path"]) in DATA and _short(config["model"]["class_path"]) in HEADLINE, path


def _cache_random_detector_weights(init: dict, hub: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config with ``detector_weights`` (which cannot be downloaded here): a file of the real
    architecture and shapes, random values, where the torch hub cache holds the real one."""
    import torchvision

    from visionsuite.models.detection import pretrained

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    name = init["detector"]
    path = pretrained.hub_cache_path(pretrained.weights_enum(name, init["detector_weights"]).url)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=91)
    torch.save(model.state_dict(), path)


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_config_fits_validates_and_tests_one_batch(
    config: Path, request: pytest.FixtureRequest, mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = yaml.safe_load(config.read_text())
    model, data = cfg["model"], cfg["data"]
    fixture, small = DATA[_short(data["class_path"])]
    args = ["fit", "--config", str(config), "--data.init_args.data_dir", str(request.getfixturevalue(fixture)),
            "--trainer.default_root_dir", str(tmp_path), "--run_name", "run", *SHRINK, *small]  # fmt: skip
    if "eval_batch_size" in data["init_args"]:
        args += ["--data.init_args.eval_batch_size", "2"]
    if "train_window" in data["init_args"]:  # a window inside the small size
        args += ["--data.init_args.train_window", "[32, 48]"]
    if model["init_args"].get("detector_weights"):
        _cache_random_detector_weights(model["init_args"], tmp_path / "hub", monkeypatch)
    assert main(args) == 0, capsys.readouterr().err.strip().splitlines()[-1:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    headline = HEADLINE[_short(model["class_path"])]
    validates = data["init_args"].get("val_size") != 0  # a record config may train on every image (airbench's way)
    assert f"test/{headline}" in metrics and (f"val/{headline}" in metrics) == validates, sorted(metrics)
    assert math.isfinite(metrics[f"test/{headline}"])
    losses = [v for k, v in metrics.items() if k.startswith("train/") and "loss" in k]
    assert losses and all(math.isfinite(v) for v in losses), sorted(metrics)
