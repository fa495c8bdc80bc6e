"""Multinomial logistic regression: the course's generalised linear model on raw pixels."""

from __future__ import annotations

from typing import Any

from torch import nn

from visionsuite.backbones._base import Backbone, BuilderTable
from visionsuite.backbones.layers import build_with_options

#: this family's builders by name; the registry reads it on first use (``_registry._FAMILIES``).
BACKBONES = BuilderTable()


def flatten_pixels(model: Backbone, in_chans: int, input_size: int | tuple[int, int]) -> int:
    """Give ``model`` a single ``flatten`` stage over ``in_chans x H x W`` images; returns C·H·W.

    The pixel-space models (linear, MLP) accept exactly that input size and no other.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    model.default_input_size = (in_chans, h, w)
    model.min_input_size = (h, w)
    model.num_features = in_chans * h * w
    model.stages["flatten"] = nn.Flatten()
    return model.num_features


class LinearClassifier(Backbone):
    """softmax(Wx + b) on the flattened image; its only stage flattens the pixels."""

    default_input_size = (3, 32, 32)

    def __init__(self, *, num_classes: int = 10, in_chans: int = 3, input_size: int | tuple[int, int] = 32) -> None:
        super().__init__()
        flatten_pixels(self, in_chans, input_size)
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


@BACKBONES.add("linear")
def linear(*, num_classes: int = 10, in_chans: int = 3, **options: Any) -> LinearClassifier:
    """Logistic regression on ``in_chans x input_size x input_size`` pixels (option ``input_size``)."""
    return build_with_options(LinearClassifier, options, num_classes=num_classes, in_chans=in_chans)
