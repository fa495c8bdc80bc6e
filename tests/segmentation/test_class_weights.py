"""Median-frequency class weights against a hand computation."""

from __future__ import annotations

import pytest
import torch

from visionsuite.errors import ConfigError
from visionsuite.models.segmentation import class_weights, median_frequency_weights

VOID = 255
# 3 images of 2x4, 4 classes; class 3 never appears; void pixels present.
MASKS = torch.tensor(
    [
        [[0, 0, 0, VOID], [0, 1, 1, VOID]],
        [[0, 2, 2, 2], [2, 2, VOID, VOID]],
        [[1, 1, 1, 1], [1, 1, 0, 0]],
    ],
    dtype=torch.uint8,
)
# non-void pixels per image: 6, 6, 8. Class 0: 4+1+2 = 7 px in images 1,2,3 → 7/20.
# Class 1: 2+0+6 = 8 px in images 1,3 → 8/14. Class 2: 5 px in image 2 → 5/6.
FREQ = [7 / 20, 8 / 14, 5 / 6]
MEDIAN = 8 / 14


def test_weights_equal_the_hand_computation() -> None:
    weights = median_frequency_weights(MASKS, 4, VOID)
    expected = torch.tensor([MEDIAN / f for f in FREQ] + [0.0])
    torch.testing.assert_close(weights, expected)
    assert weights[1] == 1.0  # the median class


def test_chunking_does_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = median_frequency_weights(MASKS, 4, VOID)
    monkeypatch.setattr(class_weights, "_CHUNK", 2)
    torch.testing.assert_close(median_frequency_weights(MASKS, 4, VOID), whole)
    counts = class_weights.class_pixel_counts(MASKS, 4, VOID)
    assert counts.tolist() == [[4, 2, 0, 0], [1, 0, 5, 0], [2, 6, 0, 0]]


def test_even_number_of_classes_takes_the_middle_mean() -> None:
    weights = median_frequency_weights(MASKS[:1], 4, VOID)  # image 1: classes 0 (4/6) and 1 (2/6)
    torch.testing.assert_close(weights, torch.tensor([0.5 / (4 / 6), 0.5 / (2 / 6), 0.0, 0.0]))


def test_values_outside_the_classes_are_named() -> None:
    with pytest.raises(ConfigError, match=r"mask values \[7\] are outside \[0, 4\)"):
        median_frequency_weights(MASKS.clone().index_fill_(0, torch.tensor([0]), 7), 4, VOID)
