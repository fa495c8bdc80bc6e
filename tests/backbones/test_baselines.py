"""The course's first models (linear, MLP, LeNet) against the shared interface."""

from __future__ import annotations

from backbone_tester import BackboneTester


class TestBaselines(BackboneTester):
    patterns = ("linear", "mlp", "lenet1", "lenet5")
    option_model = "lenet5"
    options = ("padding_mode", "pooling", "dropout", "init")
    exact_pyramid = False  # LeNet's second convolution is unpadded
    strict_options = False  # their builders predate option validation and ``num_classes=0``
