"""MobileNetV2 and MobileNetV3 small/large."""

from __future__ import annotations

import torchvision
from backbone_tester import BackboneTester, build, on_meta, param_count

TWINS = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")


class TestMobileNet(BackboneTester):
    patterns = ("mobilenet*",)
    expected_strides = {n: [2, 4, 8, 16, 32] for n in TWINS}
    option_model = "mobilenet_v3_small"
    options = ("activation", "norm", "padding_mode", "dropout", "init")
    param_counts = {"mobilenet_v2": 3_504_872, "mobilenet_v3_small": 2_542_856}
    torchvision_twins = {n: getattr(torchvision.models, n) for n in TWINS}
    reflect_side = 96  # 5x5 depthwise convs (padding 2) at stride 32 need 3x3 maps

    def test_width_mult(self) -> None:
        for width in (0.5, 1.4):
            ours = on_meta(lambda: build("mobilenet_v2", width_mult=width))
            theirs = on_meta(lambda: torchvision.models.mobilenet_v2(width_mult=width))
            assert param_count(ours) == param_count(theirs)
