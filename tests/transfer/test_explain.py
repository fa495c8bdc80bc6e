"""Grad-CAM and saliency on a toy network whose class is driven by one bright region."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionsuite.backbones._base import Backbone
from visionsuite.tools.explain import (
    ExplainError,
    first_conv_filters,
    grad_cam,
    saliency,
    stage_module,
)


def _toy() -> Backbone:
    """Class 0 = mean brightness (channel +x), class 1 = mean darkness (channel −x), after ReLU."""
    net = Backbone()
    conv = nn.Conv2d(1, 2, 1, bias=False)
    conv.weight.data = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
    net.stages["stage1"] = nn.Sequential(conv, nn.ReLU())
    linear = nn.Linear(2, 2, bias=False)
    linear.weight.data = torch.eye(2)
    net.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)
    return net.eval()


def _images() -> torch.Tensor:
    x = torch.zeros(2, 1, 16, 16)
    x[0, :, 2:6, 3:7] = 1.0  # bright patch top-left
    x[1, :, 10:14, 9:13] = 1.0  # bright patch bottom-right
    return x


def test_grad_cam_lights_the_region_that_drives_the_class() -> None:
    net, x = _toy(), _images()
    assert net(x).argmax(1).tolist() == [0, 0]
    cam = grad_cam(net, stage_module(net, "stage1"), x)
    assert cam.shape == (2, 16, 16) and cam.max() == pytest.approx(1.0)
    inside = [cam[0, 2:6, 3:7].sum() / cam[0].sum(), cam[1, 10:14, 9:13].sum() / cam[1].sum()]
    assert min(inside) > 0.9, inside
    sal = saliency(net, x)
    assert sal[0, 2:6, 3:7].min() > 0 and sal[0, 10:, 10:].max() == 0  # ReLU: dark pixels pass no gradient


def test_unknown_stage_lists_the_valid_ones() -> None:
    with pytest.raises(ExplainError, match="unknown stage 'stage9'; valid stages: stage1$"):
        stage_module(_toy(), "stage9")


def test_first_layer_filters_are_scaled_images() -> None:
    from visionsuite.backbones import create_backbone

    filters = first_conv_filters(create_backbone("lenet5", num_classes=10, in_chans=1))
    assert filters.shape == (6, 1, 5, 5) and filters.amin() == 0 and filters.amax() == 1


def test_activation_maps_rank_channels_by_activity() -> None:
    from visionsuite.tools.explain import activation_maps

    net, x = _toy(), _images()
    maps = activation_maps(net, stage_module(net, "stage1"), x[:1], n=2)
    # channel 0 (+x) fires on the bright patch, channel 1 (−x) nowhere after the ReLU
    assert maps.shape == (2, 1, 16, 16)
    assert maps[0, 0, 2:6, 3:7].min() == 1 and maps[0, 0].sum() == 16 and maps[1].max() == 0


def test_explanation_callback_logs_maps_of_fixed_validation_images(tmp_path, data_root, mirror, capsys) -> None:  # noqa: ANN001
    """Through the CLI: after each validation, one figure of saliency and Grad-CAM of the same images;
    an unknown stage stops the run at start in one line listing the valid stages."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from visionsuite.cli.app import main

    config = str(Path(__file__).parents[1] / "configs" / "lenet5_tiny.yaml")
    base = ["fit", "--config", config, "--data.init_args.data_dir", str(data_root), "--trainer.default_root_dir",
            str(tmp_path), "--data.init_args.train_subset", "512", "--data.init_args.val_subset", "64",
            "--test_after_fit", "false", "--trainer.callbacks+=visionsuite.outputs.ExplanationFigures"]  # fmt: skip
    assert main([*base, "--trainer.callbacks.stage", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown stage 'nope'; valid stages:" in err
    assert main([*base, "--trainer.callbacks.num_images", "4"]) == 0
    images = (tmp_path / "latest" / "images").resolve()
    files = sorted(images.glob("val_explanations_step*.png"))
    assert len(files) == 2  # one per validation (2 epochs)
    first, second = (np.asarray(Image.open(p).convert("RGB"), dtype=float) for p in files)
    assert first.shape == second.shape and first.shape[0] > 4 * 160  # 4 rows of image | saliency | Grad-CAM
    assert np.abs(first - second).mean() > 0.1  # the same images, a model that has changed
