"""AlexNet: the course's 62,378,344-parameter network, its LRN and its 67x67 minimum input."""

from __future__ import annotations

import pytest
import torch
from backbone_tester import BackboneTester, build, modules_of
from torch import nn


class TestAlexNet(BackboneTester):
    patterns = ("alexnet",)
    expected_strides = {"alexnet": [4, 8, 16, 32]}  # conv1 strides by 4: there is no stride-2 map
    option_model = "alexnet"
    param_counts = {"alexnet": 62_378_344}
    exact_pyramid = False  # conv1 is an unpadded 11x11/4

    def test_course_shapes(self) -> None:
        model = build("alexnet").eval()
        with torch.no_grad():
            sides = [f.shape[-1] for f in model.encoder()(torch.randn(1, 3, 227, 227)).values()]
        assert sides == [55, 27, 13, 6]  # conv1, conv2, conv5 (before pool5), pool5

    def test_lrn_follows_conv1_and_conv2(self) -> None:
        assert len(modules_of(build("alexnet"), nn.LocalResponseNorm)) == 2
        assert not modules_of(build("alexnet", lrn=False), nn.LocalResponseNorm)

    def test_28x28_names_the_minimum(self) -> None:
        with pytest.raises(ValueError, match="needs inputs of at least 67x67"):
            build("alexnet")(torch.randn(1, 3, 28, 28))
