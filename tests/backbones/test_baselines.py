"""The course's first models (linear, MLP, LeNet) against the shared interface."""

from __future__ import annotations

from backbone_tester import BackboneTester


class TestBaselines(BackboneTester):
    patterns = ("linear", "mlp", "lenet1", "lenet5")
    option_model = "lenet5"
    options = ("activation", "norm", "padding_mode", "pooling", "dropout", "init")
    exact_pyramid = False  # LeNet's second convolution is unpadded
    strict_options = False  # ``mlp`` refuses num_classes=0: its skip layer maps pixels to classes
    no_encoder = ("linear", "mlp")  # they flatten the pixels: no feature maps
    expected_strides = {"lenet1": [2, 4], "lenet5": [2, 4]}
