"""Grad-CAM and saliency on a toy network whose class is driven by one bright region."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionsuite.backbones._base import Backbone
from visionsuite.explain import ExplainError, first_conv_filters, grad_cam, saliency, stage_module


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
